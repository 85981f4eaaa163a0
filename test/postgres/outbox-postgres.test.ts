import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { MemoryStore } from '../../src/store/memory.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { closedAfterEach, expectAllDelivered, FAST_RETRY, newSecret, waitFor } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';

const pool = testPool();
const opened = closedAfterEach();

describe('Outbox on a PostgresStore', () => {
  it('writes an event in the caller\'s transaction: never sent when it rolls back, sent once it commits', async () => {
    const receiver = (opened.receiver = await startFlakyReceiver());
    const table = freshTable();
    await pool.query(`CREATE TABLE ${table}_orders (id int PRIMARY KEY)`);
    const outbox = (opened.outbox = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 20 }), url: receiver.url, retry: FAST_RETRY }));
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${table}_orders VALUES (1)`);
      const { id: rolledBack } = await outbox.enqueue({ body: { order: 1 } }, { transaction: client });
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${table}_orders VALUES (2)`);
      const { id: committed } = await outbox.enqueue({ body: { order: 2 } }, { transaction: client });
      // Not committed yet: invisible to the flusher (and to find()), so nothing is sent.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(receiver.requests).toHaveLength(0);
      await client.query('COMMIT');
      await waitFor(() => receiver.countById(committed) === 1, 10_000, 'the committed event');
      await outbox.drain({ timeoutMs: 10_000 });
      expect(receiver.requests.map((request) => [request.id, JSON.parse(request.body)])).toEqual([[committed, { order: 2 }]]);
      expect(await outbox.find(rolledBack)).toBeUndefined();
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
    } finally {
      client.release();
    }
  });

  it('a transactional enqueue committed a moment later is sent without waiting for the next poll', async () => {
    const receiver = (opened.receiver = await startFlakyReceiver());
    // Polls a minute apart: only the store's quick looks after the enqueue can find the committed events.
    const outbox = (opened.outbox = await Outbox.open({
      store: new PostgresStore({ pool, table: freshTable(), pollIntervalMs: 60_000, leaseMs: 180_000 }),
      url: receiver.url,
      retry: FAST_RETRY,
    }));
    const client = await pool.connect();
    try {
      const ids: string[] = [];
      for (const wait of [0, 30, 200]) {
        await client.query('BEGIN');
        ids.push((await outbox.enqueue({ body: { wait } }, { transaction: client })).id);
        await new Promise((resolve) => setTimeout(resolve, wait));
        await client.query('COMMIT');
      }
      await outbox.drain({ timeoutMs: 20_000 });
      expect(receiver.requests.map((request) => request.id).sort()).toEqual([...ids].sort());
    } finally {
      client.release();
    }
  });

  it('refuses a transaction on a store that cannot join one, and a transaction that is not a client, writing nothing', async () => {
    const store = new MemoryStore();
    const outbox = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:1/x', autoFlush: false }));
    await expect(outbox.enqueue({ body: 1 }, { transaction: {} })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'transaction' });
    await expect(outbox.enqueue({ body: 1 }, { tx: {} } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(store.stats().pending).toBe(0);
    const table = freshTable();
    const pg = await Outbox.open({ store: new PostgresStore({ pool, table }), url: 'http://127.0.0.1:1/x', autoFlush: false });
    try {
      await expect(pg.enqueue({ body: 1 }, { transaction: 'BEGIN' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'transaction' });
      await expect(pg.enqueue({ body: 1, orderingKey: 'a\u0000b' })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
    } finally {
      await pg.close();
    }
  });

  it('two outboxes on one table deliver a backlog through an outage once each, and see each other\'s events', async () => {
    const secret = newSecret();
    const receiver = (opened.receiver = await startFlakyReceiver({ secret, script: Array.from({ length: 40 }, () => 500) }));
    const table = freshTable();
    const options = { url: receiver.url, signingSecret: secret, retry: FAST_RETRY };
    const producer = await Outbox.open({ ...options, store: new PostgresStore({ pool: testPool(5), table, pollIntervalMs: 20 }), autoFlush: false });
    const outbox = (opened.outbox = await Outbox.open({ ...options, store: new PostgresStore({ pool: testPool(5), table, pollIntervalMs: 20 }) }));
    const other = await Outbox.open({ ...options, store: new PostgresStore({ pool: testPool(5), table, pollIntervalMs: 20 }) });
    try {
      const enqueued = new Map<string, unknown>();
      for (let n = 0; n < 200; n++) {
        const body = { n };
        const { id } = await producer.enqueue({ body });
        enqueued.set(id, body);
      }
      await waitFor(() => receiver.deliveredIds().size === 200, 20_000, 'every event delivered');
      await Promise.all([outbox.drain({ timeoutMs: 10_000 }), other.drain({ timeoutMs: 10_000 })]);
      expectAllDelivered(receiver, enqueued);
      // A lease is never taken while held: no event got a 2xx twice.
      for (const id of enqueued.keys()) expect(receiver.requests.filter((request) => request.id === id && request.status === 200)).toHaveLength(1);
      expect(outbox.stats().delivered + other.stats().delivered).toBe(200);
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
    } finally {
      await other.close();
      await producer.close();
    }
  });
});
