import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { ev, hooked, kind, sleep } from './helpers.js';

const pool = testPool(4);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

/** Rows the plan's scans of the table read (returned or filtered out), over all loops: work, not time. */
function rowsRead(node: PlanNode, table: string): number {
  let n = 0;
  if (node['Relation Name'] === table && /Scan/.test(node['Node Type'])) {
    n += ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * (node['Actual Loops'] ?? 1);
  }
  for (const child of node.Plans ?? []) n += rowsRead(child, table);
  return n;
}

async function explained(text: string, values: unknown[] | undefined, table: string): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values);
    return rowsRead((rows[0]['QUERY PLAN'] as [{ Plan: PlanNode }])[0].Plan, table);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

/** An opened store of `table` polling every `pollIntervalMs`, and every statement it sent, with its values. */
async function recording(table: string, pollIntervalMs: number): Promise<{ store: PostgresStore; seen: { text: string; values: unknown[] | undefined }[] }> {
  const seen: { text: string; values: unknown[] | undefined }[] = [];
  const store = new PostgresStore({
    pool: hooked(pool, (text, values, run) => {
      seen.push({ text, values });
      return run();
    }),
    table,
    pollIntervalMs,
  });
  await store.open();
  return { store, seen };
}

describe('PostgresStore: what a claim reads behind one key holding 100,000 events', () => {
  it('the claim statement and the superseders query read a few index entries, not the backlog (rows read, from EXPLAIN ANALYZE)', async () => {
    const table = freshTable();
    const { store, seen } = await recording(table, 1000);
    try {
      const now = Date.now();
      for (let i = 0; i < 100_000; i += 20_000) {
        await store.append(Array.from({ length: 20_000 }, (_, j) => ev(`k${i + j}`, { orderingKey: 'K', createdAt: now, nextAttemptAt: now })));
      }
      await pool.query(`ANALYZE ${table}`); // as autovacuum does
      seen.length = 0;
      const got = await store.claim({ limit: 10, now: Date.now() });
      expect(got.events.map((e) => e.id)).toEqual(['k0']);
      const claim = seen.find((s) => kind(s.text) === 'claim')!;
      const superseders = seen.find((s) => s.text.includes('p.supersede ORDER BY p.seq DESC'))!;
      // Released again so the claim statement is explained as it ran (k0 not leased).
      await pool.query(`UPDATE ${table} SET lease_owner = NULL, leased_until = NULL`);
      const read = { claim: await explained(claim.text, claim.values, table), superseders: await explained(superseders.text, superseders.values, table) };
      // One head to find, no row of the key leased, no superseding event: a few index entries each.
      expect(read).toEqual({ claim: expect.toSatisfy((n: number) => n < 1_000), superseders: expect.toSatisfy((n: number) => n < 1_000) });
    } finally {
      await store.close();
    }
  }, 120_000);
});

describe('PostgresStore: claims after a burst into a table the planner has not seen grow', () => {
  it('the store analyzes the table itself, and a claim then reads a few rows, not every due event (EXPLAIN ANALYZE)', async () => {
    const table = freshTable();
    const { store, seen } = await recording(table, 100);
    try {
      // Never analyzed: the planner takes half a percent of the rows for "no dead letter" and would
      // read and sort every due event for each claim (autovacuum analyzes a new table within a minute or so).
      const planned = async (): Promise<number> => Number((await pool.query(`SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, [table])).rows[0].reltuples);
      expect(await planned()).toBeLessThan(1_000);
      const now = Date.now();
      for (let i = 0; i < 20_000; i += 5_000) await store.append(Array.from({ length: 5_000 }, (_, j) => ev(`e${i + j}`, { createdAt: now, nextAttemptAt: now })));
      // Analyzed at a poll after the first 5,000 or later (then not again before ten times as many rows).
      const deadline = Date.now() + 20_000;
      while ((await planned()) < 5_000 && Date.now() < deadline) await sleep(50);
      expect(await planned()).toBeGreaterThanOrEqual(5_000);
      expect(seen.filter((s) => s.text.startsWith('ANALYZE'))).toHaveLength(1);

      seen.length = 0;
      expect((await store.claim({ limit: 16, now: Date.now() })).events).toHaveLength(16);
      const claim = seen.find((s) => kind(s.text) === 'claim')!;
      await pool.query(`UPDATE ${table} SET lease_owner = NULL, leased_until = NULL`);
      expect(await explained(claim.text, claim.values, table)).toBeLessThan(1_000);
      // No second ANALYZE while the planner's figure holds (the next would wait for ten times the rows).
      await sleep(500);
      expect(seen.filter((s) => s.text.startsWith('ANALYZE'))).toHaveLength(0);
    } finally {
      await store.close();
    }
  }, 120_000);
});
