import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { URL_A, URL_B, countRows, dead, ev } from './helpers.js';
import { freshTable, testPool } from './pool.js';

const pool = testPool();

async function filled(): Promise<string> {
  const table = freshTable();
  const store = new PostgresStore({ pool, table });
  await store.open();
  await store.append([ev('a'), ev('b', { url: URL_B })]);
  await store.claim({ limit: 1, now: Date.now() }).then(({ events }) => store.settle(events.map((event) => dead(event.id))));
  await store.append([ev('c')]);
  await store.close();
  return table;
}

describe('PostgresStore.inspect', () => {
  it('reads counters, dead letters and one event, with no lease, no write and only SELECT granted', async () => {
    const table = await filled();
    const role = `reader_${randomBytes(4).toString('hex')}`;
    await pool.query(`CREATE ROLE ${role} LOGIN; GRANT SELECT ON ${table} TO ${role}`);
    const reader = new pg.Pool({ ...inject('postgres'), user: role, max: 2 });
    try {
      const { stats, deadLetters, found } = await PostgresStore.inspect(reader, { table, find: 'c' });
      expect(stats).toMatchObject({ pending: 2, dead: 1, claimed: 0, delivered: 0, corrupt: 0 });
      expect(stats.endpoints[URL_A]).toEqual({ pending: 1, dead: 1 });
      expect(deadLetters.map((letter) => letter.id)).toEqual(['a']);
      expect(found).toMatchObject({ id: 'c', state: 'pending' });
      expect((await PostgresStore.inspect(reader, { table, deadLetters: { limit: 0 } })).deadLetters).toEqual([]);
    } finally {
      await reader.end();
    }
    expect(await countRows(pool, table, 'lease_owner IS NOT NULL')).toBe(0);
  });

  it('counts the events any flusher holds a live lease on as claimed', async () => {
    const table = await filled();
    const app = new PostgresStore({ pool, table });
    await app.open();
    try {
      await app.claim({ limit: 1, now: Date.now() });
      expect((await PostgresStore.inspect(pool, { table, deadLetters: { limit: 0 }, find: 'b' })).found?.state).toBe('claimed');
      expect((await PostgresStore.inspect(pool, { table })).stats.claimed).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('refuses a table that does not exist without creating it, and one that is not an outbox table', async () => {
    const table = freshTable();
    await expect(PostgresStore.inspect(pool, { table })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'table', message: expect.stringContaining('there is no table') });
    expect((await pool.query('SELECT to_regclass($1) AS t', [table])).rows[0].t).toBeNull();
    await pool.query(`CREATE TABLE ${table} (id text)`);
    await expect(PostgresStore.inspect(pool, { table })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('not a webhook-outbox table') });
  });
});
