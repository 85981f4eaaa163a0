import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { FAST_RETRY } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';
import { cleanedUpAfterEach, sleep, within } from './helpers.js';

const pool = testPool(12);

const cleanups = cleanedUpAfterEach();

describe('Outbox on a PostgresStore: key locks held by the caller\'s open transaction, seen through the Outbox', () => {
  it('a plain enqueue (no key) by a caller whose open transaction enqueued key K resolves while another caller enqueues K in the same tick (no self-deadlock)', async () => {
    const table = freshTable();
    const outbox = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 50 }), url: 'http://127.0.0.1:1/x', autoFlush: false });
    const client: pg.PoolClient = await pool.connect();
    cleanups.push(async () => {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      await outbox.close({ timeoutMs: 100 });
    });
    // Request 1: its order and its webhook, in its transaction (key: the customer).
    await client.query('BEGIN');
    await outbox.enqueue({ body: { order: 1 }, orderingKey: 'customer-1' }, { transaction: client });
    // Still inside it, request 1 also enqueues an unrelated audit event (no key, no transaction) and waits
    // for it, as enqueue() promises to resolve once the event is durable...
    const audit = outbox.enqueue({ body: { audit: 'order 1 placed' } });
    // ...while request 2, in the same tick, enqueues for the same customer outside any transaction.
    const other = outbox.enqueue({ body: { profile: 'changed' }, orderingKey: 'customer-1' });
    other.catch(() => undefined);
    // The audit event depends on nothing request 1 holds: it must not wait for request 1's COMMIT
    // (which waits for it: neither ever ends, and customer-1's lock is held for good).
    expect(await within(audit, 3_000)).not.toBe('timeout');
    await client.query('COMMIT');
    await other;
  });

  it('a settle blocked by an open transaction\'s key lock does not hold up the outcomes of other endpoints', async () => {
    const table = freshTable();
    const keyed = await startFlakyReceiver();
    const plain = await startFlakyReceiver();
    const store = new PostgresStore({ pool, table, pollIntervalMs: 50 });
    const outbox = await Outbox.open({ store, url: plain.url, retry: FAST_RETRY, concurrency: 4 });
    const client: pg.PoolClient = await pool.connect();
    cleanups.push(async () => {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      await outbox.close({ timeoutMs: 100 });
      await keyed.close();
      await plain.close();
    });
    const delivered = new Set<string>();
    outbox.on('delivered', (event) => delivered.add(event.id));
    // Customer 1's first event goes out...
    const { id: first } = await outbox.enqueue({ url: keyed.url, body: { n: 1 }, orderingKey: 'customer-1' });
    // ...while the app's transaction for customer 1's next order is open (it enqueued in it, not committed yet).
    await client.query('BEGIN');
    await outbox.enqueue({ url: keyed.url, body: { n: 2 }, orderingKey: 'customer-1' }, { transaction: client });
    await waitUntil(() => keyed.countById(first) === 1, 5_000);
    // Meanwhile, unrelated events to another endpoint: they are sent and answered 200 at once.
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) ids.push((await outbox.enqueue({ body: { n } })).id);
    await waitUntil(() => plain.deliveredIds().size >= 4, 5_000);
    await sleep(2_000);
    const report = {
      plainAnswered200: plain.deliveredIds().size,
      plainDeliveredEvents: ids.filter((id) => delivered.has(id)).length,
      plainRowsLeft: Number((await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE url = $1`, [plain.url])).rows[0].n),
    };
    // Every plain event was answered 2xx long ago: its outcome is written (the row gone, 'delivered'
    // emitted), whatever customer 1's transaction is doing.
    expect(report).toEqual({ plainAnswered200: 20, plainDeliveredEvents: 20, plainRowsLeft: 0 });
  });
});

async function waitUntil(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}

export type { FlakyReceiver };

describe('Outbox on a PostgresStore: distinct ordering keys in two user transactions', () => {
  it('two transactions enqueueing events of four distinct keys, in any order, both commit (no deadlock between unrelated keys)', async () => {
    const table = freshTable();
    const outbox = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 50 }), url: 'http://127.0.0.1:1/x', autoFlush: false });
    // Four distinct customer keys: a and d share one of the store's 1,024 lock buckets, b and c another.
    const { rows } = await pool.query(`SELECT 'customer-' || i AS k, (hashtextextended('customer-' || i, 0) & 1023)::int AS b FROM generate_series(1, 5000) i`);
    const byBucket = new Map<number, string[]>();
    for (const row of rows) byBucket.set(row.b as number, [...(byBucket.get(row.b as number) ?? []), row.k as string]);
    const pairs = [...byBucket.values()].filter((keys) => keys.length >= 2);
    const [a, d] = pairs[0] as [string, string];
    const [b, c] = pairs[1] as [string, string];
    const tx1 = await pool.connect();
    const tx2 = await pool.connect();
    cleanups.push(async () => {
      await tx1.query('ROLLBACK').catch(() => undefined);
      await tx2.query('ROLLBACK').catch(() => undefined);
      tx1.release();
      tx2.release();
      await outbox.close({ timeoutMs: 100 });
    });
    await tx1.query('BEGIN');
    await tx2.query('BEGIN');
    // Order 1 touches customers a and b, order 2 customers c and d: no customer in common.
    await outbox.enqueue({ body: { order: 1 }, orderingKey: a }, { transaction: tx1 });
    await outbox.enqueue({ body: { order: 2 }, orderingKey: c }, { transaction: tx2 });
    const results = await Promise.allSettled([
      outbox.enqueue({ body: { order: 1 }, orderingKey: b }, { transaction: tx1 }),
      outbox.enqueue({ body: { order: 2 }, orderingKey: d }, { transaction: tx2 }),
    ]);
    expect(results.map((result) => (result.status === 'fulfilled' ? 'ok' : String((result.reason as Error).message).slice(0, 120)))).toEqual(['ok', 'ok']);
    await tx1.query('COMMIT');
    await tx2.query('COMMIT');
  });

  it('close({ timeoutMs: 200 }) returns while the settle of a delivered keyed event waits for an app transaction that enqueued the same key', async () => {
    const table = freshTable();
    const receiver = await startFlakyReceiver();
    const outbox = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 50 }), url: receiver.url, retry: FAST_RETRY });
    const client: pg.PoolClient = await pool.connect();
    cleanups.push(async () => {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      await receiver.close();
    });
    const { id } = await outbox.enqueue({ body: { n: 1 }, orderingKey: 'customer-1' });
    await client.query('BEGIN');
    await outbox.enqueue({ body: { n: 2 }, orderingKey: 'customer-1' }, { transaction: client });
    await waitUntil(() => receiver.countById(id) === 1, 5_000);
    await sleep(200);
    // SIGTERM arrives while the request handler's transaction is still open.
    expect(await within(outbox.close({ timeoutMs: 200 }), 5_000)).not.toBe('timeout');
  });
});
