import { expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import type { NewEvent, StoredEvent } from '../../src/store/store.js';
import { seededRandom } from '../store/seeded-random.js';
import { freshTable, testPool } from './pool.js';

const pool = testPool(20);
const T0 = 1_700_000_000_000;
const URL = 'http://127.0.0.1:1/hook';

function event(id: string, key: string): NewEvent {
  return { id, url: URL, headers: {}, body: new TextEncoder().encode(id), createdAt: T0, nextAttemptAt: T0, orderingKey: key };
}

it('two stores writing and claiming the same keys at once: one event of a key out at a time, in append order, none stuck, none from a rolled-back transaction', async () => {
  const random = seededRandom(7);
  const table = freshTable();
  const stores = [new PostgresStore({ pool, table }), new PostgresStore({ pool, table })];
  for (const store of stores) await store.open();
  const KEYS = 6;
  const PER_KEY = 30;
  // Each key has one writer (its order is the order of its appends); writers of different keys race, in
  // batches mixing keys, through both stores, some inside transactions that commit or roll back.
  const appended = new Map<string, string[]>();
  const rolledBack = new Set<string>();
  const writers = Array.from({ length: KEYS }, async (_, k) => {
    const key = `key-${k}`;
    const order: string[] = [];
    appended.set(key, order);
    for (let n = 0; n < PER_KEY; n++) {
      const id = `${key}-${n}`;
      const store = stores[n % 2] as PostgresStore;
      if (n % 5 === 3) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await store.appendIn(client, [event(id, key)]);
          if (random() < 0.3) {
            await client.query('ROLLBACK');
            rolledBack.add(id);
            continue;
          }
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      } else {
        await store.append([event(id, key)]);
      }
      order.push(id);
    }
  });
  // Out now per key; an event whose outcome is being written still holds its key until that commits.
  const held = new Map<string, string>();
  const settling = new Set<string>();
  const delivered = new Map<string, string[]>();
  let claimedRolledBack = 0;
  const flusher = async (store: PostgresStore): Promise<void> => {
    const deadline = Date.now() + 60_000;
    let writing = true;
    void Promise.all(writers).then(() => (writing = false));
    while (Date.now() < deadline) {
      const { events } = await store.claim({ limit: 4, now: T0 });
      for (const claimed of events) {
        const key = claimed.orderingKey as string;
        if (rolledBack.has(claimed.id)) claimedRolledBack++;
        const out = held.get(key);
        expect(out === undefined || settling.has(out), `${claimed.id} claimed while ${out} of its key is out`).toBe(true);
        held.set(key, claimed.id);
      }
      await Promise.all(events.map(async (claimed: StoredEvent) => {
        const key = claimed.orderingKey as string;
        const roll = random();
        const outcome = roll < 0.2 ? { id: claimed.id, type: 'release' as const } : roll < 0.4 ? { id: claimed.id, type: 'retry' as const, attempt: { at: T0, durationMs: 1, status: 503 }, nextAttemptAt: T0, countsAsAttempt: true } : { id: claimed.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } };
        if (outcome.type === 'delivered') delivered.set(key, [...(delivered.get(key) ?? []), claimed.id]);
        settling.add(claimed.id);
        await store.settle([outcome]);
        settling.delete(claimed.id);
        if (held.get(key) === claimed.id) held.delete(key);
      }));
      const total = [...delivered.values()].reduce((sum, ids) => sum + ids.length, 0);
      if (!writing && total === [...appended.values()].reduce((sum, ids) => sum + ids.length, 0)) return;
      if (events.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  await Promise.all([...writers, flusher(stores[0] as PostgresStore), flusher(stores[1] as PostgresStore)]);
  expect(claimedRolledBack).toBe(0);
  expect(rolledBack.size).toBeGreaterThan(0);
  for (const [key, order] of appended) expect(delivered.get(key), key).toEqual(order);
  expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
  for (const store of stores) await store.close();
});
