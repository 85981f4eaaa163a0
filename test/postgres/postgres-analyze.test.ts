import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { cleanedUpAfterEach, ev, hooked, sleep, within } from './helpers.js';

const other = testPool(4);
const cleanups = cleanedUpAfterEach();

/**
 * Another session holding SHARE UPDATE EXCLUSIVE on the table: the lock a manual VACUUM (an outbox table
 * bloats: a DBA's VACUUM of it can run for minutes), CREATE INDEX CONCURRENTLY or another session's ANALYZE
 * holds for as long as it runs. It does not conflict with anything an outbox did before (inserts, updates,
 * deletes), only with ANALYZE.
 */
async function maintenance(table: string): Promise<() => Promise<void>> {
  const client = await other.connect();
  await client.query('BEGIN');
  await client.query(`LOCK TABLE ${table} IN SHARE UPDATE EXCLUSIVE MODE`);
  let ended = false;
  const end = async (): Promise<void> => {
    if (ended) return;
    ended = true;
    await client.query('ROLLBACK');
    client.release();
  };
  cleanups.push(end);
  return end;
}

/** Until the store has run its ANALYZE (skipped, or waiting for the lock before the fix): a state, no timing. */
async function analyzeRun(statements: string[]): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (statements.some((text) => text.startsWith('ANALYZE'))) return;
    await sleep(50);
  }
  throw new Error('the store never ran ANALYZE');
}

describe('PostgresStore: its own ANALYZE and the table\'s maintenance', () => {
  it('pool of one connection: while a VACUUM (any SHARE UPDATE EXCLUSIVE holder) runs, enqueues and claims still go through (the store\'s ANALYZE must not hold the only connection waiting for it)', async () => {
    const table = freshTable();
    const one = new pg.Pool({ ...inject('postgres'), max: 1 });
    const seen = hooked(one);
    const store = new PostgresStore({ pool: seen, table, pollIntervalMs: 50, leaseMs: 60_000 });
    await store.open();
    cleanups.push(() => one.end());
    cleanups.push(() => store.close());
    await maintenance(table);
    // Inserts do not conflict with VACUUM: the burst goes in.
    await store.append(Array.from({ length: 2_000 }, (_, i) => ev(`e${i}`)));
    await analyzeRun(seen.statements);
    // Before PostgresStore ran ANALYZE itself, nothing here waited for the VACUUM.
    // Both normally answer in milliseconds; 10 s tells a hang from a slow machine.
    const [appended, claimed] = await Promise.all([within(store.append([ev('late')]), 10_000), within(store.claim({ limit: 1, now: Date.now() }), 10_000)]);
    expect({ appended, claimed: claimed === 'timeout' ? claimed : claimed.events.length }).toEqual({ appended: undefined, claimed: 1 });
  }, 60_000);

  it('close() hands back the leases it holds while its ANALYZE waits for a VACUUM (else they lapse only after leaseMs, and Outbox.close() gives up on the store after 2 s)', async () => {
    const table = freshTable();
    const seen = hooked(other);
    const store = new PostgresStore({ pool: seen, table, pollIntervalMs: 50, leaseMs: 60_000 });
    await store.open();
    cleanups.push(() => store.close());
    await store.append([ev('held')]);
    expect((await store.claim({ limit: 1, now: Date.now() })).events.map((e) => e.id)).toEqual(['held']);
    const vacuumEnds = await maintenance(table);
    await store.append(Array.from({ length: 2_000 }, (_, i) => ev(`e${i}`)));
    await analyzeRun(seen.statements);
    const closing = store.close();
    cleanups.push(async () => {
      await vacuumEnds();
      await closing;
    });
    let leased = true;
    for (let i = 0; i < 200 && leased; i++) {
      leased = (await other.query(`SELECT lease_owner IS NOT NULL AS leased FROM ${table} WHERE id = 'held'`)).rows[0].leased as boolean;
      if (leased) await sleep(50);
    }
    expect({ leasedAfter10sOfClose: leased, closed: await within(closing, 1) }).toEqual({ leasedAfter10sOfClose: false, closed: undefined });
  }, 60_000);

  it('inspect() (SELECT-only) never runs ANALYZE, even on a never-analyzed table far past the threshold; an opened store does, once', async () => {
    const table = freshTable();
    const maker = new PostgresStore({ pool: other, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await maker.open();
    await maker.close();
    const now = Date.now();
    // Written behind the store's back, so no store has counted them yet.
    await other.query(`INSERT INTO ${table} (id, url, headers, body, created_at, next_attempt_at) SELECT 'i' || g, 'http://127.0.0.1:1/a', '{}', '', $1, $1 FROM generate_series(1, 5000) g`, [now]);
    const reltuples = async (): Promise<number> => Number((await other.query(`SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, [table])).rows[0].reltuples);
    const before = await reltuples();
    const seen = hooked(other);
    const inspection = await PostgresStore.inspect(seen, { table });
    expect(inspection.stats.pending).toBe(5_000);
    expect(seen.statements.filter((text) => /ANALYZE/i.test(text))).toEqual([]);
    expect(await reltuples()).toBe(before);
    const store = new PostgresStore({ pool: seen, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await store.open();
    await store.close(); // waits for the ANALYZE open() started
    expect(seen.statements.filter((text) => text.startsWith('ANALYZE'))).toHaveLength(1);
    expect(await reltuples()).toBe(5_000);
  });
});
