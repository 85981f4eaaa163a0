import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import type { PostgresQuery } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { ev, URL_A, URL_B } from './helpers.js';

const seed = testPool(2);

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number; Plans?: PlanNode[] }

function rowsRead(node: PlanNode, table: string): number {
  let n = 0;
  if (node['Relation Name'] === table && /Scan/.test(node['Node Type'])) n += ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * (node['Actual Loops'] ?? 1);
  for (const child of node.Plans ?? []) n += rowsRead(child, table);
  return n;
}

// @ts-expect-error node-postgres' own serializer of parameters (no types): what it sends for each value
const { prepareValue } = (await import('pg/lib/utils.js')).default as { prepareValue(value: unknown): unknown };

/** Rows the prepared statement reads when executed now on `client` (rolled back), as plan_cache_mode `mode` plans it. */
async function readBy(client: pg.PoolClient | pg.Client, inTransaction: boolean, name: string, values: unknown[], table: string, mode: string): Promise<number> {
  const args = values.map((value) => (value === null || value === undefined ? 'NULL' : client.escapeLiteral(String(prepareValue(value))))).join(', ');
  await client.query(inTransaction ? 'SAVEPOINT review' : 'BEGIN');
  try {
    await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
    const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ${name}(${args})`);
    return rowsRead((rows[0]['QUERY PLAN'] as [{ Plan: PlanNode }])[0].Plan, table);
  } finally {
    await client.query(inTransaction ? 'ROLLBACK TO SAVEPOINT review' : 'ROLLBACK');
  }
}

/**
 * A pool of one connection (so every statement the store prepared is on it) that, from the 7th execution of
 * each named statement on (PostgreSQL may have switched it to a generic plan after the 5th), first explains
 * it as it would run (plan_cache_mode auto) and as a custom plan, on the same connection and data.
 */
function measured(table: string) {
  const one = new pg.Pool({ ...inject('postgres'), max: 1 });
  const runs = new Map<string, number>();
  const results: { statement: string; auto: number; custom: number }[] = [];
  let measuring = false;
  const through = async (query: PostgresQuery, run: () => Promise<pg.QueryResult>, client?: pg.PoolClient): Promise<pg.QueryResult> => {
    const n = (runs.get(query.name ?? '') ?? 0) + 1;
    if (query.name !== undefined) runs.set(query.name, n);
    const binary = query.values?.some((value) => Buffer.isBuffer(value) || (Array.isArray(value) && value.some((v) => Buffer.isBuffer(v))));
    if (query.name !== undefined && n >= 7 && !binary && !measuring) {
      measuring = true;
      const on = client ?? (await one.connect());
      try {
        const auto = await readBy(on, client !== undefined, query.name, query.values ?? [], table, 'auto');
        const custom = await readBy(on, client !== undefined, query.name, query.values ?? [], table, 'force_custom_plan');
        results.push({ statement: query.text.replace(/\s+/g, ' ').slice(0, 80), auto, custom });
      } finally {
        if (client === undefined) (on as pg.PoolClient).release();
        measuring = false;
      }
    }
    return run();
  };
  const pool = {
    query: (query: PostgresQuery) => through(query, () => one.query(query)) as never,
    async connect() {
      const client = await one.connect();
      return { query: (query: PostgresQuery) => through(query, () => client.query(query), client) as never, release: (error?: Error | boolean) => client.release(error) };
    },
  };
  return { one, pool, results };
}

describe('PostgresStore: prepared statements once PostgreSQL may plan them generically', () => {
  it('after warming up on an empty table, a 100,000-event key, a 100,000-event backlog behind an open circuit and 20 other endpoints: no statement reads more rows as planned (auto) than a custom plan would', async () => {
    const table = freshTable();
    const { one, pool, results } = measured(table);
    const store = new PostgresStore({ pool, table, pollIntervalMs: 60_000, leaseMs: 180_000 });
    await store.open();
    try {
      // Warm-up on the empty table: every statement runs more than 5 times, so generic plans are in play.
      for (let r = 0; r < 8; r++) {
        await store.append([ev(`w${r}`, { orderingKey: 'W' })]);
        const got = await store.claim({ limit: 256, now: Date.now(), excludeEndpoints: new Set() });
        await store.settle(got.events.map((e) => ({ id: e.id, type: 'delivered', attempt: { at: Date.now(), durationMs: 1, status: 200 } })));
      }
      const now = Date.now();
      for (let i = 0; i < 100_000; i += 20_000) {
        await store.append(Array.from({ length: 20_000 }, (_, j) => ev(`k${i + j}`, { url: URL_B, orderingKey: 'K', supersede: (i + j) % 1000 === 999, createdAt: now, nextAttemptAt: now })));
        await store.append(Array.from({ length: 20_000 }, (_, j) => ev(`e${i + j}`, { url: URL_A, createdAt: now, nextAttemptAt: now })));
      }
      for (let u = 0; u < 20; u++) await store.append(Array.from({ length: 50 }, (_, j) => ev(`u${u}-${j}`, { url: `${URL_B}/${u}`, createdAt: now, nextAttemptAt: now + j * 1_000 })));
      await seed.query(`ANALYZE ${table}`); // as the store or autovacuum does
      for (let r = 0; r < 8; r++) {
        const global = await store.claim({ limit: 64, now: Date.now(), excludeEndpoints: new Set() });
        await store.settle(global.events.map((e) => (e.supersededBy === undefined ? { id: e.id, type: 'delivered', attempt: { at: Date.now(), durationMs: 1, status: 200 } } : { id: e.id, type: 'superseded', by: e.supersededBy })) as never);
        const circuit = await store.claim({ limit: 16, now: Date.now(), excludeEndpoints: new Set([URL_A]) });
        await store.settle(circuit.events.map((e) => ({ id: e.id, type: 'retry', nextAttemptAt: Date.now() + 60_000, countsAsAttempt: true, attempt: { at: Date.now(), durationMs: 1, status: 503 } })));
        const sweep = await store.claim({ limit: 256, now: Number.MAX_SAFE_INTEGER, endpoint: `${URL_B}/${r}` });
        await store.settle(sweep.events.map((e) => ({ id: e.id, type: 'release' })));
      }
      expect(results.length).toBeGreaterThan(20);
      expect(results.filter((r) => r.auto > 2 * r.custom + 100)).toEqual([]);
    } finally {
      await store.close();
      await one.end();
    }
  }, 180_000);
});
