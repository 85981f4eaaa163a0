import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { ev } from './helpers.js';

const pool = testPool(2);

async function indexesOf(table: string): Promise<string[]> {
  const { rows } = await pool.query(`SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname`, [table]);
  return rows.map((row) => row.indexname as string);
}

describe('PostgresStore: the names of its table and indexes', () => {
  it('a relation already named <table>_due (an app table, or another outbox\'s table) fails open() with the name, instead of leaving the table without its due-time index', async () => {
    const table = freshTable();
    await pool.query(`CREATE TABLE ${table}_due (id int)`); // e.g. the application's own table
    const store = new PostgresStore({ pool, table, pollIntervalMs: 1000, leaseMs: 60_000 });
    try {
      await expect(store.open()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'table', message: expect.stringContaining(`${table}_due`) });
      expect(await indexesOf(table)).not.toContain(`${table}_due`);
    } finally {
      await store.close();
    }
  });

  it('a table name that is another outbox table\'s index (<table>_held) is refused clearly, and the other table is untouched', async () => {
    const table = freshTable();
    const first = new PostgresStore({ pool, table, pollIntervalMs: 1000, leaseMs: 60_000 });
    await first.open();
    const second = new PostgresStore({ pool, table: `${table}_held`, pollIntervalMs: 1000, leaseMs: 60_000 });
    try {
      await expect(second.open()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'table', message: expect.stringContaining('is not a webhook-outbox table') });
      await first.append([ev('still-works')]);
      expect((await first.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['still-works']);
    } finally {
      await first.close();
      await second.close();
    }
  });
});
