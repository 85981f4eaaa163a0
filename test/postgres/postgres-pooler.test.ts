import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import type { PostgresPool, PostgresQuery } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { delivered, ev, settled } from './helpers.js';

const pool = testPool(2);

interface Server {
  client: pg.Client;
  queue: Promise<unknown>;
}

/** Server sessions of a pooler (its connections to PostgreSQL). */
async function serverSessions(n: number): Promise<Server[]> {
  const sessions: Server[] = [];
  for (let i = 0; i < n; i++) {
    const client = new pg.Client(inject('postgres'));
    await client.connect();
    sessions.push({ client, queue: Promise.resolve() });
  }
  return sessions;
}

/**
 * An app's pool of `clients` connections to a pooler in transaction mode (PgBouncer without prepared-statement
 * support), simulated faithfully enough for named statements: each client connection keeps node-postgres' own
 * record of what it has prepared, while the statements run on the pooler's shared server `sessions`, one
 * statement (or one transaction, from connect() to release()) at a time, handed out in turn. A server session
 * keeps what any client prepared on it; a client that prepared a name on one server session believes it
 * prepared it everywhere.
 */
function transactionPooler(sessions: Server[], clients: number): PostgresPool & { errors: string[] } {
  const known = Array.from({ length: clients }, () => ({ parsed: {}, submitted: {} }));
  let nextClient = 0;
  let nextServer = 0;
  const errors: string[] = [];
  const exclusive = <T>(server: Server, work: () => Promise<T>): Promise<T> => {
    const run = server.queue.then(work);
    server.queue = run.catch(() => undefined);
    return run;
  };
  const on = async (server: Server, view: { parsed: object; submitted: object }, query: PostgresQuery) => {
    const connection = (server.client as unknown as { connection: { parsedStatements: object; submittedNamedStatements: object } }).connection;
    connection.parsedStatements = view.parsed;
    connection.submittedNamedStatements = view.submitted;
    try {
      return await server.client.query(query);
    } catch (error) {
      errors.push(`${(error as { code?: string }).code}: ${(error as Error).message}`);
      throw error;
    }
  };
  return {
    errors,
    query: (query: PostgresQuery) => {
      const view = known[nextClient++ % clients]!;
      const server = sessions[nextServer++ % sessions.length]!;
      return exclusive(server, () => on(server, view, query)) as never;
    },
    async connect() {
      const view = known[nextClient++ % clients]!;
      const server = sessions[nextServer++ % sessions.length]!;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      await new Promise<void>((entered) => void exclusive(server, () => (entered(), held)));
      return { query: (query: PostgresQuery) => on(server, view, query) as never, release: () => release() };
    },
  };
}

/** Calls made one after the other, each failure noted (`what: message`) instead of thrown. */
function attempts(): { failures: string[]; attempt(what: string, call: () => Promise<unknown>): Promise<void> } {
  const failures: string[] = [];
  return {
    failures,
    async attempt(what, call) {
      const result = await settled(call());
      if (result.error !== undefined) failures.push(`${what}: ${(result.error as Error).message}`);
    },
  };
}

describe('PostgresStore behind a transaction-mode pooler that shares server sessions between clients (PgBouncer without prepared statements)', () => {
  const all: Server[] = [];
  const sessions = async (n: number): Promise<Server[]> => {
    const made = await serverSessions(n);
    all.push(...made);
    return made;
  };
  afterAll(async () => {
    for (const server of all) await server.client.end();
  });

  it('control: with preparedStatements false the simulated pooler works (open, append, claim, settle)', async () => {
    const pooler = transactionPooler(await sessions(1), 2);
    const store = new PostgresStore({ pool: pooler, table: freshTable(), preparedStatements: false, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await store.open();
    await store.append([ev('c1'), ev('c2', { orderingKey: 'K' })]);
    const got = await store.claim({ limit: 5, now: Date.now() });
    expect(got.events.map((e) => e.id).sort()).toEqual(['c1', 'c2']);
    await store.settle(got.events.map((e) => delivered(e.id)));
    await store.close();
    expect(pooler.errors).toEqual([]);
  });

  it('two processes, one pooler server session: the second to prepare a statement the session already has ("prepared statement ... already exists", 42P05) goes on like at "does not exist": open, append, claim all succeed', async () => {
    // Every store names a statement the same way (a hash of its text), so on a pooler's shared server
    // session the second process to prepare it always meets this.
    const server = await sessions(1);
    const first = transactionPooler(server, 1);
    const second = transactionPooler(server, 1);
    const table = freshTable();
    const a = new PostgresStore({ pool: first, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await a.open();
    await a.append([ev('p1')]);
    const b = new PostgresStore({ pool: second, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    const { failures, attempt } = attempts();
    await attempt('b.open', () => b.open());
    await attempt('b.append', () => b.append([ev('p2')]));
    await attempt('b.claim', async () => {
      const got = await b.claim({ limit: 5, now: Date.now() });
      expect(got.events.map((e) => e.id)).toEqual(['p1', 'p2']);
      await b.settle(got.events.map((e) => delivered(e.id)));
    });
    await a.close().catch(() => undefined);
    await b.close().catch(() => undefined);
    // The pooler's answer once, then the store no longer prepares.
    expect({ failures, pooler: second.errors }).toEqual({ failures: [], pooler: [expect.stringMatching(/^42P05: prepared statement "webhook_outbox_\w+" already exists$/)] });
  });

  it('two processes sharing a pooler with two server sessions: every call of each succeeds (42P05 and 26000 both mean "the pooler forgets")', async () => {
    const pooler = transactionPooler(await sessions(2), 3);
    const table = freshTable();
    // The table made beforehand, so open() itself is not the first statement to meet the pooler.
    const maker = new PostgresStore({ pool, table });
    await maker.open();
    await maker.close();
    const a = new PostgresStore({ pool: pooler, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    const b = new PostgresStore({ pool: pooler, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    const { failures, attempt } = attempts();
    await attempt('a.open', () => a.open());
    await attempt('b.open', () => b.open());
    for (let i = 0; i < 6; i++) {
      await attempt(`a.append ${i}`, () => a.append([ev(`a${i}`)]));
      await attempt(`b.append ${i}`, () => b.append([ev(`b${i}`)]));
      await attempt(`a.claim ${i}`, async () => a.settle((await a.claim({ limit: 1, now: Date.now() })).events.map((e) => delivered(e.id))));
      await attempt(`b.claim ${i}`, async () => b.settle((await b.claim({ limit: 1, now: Date.now() })).events.map((e) => delivered(e.id))));
    }
    await a.close().catch(() => undefined);
    await b.close().catch(() => undefined);
    expect(failures).toEqual([]);
  });
});

describe('PostgresStore behind a pooler that forgets prepared statements between transactions (PgBouncer in transaction mode without max_prepared_statements)', () => {
  // Every statement runs on a server connection that has forgotten what this client prepared.
  const forgetting = (on: { query(query: PostgresQuery): Promise<pg.QueryResult> }, names: (string | undefined)[] = []) => async (query: PostgresQuery) => {
    names.push(query.name);
    await on.query({ text: 'DEALLOCATE ALL' });
    return on.query(query);
  };
  const onePool = (): pg.Pool => new pg.Pool({ ...inject('postgres'), max: 1 });

  it('the store stops preparing at the first "does not exist" and runs that statement again: everything works, with keys too', async () => {
    const one = onePool();
    const names: (string | undefined)[] = [];
    const pooler = {
      query: forgetting(one, names),
      connect: async () => {
        const client = await one.connect();
        return { query: forgetting(client, names), release: (error?: Error | boolean) => client.release(error) };
      },
    };
    try {
      for (const preparedStatements of [undefined, false]) {
        names.length = 0;
        const store = new PostgresStore({ pool: pooler, table: freshTable(), ...(preparedStatements === undefined ? {} : { preparedStatements }) });
        await store.open();
        await store.append([ev('f1'), ev('k1', { orderingKey: 'K' }), ev('k2', { orderingKey: 'K' })]);
        expect((await store.claim({ limit: 5, now: Date.now() })).events.map((event) => event.id)).toEqual(['f1', 'k1']);
        await store.settle([delivered('f1'), delivered('k1')]);
        expect((await store.claim({ limit: 5, now: Date.now() })).events.map((event) => event.id)).toEqual(['k2']);
        await store.settle([delivered('k2')]);
        expect(store.stats().pending).toBe(0);
        // Prepared only until the first "does not exist" (with false, never): a claim now goes unnamed.
        expect(names.some((name) => name !== undefined)).toBe(preparedStatements === undefined);
        names.length = 0;
        await store.claim({ limit: 5, now: Date.now() });
        expect(names).toEqual([undefined]);
        await store.close();
      }
    } finally {
      await one.end();
    }
  });

  it('a transactional enqueue that meets it fails with ERR_STORE_IO (the app rolls back); the next goes unprepared and commits', async () => {
    const one = onePool();
    const store = new PostgresStore({ pool: one, table: freshTable() });
    await store.open();
    const client = await one.connect();
    const app = { query: forgetting(client) };
    let released = false;
    const inTransaction = async (id: string): Promise<void> => {
      await client.query('BEGIN');
      try {
        await store.appendIn(app, [ev(id)]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    };
    try {
      await inTransaction('t1'); // prepared on this connection, used once
      await expect(inTransaction('t2')).rejects.toMatchObject({ code: 'ERR_STORE_IO', message: expect.stringContaining('does not exist') });
      await inTransaction('t3');
      client.release();
      released = true;
      expect((await store.claim({ limit: 5, now: Date.now() })).events.map((event) => event.id)).toEqual(['t1', 't3']);
    } finally {
      if (!released) client.release();
      await store.close();
      await one.end();
    }
  });
});
