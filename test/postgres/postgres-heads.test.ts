import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { countRows, dead, delivered, ev, hooked } from './helpers.js';

const pool = testPool(6);

/** Rows of the table that are pending with a key whose pending rows are all parked (no head: never claimable). */
async function headless(table: string): Promise<string[]> {
  const { rows } = await pool.query(
    `SELECT ordering_key FROM ${table} WHERE dead_at IS NULL AND ordering_key IS NOT NULL GROUP BY ordering_key HAVING bool_and(parked)`,
  );
  return rows.map((row) => row.ordering_key as string);
}

describe('PostgresStore: no ordering key left with every pending event parked', () => {
  it('replay() of every dead letter while another flusher writes a new dead letter: it is replayed and claimable (its key not left headless)', async () => {
    const table = freshTable();
    // a: the replayer; its replay statement waits until b's dead outcome has committed (the window between
    // deadKeys and the replay UPDATE, where b's settle is a few ms on a loaded server).
    let gate: (() => Promise<void>) | undefined;
    const aPool = hooked(testPool(2), async (text, _values, run) => {
      if (text.includes('SET dead_at = NULL, dead_reason = NULL') && gate !== undefined) {
        const g = gate;
        gate = undefined;
        await g();
      }
      return run();
    });
    const a = new PostgresStore({ pool: aPool, table, leaseMs: 60_000, pollIntervalMs: 1000 });
    const b = new PostgresStore({ pool: testPool(2), table, leaseMs: 60_000, pollIntervalMs: 1000 });
    await a.open();
    await b.open();
    try {
      await b.append([ev('x1', { orderingKey: 'K' })]);
      const out = await b.claim({ limit: 10, now: Date.now() });
      expect(out.events.map((e) => e.id)).toEqual(['x1']);
      // While a's replay() of everything runs, x1 dies (its key's lock is free: a's replay did not see K).
      gate = async () => b.settle([dead('x1')]);
      // x1 died just before the replay's statement ran: it is replayed, and its key's head judged after.
      expect(await a.replay(undefined, Date.now())).toBe(1);
      expect(await countRows(pool, table, 'dead_at IS NULL')).toBe(1);
      const got = (await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
      expect({ got, headlessKeys: await headless(table) }).toEqual({ got: ['x1'], headlessKeys: [] });
    } finally {
      await a.close();
      await b.close();
    }
  });

  for (const level of ['REPEATABLE READ', 'SERIALIZABLE']) {
    it(`enqueue of a keyed event in a ${level} transaction is refused, nothing written, the transaction still usable (its snapshot would judge the key's first event on the past)`, async () => {
      const table = freshTable();
      const flusher = new PostgresStore({ pool, table, leaseMs: 60_000, pollIntervalMs: 1000 });
      await flusher.open();
      const client = await pool.connect();
      try {
        await flusher.append([ev('k1', { orderingKey: 'K' })]);
        expect((await flusher.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['k1']);
        await client.query(`BEGIN ISOLATION LEVEL ${level}`);
        await client.query('SELECT 1 AS business_read'); // the caller's own work: the snapshot is taken here
        await flusher.settle([delivered('k1')]); // k1 delivered and gone, committed
        await expect(flusher.appendIn(client, [ev('k2', { orderingKey: 'K' })])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'transaction' });
        // Without a key the isolation does not matter: it is written in the transaction.
        await flusher.appendIn(client, [ev('free')]);
        await client.query('COMMIT');
        const got = (await flusher.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
        expect({ got, headlessKeys: await headless(table) }).toEqual({ got: ['free'], headlessKeys: [] });
      } finally {
        client.release();
        await flusher.close();
      }
    });
  }

  it('a database whose default isolation is REPEATABLE READ: an append while a settle of its key holds the key still ends with its event the head (the store\'s transactions are READ COMMITTED)', async () => {
    const table = freshTable();
    const rr = () => {
      const p = testPool(2);
      p.on('connect', (client) => void client.query(`SET default_transaction_isolation = 'repeatable read'`));
      return p;
    };
    let gate: Promise<void> | undefined;
    let atCommit: () => void = () => undefined;
    const reachedCommit = new Promise<void>((resolve) => (atCommit = resolve));
    const a = new PostgresStore({
      pool: hooked(rr(), async (text, _values, run) => {
        if (text === 'COMMIT' && gate !== undefined) {
          atCommit();
          await gate;
        }
        return run();
      }),
      table,
      leaseMs: 60_000,
      pollIntervalMs: 1000,
    });
    const b = new PostgresStore({ pool: rr(), table, leaseMs: 60_000, pollIntervalMs: 1000 });
    await a.open();
    await b.open();
    try {
      await a.append([ev('k1', { orderingKey: 'K' })]);
      expect((await a.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['k1']);
      let open: () => void = () => undefined;
      gate = new Promise<void>((resolve) => (open = resolve));
      const settling = a.settle([delivered('k1')]); // holds K's lock until its COMMIT
      await reachedCommit;
      const appending = b.append([ev('k2', { orderingKey: 'K' })]); // waits for K's lock
      for (let i = 0; i < 100; i++) {
        const waiting = await pool.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
        if (waiting.rows[0].n > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      gate = undefined;
      open();
      await settling;
      await appending;
      // b's append found K's lock taken (a was judging K): it judges K again at its next poll.
      let got: string[] = [];
      for (let i = 0; i < 100 && got.length === 0; i++) {
        got = (await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
        if (got.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect({ got, headlessKeys: await headless(table) }).toEqual({ got: ['k2'], headlessKeys: [] });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a key left with every pending event parked (by a path nobody foresaw) is found at the next count and repaired', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table, leaseMs: 600, pollIntervalMs: 50 });
    await store.open();
    try {
      await store.append([ev('h1', { orderingKey: 'K' }), ev('h2', { orderingKey: 'K' })]);
      await pool.query(`UPDATE ${table} SET parked = true`); // what a missed path would leave
      expect(await headless(table)).toEqual(['K']);
      expect((await store.claim({ limit: 10, now: Date.now() })).events).toEqual([]);
      for (let i = 0; i < 200 && (await headless(table)).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await store.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['h1']);
    } finally {
      await store.close();
    }
  });
});
