import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { closedAfterEach, FAST_RETRY, waitFor } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';
import { countRows, dead, ev, openedPair, sleep } from './helpers.js';

const pool = testPool();
const opened = closedAfterEach();

describe('PostgresStore: enqueue in the caller\'s transaction', () => {
  it('a refused message does not abort the caller\'s transaction; the outbox closed before COMMIT still gets its event sent', async () => {
    const receiver = (opened.receiver = await startFlakyReceiver());
    const table = freshTable();
    const first = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 20 }), url: receiver.url, retry: FAST_RETRY, autoFlush: false });
    await pool.query(`CREATE TABLE ${table}_orders (id int PRIMARY KEY)`);
    const client = await pool.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      await expect(first.enqueue({ body: undefined }, { transaction: client })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      await expect(first.enqueue({ body: 1, orderingKey: 'a\u0000' }, { transaction: client })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      await client.query(`INSERT INTO ${table}_orders VALUES (1)`); // the transaction is still usable
      ({ id } = await first.enqueue({ body: { order: 1 } }, { transaction: client }));
      await first.close();
      await expect(first.enqueue({ body: 2 }, { transaction: client })).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await countRows(pool, `${table}_orders`)).toBe(1);
    const second = (opened.outbox = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 20 }), url: receiver.url, retry: FAST_RETRY }));
    await waitFor(() => receiver.countById(id) === 1, 10_000, 'the committed event');
    await second.drain({ timeoutMs: 10_000 });
    expect(await countRows(pool, table)).toBe(0);
  });

  // docs/05 "Polling": the store cannot see the app's COMMIT, so it has the outbox look again at 2, 6, 18,
  // 54, 162 and 486 ms after the enqueue (about 0.7 s in all). It stopped after 162 ms (five looks) before.
  it('after a transactional enqueue the store has the outbox look again six times, threefold from 2 ms to 486 ms', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table, pollIntervalMs: 10_000 });
    await store.open();
    const looks: number[] = [];
    store.watch((): void => void looks.push(Date.now()));
    const client = await pool.connect();
    let start: number;
    try {
      await client.query('BEGIN');
      start = Date.now();
      await store.appendIn(client, [ev('t1')]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await sleep(1_500);
    await store.close();
    expect(looks).toHaveLength(6);
    expect((looks.at(-1) as number) - start).toBeGreaterThanOrEqual(2 + 6 + 18 + 54 + 162 + 486);
  });

  it('a store error inside the transaction rejects enqueue with ERR_STORE_IO and nothing is left after ROLLBACK', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table });
    const outbox = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:1/a', autoFlush: false }));
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1/0').catch(() => undefined); // the app's own failed statement: transaction aborted
      await expect(outbox.enqueue({ body: 1 }, { transaction: client })).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await countRows(pool, table)).toBe(0);
  });

  it('supersede across flushers: the backlog goes marked in one claim, the superseder waits for it', async () => {
    const table = freshTable();
    const [a, b] = await openedPair({ pool, table });
    try {
      await a.append([ev('s1', { orderingKey: 'K' }), ev('s2', { orderingKey: 'K' })]);
      await b.append([ev('s3', { orderingKey: 'K', supersede: true })]);
      const { events } = await a.claim({ limit: 10, now: Date.now() });
      expect(events.map((e) => [e.id, e.supersededBy])).toEqual([['s1', 's3'], ['s2', 's3']]);
      expect((await b.claim({ limit: 10, now: Date.now() })).events).toEqual([]);
      await a.settle(events.map((e) => ({ id: e.id, type: 'superseded', by: 's3' })));
      expect((await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['s3']);
      await b.settle([dead('s3')]);
      expect(await countRows(pool, table)).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('PostgresStore: a transaction that is not one', () => {
  it('refuses a client outside a transaction (no BEGIN), with or without an ordering key, writing nothing', async () => {
    const table = freshTable();
    const outbox = (opened.outbox = await Outbox.open({ store: new PostgresStore({ pool, table }), url: 'http://127.0.0.1:1/a', autoFlush: false }));
    const client = await pool.connect();
    try {
      for (const message of [{ body: 1 }, { body: 2, orderingKey: 'K' }]) {
        await expect(outbox.enqueue(message, { transaction: client })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'transaction' });
      }
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
      // Inside one, an id already there is skipped, not mistaken for a missing BEGIN.
      await outbox.enqueue({ id: 'same', body: 1 });
      await client.query('BEGIN');
      await expect(outbox.enqueue({ id: 'same', body: 2 }, { transaction: client })).resolves.toEqual({ id: 'same' });
      await client.query('COMMIT');
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1);
    } finally {
      client.release();
    }
  });
});
