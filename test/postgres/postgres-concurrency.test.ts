import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import type { Outcome, StoredEvent } from '../../src/store/store.js';
import { freshTable, testPool } from './pool.js';
import { countRows, dead, delivered, ev, retryAt, sleep, URL_A, URL_B } from './helpers.js';

const pool = testPool(4);

interface Watch {
  out: Map<string, string>; // id -> holder
  keysOut: Map<string, string>; // key -> id
  violations: string[];
  deliveredOrder: Map<string, number[]>;
}

function taken(w: Watch, who: string, event: StoredEvent, seqOf: Map<string, number>): void {
  if (w.out.has(event.id)) w.violations.push(`${event.id} handed to ${who} while held by ${w.out.get(event.id)}`);
  w.out.set(event.id, who);
  const key = event.orderingKey;
  if (key !== undefined && event.supersededBy === undefined) {
    if (w.keysOut.has(key)) w.violations.push(`key ${key}: ${event.id} out while ${w.keysOut.get(key)} is out`);
    w.keysOut.set(key, event.id);
  }
  void seqOf;
}

function settled(w: Watch, event: StoredEvent): void {
  w.out.delete(event.id);
  const key = event.orderingKey;
  if (key !== undefined && w.keysOut.get(key) === event.id) w.keysOut.delete(key);
}

describe('PostgresStore: flushers sharing a table', () => {
  it('three stores claiming and settling at once: no event out twice, one event per key out at a time, keys delivered in append order', async () => {
    const table = freshTable();
    const stores = [0, 1, 2].map(() => new PostgresStore({ pool: testPool(3), table, leaseMs: 60_000, pollIntervalMs: 20 }));
    for (const store of stores) await store.open();
    try {
      const seqOf = new Map<string, number>();
      const events = Array.from({ length: 300 }, (_, i) => {
        seqOf.set(`e${i}`, i);
        return ev(`e${i}`, { orderingKey: i % 5 === 0 ? undefined : `k${i % 11}`, url: i % 3 === 0 ? URL_B : URL_A });
      });
      for (let i = 0; i < events.length; i += 50) await stores[i % 3]!.append(events.slice(i, i + 50));
      const w: Watch = { out: new Map(), keysOut: new Map(), violations: [], deliveredOrder: new Map() };
      let done = 0;
      let rng = 42;
      const random = (): number => ((rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const deadline = Date.now() + 20_000;
      await Promise.all(
        stores.map(async (store, n) => {
          while (done < 300 && Date.now() < deadline) {
            const limit = 1 + Math.floor(random() * 6);
            const { events: got } = await store.claim({ limit, now: Date.now() });
            if (got.length > limit) w.violations.push(`${got.length} events for a limit of ${limit}`);
            for (const event of got) taken(w, `s${n}`, event, seqOf);
            if (got.length === 0) {
              await sleep(2);
              continue;
            }
            await sleep(random() * 4);
            const outcomes: Outcome[] = [];
            for (const event of got) {
              settled(w, event);
              const r = random();
              if (r < 0.7) {
                outcomes.push(delivered(event.id));
                done++;
                if (event.orderingKey !== undefined) {
                  const order = w.deliveredOrder.get(event.orderingKey) ?? [];
                  order.push(seqOf.get(event.id)!);
                  w.deliveredOrder.set(event.orderingKey, order);
                }
              } else if (r < 0.95) outcomes.push(retryAt(event.id, Date.now()));
              else {
                outcomes.push(dead(event.id));
                done++;
              }
            }
            await store.settle(outcomes);
          }
        }),
      );
      expect(w.violations).toEqual([]);
      expect(done).toBe(300);
      for (const [key, order] of w.deliveredOrder) expect({ key, order }).toEqual({ key, order: [...order].sort((a, b) => a - b) });
      expect(await countRows(pool, table, 'dead_at IS NULL')).toBe(0);
    } finally {
      for (const store of stores) await store.close();
    }
  });

  type Part = 'flush' | 'move' | 'replayAll' | 'replayIds' | 'purge';
  /** Two stores on one table; `parts` run at once for `ms`; every call's error is collected. */
  async function together(parts: Part[], ms: number, seedDead = false): Promise<{ errors: string[]; rows: number }> {
    const table = freshTable();
    const stores = [0, 1].map(() => new PostgresStore({ pool: testPool(4), table, leaseMs: 600, pollIntervalMs: 5 }));
    for (const store of stores) await store.open();
    const errors: string[] = [];
    try {
      const events = Array.from({ length: 400 }, (_, i) => ev(`e${i}`, { orderingKey: i % 4 === 0 ? undefined : `k${i % 9}`, url: i % 2 === 0 ? URL_B : URL_A }));
      await stores[0]!.append(events);
      if (seedDead) {
        const { events: got } = await stores[0]!.claim({ limit: Infinity, now: Date.now() });
        await stores[0]!.settle(got.map((e) => dead(e.id)));
      }
      const deadline = Date.now() + ms;
      const guard = async (what: string, f: () => Promise<unknown>): Promise<void> => {
        try {
          await f();
        } catch (error) {
          errors.push(`${what}: ${String(error)}`);
        }
      };
      const jobs: Promise<void>[] = [];
      const loop = (f: () => Promise<void>): void => {
        jobs.push((async () => {
          while (Date.now() < deadline && errors.length === 0) await f();
        })());
      };
      if (parts.includes('flush')) {
        for (const store of stores) {
          loop(async () => {
            let got: StoredEvent[] = [];
            await guard('claim', async () => ({ events: got } = await store.claim({ limit: 20, now: Date.now() })));
            await sleep(1);
            await guard('settle', () => store.settle(got.map((e, i) => (i % 3 === 0 ? dead(e.id) : retryAt(e.id, Date.now())))));
          });
        }
      }
      let flip = false;
      if (parts.includes('move')) {
        loop(() => {
          flip = !flip;
          return guard('moveEndpoint', () => stores[0]!.moveEndpoint(flip ? URL_A : URL_B, flip ? URL_B : URL_A));
        });
      }
      if (parts.includes('replayAll')) {
        loop(async () => {
          await guard('replay()', () => stores[1]!.replay(undefined, Date.now()));
          if (seedDead) {
            const { events: got } = await stores[1]!.claim({ limit: Infinity, now: Date.now() });
            await guard('settle', () => stores[1]!.settle(got.map((e) => dead(e.id))));
          }
        });
      }
      if (parts.includes('replayIds')) {
        loop(async () => {
          const ids = (await stores[0]!.deadLetters({ limit: 50 })).map((l) => l.id).reverse();
          await guard('replay(ids, now, url)', () => stores[1]!.replay(ids, Date.now(), URL_A));
        });
      }
      await Promise.all(jobs);
      return { errors, rows: await countRows(pool, table) };
    } finally {
      for (const store of stores) await store.close();
    }
  }

  it('moveEndpoint() while flushers claim and settle: no deadlock (a settle failing with ERR_STORE_IO 40P01)', async () => {
    const { errors, rows } = await together(['flush', 'move'], 5_000);
    expect(errors).toEqual([]);
    expect(rows).toBe(400);
  });

  it('moveEndpoint() while dead letters are replayed (and die again): no deadlock', async () => {
    const { errors, rows } = await together(['move', 'replayAll'], 5_000, true);
    expect(errors).toEqual([]);
    expect(rows).toBe(400);
  });

  it('replay() and replay(ids, url) while flushers claim and settle, dead letters coming and going: no deadlock', async () => {
    const { errors, rows } = await together(['flush', 'replayAll', 'replayIds'], 3_000);
    expect(errors).toEqual([]);
    expect(rows).toBe(400);
  });
});
