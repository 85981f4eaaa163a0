import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable } from './pool.js';
import { dead, ev } from './helpers.js';
import type { RunningPostgres } from './server.js';
import { startPostgres } from './server.js';

// A dedicated server: these tests fill PostgreSQL's shared lock table (max_locks_per_transaction x
// max_connections = 64 x 200 here; a single transaction got 20,000 advisory locks but not 50,000 on this PostgreSQL 17), which would disturb other files.
let server: RunningPostgres;
let pool: pg.Pool;
beforeAll(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ host: server.host, port: server.port, user: server.user, database: server.database, max: 4 });
}, 60_000);
afterAll(async () => {
  await pool?.end();
  await server?.remove();
});

const N = 60_000;

describe('PostgresStore: transactions touching many ordering keys', () => {
  it('replay() of every dead letter with as many distinct keys (one per order) fits PostgreSQL\'s lock table', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table, pollIntervalMs: 1000, leaseMs: 60_000 });
    await store.open();
    try {
      // 60,000 dead letters, each of its own key, made in chunks the lock table can hold.
      for (let i = 0; i < N; i += 10_000) {
        await store.append(Array.from({ length: 10_000 }, (_, j) => ev(`d${i + j}`, { orderingKey: `order-${i + j}` })));
        const { events } = await store.claim({ limit: Infinity, now: Date.now() });
        await store.settle(events.map((e) => dead(e.id)));
      }
      expect(store.stats().dead).toBe(N);
      const result = await store.replay(undefined, Date.now()).then(
        (n) => ({ replayed: n }),
        (error: Error & { code?: string; cause?: { code?: string } }) => ({ error: `${error.code} ${error.cause?.code}: ${error.message}` }),
      );
      expect(result).toEqual({ replayed: N });
    } finally {
      await store.close();
    }
  }, 120_000);

  it('append() of one batch of 60,000 events with distinct keys (a tick of enqueues) fits PostgreSQL\'s lock table', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table, pollIntervalMs: 1000, leaseMs: 60_000 });
    await store.open();
    try {
      const result = await store.append(Array.from({ length: N }, (_, j) => ev(`a${j}`, { orderingKey: `order-${j}` }))).then(
        () => 'appended',
        (error: Error & { code?: string; cause?: { code?: string } }) => `${error.code} ${error.cause?.code}: ${error.message}`,
      );
      expect(result).toBe('appended');
    } finally {
      await store.close();
    }
  }, 120_000);
});
