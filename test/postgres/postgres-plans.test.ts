import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { ev, hooked, kind } from './helpers.js';

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

describe('PostgresStore: what a claim reads behind one key holding 100,000 events', () => {
  it('the claim statement and the superseders query read a few index entries, not the backlog (rows read, from EXPLAIN ANALYZE)', async () => {
    const table = freshTable();
    const seen: { text: string; values: unknown[] | undefined }[] = [];
    const store = new PostgresStore({
      pool: hooked(pool, (text, values, run) => {
        seen.push({ text, values });
        return run();
      }),
      table,
      pollIntervalMs: 1000,
      leaseMs: 60_000,
    });
    await store.open();
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
