import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import type { OutboxOptions } from '../../src/options.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { FAST_RETRY, waitFor } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';
import { sleep } from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** An outbox on `table` with a pool of its own (one "machine"), closed after the test. */
async function machine(table: string, options: Partial<OutboxOptions> & { url: string }, store: { leaseMs?: number; pollIntervalMs?: number } = {}): Promise<Outbox> {
  const pool = testPool(4);
  const outbox = await Outbox.open({ retry: FAST_RETRY, ...options, store: new PostgresStore({ pool, table, pollIntervalMs: 50, ...store }) } as OutboxOptions);
  cleanups.push(() => outbox.close({ timeoutMs: 100 }));
  return outbox;
}

async function receiver(options: Parameters<typeof startFlakyReceiver>[0] = {}): Promise<FlakyReceiver> {
  const r = await startFlakyReceiver(options);
  cleanups.push(() => r.close());
  return r;
}

const pool = testPool(4);
const rows = async (table: string, where = 'true', values: unknown[] = []): Promise<number> =>
  Number((await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, values)).rows[0].n);

describe('Outbox on a PostgresStore: two outboxes on one table, as the user sees them', () => {
  it('moveEndpoint() in one outbox while the other has requests to the old URL in flight that fail: those events move too', async () => {
    const table = freshTable();
    const old = await receiver({ latencyMs: 400, script: () => 503 });
    const moved = await receiver();
    const admin = await machine(table, { url: old.url, autoFlush: false });
    await machine(table, { url: old.url, concurrency: 2 }); // the worker that sends
    for (let n = 0; n < 6; n++) await admin.enqueue({ body: { n } });
    await waitFor(() => old.inProgress > 0, 5_000, 'a request in flight at the worker');
    // The receiver moved: the operator moves the endpoint (docs/06: requests in flight finish first; if
    // one fails, its event moves too).
    await admin.moveEndpoint(old.url, moved.url, { timeoutMs: 5_000 });
    await sleep(3_000);
    expect({
      deliveredAtNewUrl: moved.deliveredIds().size,
      rowsStillAtOldUrl: await rows(table, 'url = $1', [old.url]),
    }).toEqual({ deliveredAtNewUrl: 6, rowsStillAtOldUrl: 0 });
  });

  it('find(id) in one outbox says in-flight while the other outbox has the request out', async () => {
    const table = freshTable();
    const slow = await receiver({ latencyMs: 2_000 });
    const sender = await machine(table, { url: slow.url });
    const asker = await machine(table, { url: slow.url, autoFlush: false });
    const { id } = await asker.enqueue({ body: 1 });
    await waitFor(() => slow.inProgress > 0, 5_000, 'the request out');
    expect(await sender.find(id)).toMatchObject({ state: 'in-flight' });
    expect(await asker.find(id)).toMatchObject({ state: 'in-flight' });
  });

  it('an endpoint answering 410 to both outboxes: every event dead exactly once, one \'dead\' per event, none lost', async () => {
    const table = freshTable();
    const gone = await receiver({ script: () => 410, latencyMs: 5 });
    const a = await machine(table, { url: gone.url, concurrency: 2 });
    const b = await machine(table, { url: gone.url, concurrency: 2 });
    const deadEvents: string[] = [];
    a.on('dead', (event) => deadEvents.push(event.id));
    b.on('dead', (event) => deadEvents.push(event.id));
    const ids: string[] = [];
    for (let n = 0; n < 40; n++) ids.push((await (n % 2 === 0 ? a : b).enqueue({ body: { n } })).id);
    await waitFor(() => deadEvents.length >= 40, 10_000, '40 dead events');
    await Promise.all([a.drain({ timeoutMs: 5_000 }), b.drain({ timeoutMs: 5_000 })]);
    await sleep(200);
    expect(deadEvents.length).toBe(40);
    expect(new Set(deadEvents)).toEqual(new Set(ids));
    const letters = await a.deadLetters();
    expect(letters.map((letter) => letter.id).sort()).toEqual([...ids].sort());
    expect(await rows(table, 'dead_at IS NULL')).toBe(0);
  });

  it('one outbox gets 410 while the other keeps getting 200 from the same URL: each event ends delivered or dead, once', async () => {
    const table = freshTable();
    let first = true;
    const flaky = await receiver({ script: () => (first ? ((first = false), 410) : 200), latencyMs: 5 });
    const a = await machine(table, { url: flaky.url, concurrency: 2 });
    const b = await machine(table, { url: flaky.url, concurrency: 2 });
    const ended = new Map<string, string[]>();
    const end = (kind: string) => (event: { id: string }) => ended.set(event.id, [...(ended.get(event.id) ?? []), kind]);
    for (const outbox of [a, b]) {
      outbox.on('dead', end('dead'));
      outbox.on('delivered', end('delivered'));
    }
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) ids.push((await a.enqueue({ body: { n } })).id);
    await Promise.all([a.drain({ timeoutMs: 10_000 }), b.drain({ timeoutMs: 10_000 })]);
    await sleep(200);
    for (const id of ids) expect(ended.get(id)?.length).toBe(1);
    const dead = new Set((await a.deadLetters()).map((letter) => letter.id));
    for (const id of ids) expect(dead.has(id) !== flaky.deliveredIds().has(id)).toBe(true);
  });

  it('alternating outboxes on failing events: attempts, history and the dead letter are counted once across both', async () => {
    const table = freshTable();
    // Events marked fail get 500, the rest 200 (a steady stream of those keeps both circuits closed).
    const failing = await receiver({ script: (req) => (req.body.includes('"fail":true') ? 500 : 200), latencyMs: 2 });
    const options = { url: failing.url, concurrency: 1, retry: { ...FAST_RETRY, maxAttempts: 3 } };
    const a = await machine(table, options);
    const b = await machine(table, options);
    const dead: { id: string; attempts: number; by: string }[] = [];
    a.on('dead', (event) => dead.push({ ...event, by: 'a' }));
    b.on('dead', (event) => dead.push({ ...event, by: 'b' }));
    const ids: string[] = [];
    for (let n = 0; n < 6; n++) ids.push((await a.enqueue({ body: { n, fail: true } })).id);
    let stop = false;
    const filler = (async () => {
      for (let n = 0; !stop && n < 2_000; n++) {
        await (n % 2 === 0 ? a : b).enqueue({ body: { n, fail: false } });
        await sleep(5);
      }
    })();
    try {
      await waitFor(() => dead.length >= 6, 15_000, 'every failing event dead');
    } finally {
      stop = true;
      await filler;
    }
    await Promise.all([a.drain({ timeoutMs: 10_000 }), b.drain({ timeoutMs: 10_000 })]);
    expect(dead.length).toBe(6);
    expect(new Set(dead.map((event) => event.id))).toEqual(new Set(ids));
    for (const event of dead) expect(event.attempts).toBe(3);
    const letters = await b.deadLetters();
    expect(letters).toHaveLength(6);
    for (const letter of letters) {
      expect(letter.reason).toBe('max-attempts');
      expect(letter.attempts).toBe(3);
      // Every request is in the history once (a failure while a circuit was not closed is kept, uncounted).
      expect(letter.history.length).toBe(failing.countById(letter.id));
      expect(letter.history.every((h) => h.status === 500)).toBe(true);
    }
  });

  it('close() of one outbox hands its read-ahead back: the other delivers it long before the lease would run out', async () => {
    const table = freshTable();
    const slow = await receiver({ latencyMs: 100 });
    const a = await machine(table, { url: slow.url, concurrency: 1 }, { leaseMs: 60_000 });
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) ids.push((await a.enqueue({ body: { n } })).id);
    await waitFor(() => slow.requests.length >= 2, 5_000, 'a few sent');
    await a.close({ timeoutMs: 0 });
    const b = await machine(table, { url: slow.url, concurrency: 4 }, { leaseMs: 60_000 });
    await b.drain({ timeoutMs: 15_000 });
    for (const id of ids) expect(slow.deliveredIds().has(id)).toBe(true);
    expect(await rows(table)).toBe(0);
  });

  it('drain() in a producer-only outbox waits for the worker outbox to deliver a retried backlog, then resolves', async () => {
    const table = freshTable();
    const r = await receiver({ script: (_req, i) => (i % 3 === 2 ? 200 : 503), latencyMs: 2 });
    const producer = await machine(table, { url: r.url, autoFlush: false });
    await machine(table, { url: r.url, concurrency: 2 });
    for (let n = 0; n < 10; n++) await producer.enqueue({ body: { n } });
    // The producer's own flusher starts for drain(): both outboxes deliver.
    await producer.drain({ timeoutMs: 15_000 });
    expect(r.deliveredIds().size).toBe(10);
    expect(await rows(table)).toBe(0);
  });
});
