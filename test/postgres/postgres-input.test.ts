import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { closedAfterEach } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';
import { countRows, dead, delivered, ev } from './helpers.js';

const pool = testPool();
const opened = closedAfterEach();

describe('PostgresStore: input', () => {
  /** Opens a store of `table` and takes one event through to a dead letter and back out. */
  async function holdsDeadLetters(table: string): Promise<void> {
    const store = new PostgresStore({ pool, table });
    await store.open();
    try {
      await store.append([ev('d1')]);
      await store.claim({ limit: 1, now: Date.now() });
      await store.settle([dead('d1')]);
      expect((await store.deadLetters()).map((letter) => letter.id)).toEqual(['d1']);
    } finally {
      await store.close();
    }
  }

  it('a table name of 63 characters (accepted by the option check) can hold dead letters', async () => {
    const table = `${freshTable()}_`.padEnd(63, 'x');
    expect(table).toHaveLength(63);
    await holdsDeadLetters(table);
  });

  it('every table name the option check accepts can be opened (a reserved word: "order")', async () => {
    // The regex accepts it; PostgreSQL needs it quoted.
    await pool.query('DROP TABLE IF EXISTS "order" CASCADE; DROP SEQUENCE IF EXISTS order_dead_seq');
    const store = new PostgresStore({ pool, table: 'order' });
    try {
      await store.open();
      await store.append([ev('o1')]);
      expect(store.stats().pending).toBe(1);
    } finally {
      await store.close();
      await pool.query('DROP TABLE IF EXISTS "order" CASCADE; DROP SEQUENCE IF EXISTS order_dead_seq');
    }
  });

  it('looking up ids with U+0000 answers "not here" (find, replay, purge, deadLetters), not ERR_STORE_IO', async () => {
    const table = freshTable();
    const outbox = (opened.outbox = await Outbox.open({ store: new PostgresStore({ pool, table }), url: 'http://127.0.0.1:1/a', autoFlush: false }));
    await expect(outbox.find('msg_\u0000')).resolves.toBeUndefined();
    await expect(outbox.deadLetters({ ids: ['msg_\u0000'] })).resolves.toEqual([]);
    await expect(outbox.replay({ ids: ['msg_\u0000'] })).resolves.toBe(0);
    await expect(outbox.purge({ ids: ['msg_\u0000'] })).resolves.toBe(0);
    await expect(outbox.deadLetters({ endpoint: 'http://127.0.0.1:1/\u0000' })).resolves.toEqual([]);
  });

  it('deadLetters({ limit: Infinity }), which Outbox accepts, lists every dead letter', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table });
    const outbox = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:1/a', autoFlush: false }));
    await store.append([ev('d1'), ev('d2')]);
    await store.claim({ limit: 10, now: Date.now() });
    await store.settle([dead('d1'), dead('d2')]);
    await expect(outbox.deadLetters({ limit: Infinity })).resolves.toHaveLength(2);
    await expect(outbox.replay({ limit: Infinity })).resolves.toBe(2);
  });

  it('a lone surrogate in a header value (JSON \\ud800 in a json column) is stored and read back as it was', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table });
    const outbox = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:1/a', autoFlush: false }));
    // enqueue() refuses it (nothing above U+00FF goes into an HTTP header); a store keeps what it is given.
    await store.append([ev('good'), ev('odd', { headers: { 'x-name': 'a\ud800b' } })]);
    expect(await countRows(pool, table)).toBe(2);
    expect((await outbox.find('odd'))?.headers['x-name']).toBe('a\ud800b');
  });

  it('huge batches: 30 000 events appended, claimed and settled in one call each', async () => {
    const table = freshTable();
    // No poll during the test: its repair sweep may be judging a key's head just as the append does (the
    // head then comes a poll later, by design), and the claim right after the append would miss it.
    const store = new PostgresStore({ pool, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await store.open();
    try {
      const events = Array.from({ length: 30_000 }, (_, i) => ev(`h${i}`, { orderingKey: i % 2 === 0 ? `k${i % 7}` : undefined }));
      await store.append(events);
      expect(store.stats().pending).toBe(30_000);
      const { events: got } = await store.claim({ limit: Infinity, now: Date.now() });
      // one per key (7 keys) plus every unkeyed event
      expect(got).toHaveLength(15_000 + 7);
      await store.settle(got.map((e) => delivered(e.id)));
      expect(await countRows(pool, table)).toBe(15_000 - 7);
    } finally {
      await store.close();
    }
  });

  it('claim limits: Infinity takes all, NaN / 0 / negative take none, 1.5 takes one', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table });
    await store.open();
    try {
      await store.append([ev('a'), ev('b'), ev('c')]);
      for (const limit of [NaN, 0, -1, -Infinity]) expect((await store.claim({ limit, now: Date.now() })).events).toHaveLength(0);
      expect((await store.claim({ limit: 1.5, now: Date.now() })).events).toHaveLength(1);
      expect((await store.claim({ limit: Infinity, now: Date.now() })).events).toHaveLength(2);
    } finally {
      await store.close();
    }
  });

  it('five stores opening one new table at once, and a schema-qualified table with dead letters', async () => {
    const table = freshTable();
    const stores = Array.from({ length: 5 }, () => new PostgresStore({ pool, table }));
    await Promise.all(stores.map((store) => store.open()));
    await stores[0]!.append([ev('x')]);
    for (const store of stores) await store.close();
    const schema = `s_${table}`;
    await pool.query(`CREATE SCHEMA ${schema}`);
    await holdsDeadLetters(`${schema}.t`);
  });

  it('table option injection is refused', () => {
    for (const table of ['t; DROP TABLE x', 'T', 'a.b.c', 'x"y', '1abc', 'a'.repeat(64), "t'--", 'a-b', '', 'é']) {
      expect(() => new PostgresStore({ pool, table })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
  });

  it('timings a timer cannot hold, or leases shorter than three polls, are refused', () => {
    for (const [options, option] of [
      [{ pollIntervalMs: 2 ** 31 }, 'pollIntervalMs'],
      [{ pollIntervalMs: 0 }, 'pollIntervalMs'],
      [{ pollIntervalMs: 1_000, leaseMs: 2_999 }, 'leaseMs'],
      [{ leaseMs: 1.5 }, 'leaseMs'],
    ] as const) {
      expect(() => new PostgresStore({ pool, ...options })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }));
    }
  });

  it('U+0000 in id, url, ordering key or header is refused before anything is written; in a body it is stored', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table });
    await store.open();
    try {
      for (const bad of [ev('a\u0000'), ev('b', { url: 'http://x/\u0000' }), ev('c', { orderingKey: '\u0000' }), ev('d', { headers: { 'x-a': '\u0000' } })]) {
        await expect(store.append([ev('ok'), bad])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      }
      expect(await countRows(pool, table)).toBe(0);
      await store.append([ev('z', { body: new Uint8Array([0, 1, 0, 255]) })]);
      const { events } = await store.claim({ limit: 1, now: Date.now() });
      expect([...(events[0]?.body ?? [])]).toEqual([0, 1, 0, 255]);
    } finally {
      await store.close();
    }
  });

  it('preparedStatements: the store sends named prepared statements, or plain ones with false; anything else is refused', async () => {
    expect(() => new PostgresStore({ pool, preparedStatements: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'preparedStatements' }));
    for (const preparedStatements of [true, false]) {
      // One connection, so what the store prepared is all on it.
      const one = new pg.Pool({ ...inject('postgres'), max: 1 });
      try {
        await one.query('DEALLOCATE ALL');
        const store = new PostgresStore({ pool: one, table: freshTable(), preparedStatements });
        await store.open();
        await store.append([ev('p1'), ev('p2')]);
        await store.claim({ limit: 2, now: Date.now() });
        await store.settle([delivered('p1'), dead('p2')]);
        expect((await store.deadLetters()).map((letter) => letter.id)).toEqual(['p2']);
        await store.close();
        const names = (await one.query(`SELECT name FROM pg_prepared_statements WHERE name LIKE 'webhook_outbox_%'`)).rows;
        expect(names.length > 0).toBe(preparedStatements);
      } finally {
        await one.end();
      }
    }
  });
});
