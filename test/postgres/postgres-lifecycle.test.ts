import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { countRows, delivered, ev, hooked, kind, sleep, openedPair, within } from './helpers.js';

const pool = testPool();

describe('PostgresStore: lifecycle', () => {
  it('open() retried after a failed first stats read still polls: leases keep being renewed', async () => {
    const table = freshTable();
    let failed = false;
    const q = hooked(pool, async (text, _values, run) => {
      if (!failed && kind(text) === 'counts') {
        failed = true;
        throw new Error('connection terminated unexpectedly');
      }
      return run();
    });
    const a = new PostgresStore({ pool: q, table, leaseMs: 300, pollIntervalMs: 50 });
    await expect(a.open()).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    await a.open(); // the caller tries again: resolves
    const b = new PostgresStore({ pool, table, leaseMs: 300, pollIntervalMs: 50 });
    await b.open();
    let onChange = 0;
    a.watch(() => onChange++);
    try {
      await a.append([ev('e1')]);
      const first = await a.claim({ limit: 10, now: Date.now() });
      expect(first.events.map((e) => e.id)).toEqual(['e1']);
      await sleep(900); // three leases long: a polling store renewed it ~18 times
      const second = await b.claim({ limit: 10, now: Date.now() });
      // a is alive and holds e1: b must not get it
      expect(second.events.map((e) => e.id)).toEqual([]);
      expect(onChange).toBeGreaterThan(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('close() while a claim is in flight: the claim\'s leases are handed back, not left to run out', async () => {
    const table = freshTable();
    const q = hooked(pool, async (text, _values, run) => {
      if (kind(text) === 'claim') await sleep(100);
      return run();
    });
    const a = new PostgresStore({ pool: q, table, leaseMs: 60_000, pollIntervalMs: 1000 });
    await a.open();
    const b = new PostgresStore({ pool, table });
    await b.open();
    try {
      await a.append([ev('e1'), ev('e2')]);
      const claiming = a.claim({ limit: 10, now: Date.now() }).catch((error: unknown) => error);
      await a.close();
      await claiming;
      // a is closed and holds nothing; another flusher must be able to take the events now, not in 60 s
      const got = await b.claim({ limit: 10, now: Date.now() });
      expect(got.events.map((e) => e.id).sort()).toEqual(['e1', 'e2']);
    } finally {
      await b.close();
    }
  });

  it('a late settle of a holder whose lease ran out is ignored once another flusher took the event', async () => {
    const table = freshTable();
    // a's renewals never reach the database (a partition that only hits them)
    const q = hooked(pool, async (text, _values, run) => (kind(text) === 'renew' ? ({ rows: [], rowCount: 0 } as never) : run()));
    const a = new PostgresStore({ pool: q, table, leaseMs: 300, pollIntervalMs: 50 });
    const b = new PostgresStore({ pool, table, leaseMs: 300, pollIntervalMs: 50 });
    await a.open();
    await b.open();
    try {
      await a.append([ev('e1')]);
      expect((await a.claim({ limit: 10, now: Date.now() })).events).toHaveLength(1);
      await sleep(500);
      const taken = await b.claim({ limit: 10, now: Date.now() });
      expect(taken.events.map((e) => e.id)).toEqual(['e1']);
      await a.settle([delivered('e1')]);
      expect(await countRows(pool, table)).toBe(1);
      expect((await b.get('e1'))?.state).toBe('claimed');
      await b.settle([delivered('e1')]);
      expect(await countRows(pool, table)).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('renewal keeps a held event from being taken for many lease lengths', async () => {
    const table = freshTable();
    const [a, b] = await openedPair({ pool, table, leaseMs: 150, pollIntervalMs: 50 });
    try {
      await a.append([ev('e1')]);
      expect((await a.claim({ limit: 10, now: Date.now() })).events).toHaveLength(1);
      for (let i = 0; i < 20; i++) {
        await sleep(40);
        expect((await b.claim({ limit: 10, now: Date.now() })).events).toEqual([]);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('the poll timer does not fire onChange after close() and does not hold the process', async () => {
    const table = freshTable();
    const a = new PostgresStore({ pool, table, leaseMs: 150, pollIntervalMs: 20 });
    await a.open();
    let calls = 0;
    a.watch(() => calls++);
    await sleep(100);
    await a.close();
    const after = calls;
    await sleep(150);
    expect(calls).toBe(after);
    await expect(a.claim({ limit: 1, now: Date.now() })).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
  });

  it('open() of an existing table takes no lock on it: a replica starting while an app transaction that enqueued is open neither waits for it nor holds up the others', async () => {
    const table = freshTable();
    const running = new PostgresStore({ pool, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await running.open();
    const app = await pool.connect();
    const starting = new PostgresStore({ pool, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    try {
      await app.query('BEGIN');
      await running.appendIn(app, [ev('in-transaction')]);
      // CREATE INDEX IF NOT EXISTS takes a SHARE lock on the table before it finds the index there: it would
      // wait for the app's transaction, and every insert and claim would queue behind it.
      const opened = await within(starting.open(), 10_000);
      const appended = await within(running.append([ev('other')]), 10_000);
      expect({ opened, appended }).toEqual({ opened: undefined, appended: undefined });
      await app.query('COMMIT');
      expect((await starting.claim({ limit: 5, now: Date.now() })).events.map((event) => event.id)).toEqual(['in-transaction', 'other']);
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      app.release();
      await starting.close();
      await running.close();
    }
  }, 60_000);
});
