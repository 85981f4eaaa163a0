import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { closedAfterEach, FAST_RETRY } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';
import { countRows, delivered, ev, hooked, kind, sleep } from './helpers.js';

const pool = testPool();
const opened = closedAfterEach();

describe('PostgresStore: stats() as drain() uses it', () => {
  it('a settle whose answer comes in after a stats refresh that already saw it does not count the event twice (pending never runs under)', async () => {
    const table = freshTable();
    let settleCommitted = false;
    let countsAfterSettle = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const q = hooked(pool, async (text, _values, run) => {
      const k = kind(text);
      const result = await run();
      if (k === 'settle') {
        settleCommitted = true; // committed in the database; its answer is slow to come back (network)
        await gate;
      }
      if (k === 'counts' && settleCommitted) countsAfterSettle++;
      return result;
    });
    const store = new PostgresStore({ pool: q, table, leaseMs: 600, pollIntervalMs: 100 });
    await store.open();
    const later = Date.now() + 3_600_000;
    await store.append([ev('e1'), ev('e2', { nextAttemptAt: later })]);
    const { events } = await store.claim({ limit: 1, now: Date.now() });
    expect(events.map((e) => e.id)).toEqual(['e1']);
    const settling = store.settle([delivered('e1')]);
    for (let i = 0; i < 100 && countsAfterSettle === 0; i++) await sleep(20);
    expect(countsAfterSettle).toBeGreaterThan(0);
    release();
    await settling;
    expect(await countRows(pool, table)).toBe(1); // e2 is pending
    const outbox = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:1/a', autoFlush: false }));
    // e2 is pending (due in an hour): drain() must not resolve
    await expect(outbox.drain({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'ERR_DRAIN_TIMEOUT' });
  });

  it('drain() right after the caller commits a transactional enqueue waits for that event', async () => {
    const receiver = (opened.receiver = await startFlakyReceiver());
    const table = freshTable();
    const store = new PostgresStore({ pool, table, leaseMs: 300, pollIntervalMs: 50 });
    const outbox = (opened.outbox = await Outbox.open({ store, url: receiver.url, retry: FAST_RETRY }));
    const client = await pool.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      ({ id } = await outbox.enqueue({ body: { order: 1 } }, { transaction: client }));
      await sleep(250); // the app does more work in its transaction: a few polls go by
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await outbox.drain({ timeoutMs: 10_000 });
    // drain() resolved: the committed event must have been delivered
    expect(await countRows(pool, table)).toBe(0);
    expect(receiver.countById(id)).toBe(1);
  });

  it('drain() waits while another flusher holds an event of the table', async () => {
    const table = freshTable();
    const other = new PostgresStore({ pool, table, leaseMs: 300, pollIntervalMs: 50 });
    await other.open();
    try {
      await other.append([ev('x1')]);
      expect((await other.claim({ limit: 5, now: Date.now() })).events).toHaveLength(1);
      const store = new PostgresStore({ pool, table, leaseMs: 300, pollIntervalMs: 50 });
      const outbox = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:1/a', autoFlush: false }));
      const drained = outbox.drain({ timeoutMs: 5_000 });
      let done = false;
      void drained.then(() => (done = true), () => (done = true));
      await sleep(300);
      expect(done).toBe(false);
      await other.settle([delivered('x1')]);
      await drained;
    } finally {
      await other.close();
    }
  });
});
