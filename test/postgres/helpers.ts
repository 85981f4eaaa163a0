import type pg from 'pg';
import { afterEach } from 'vitest';
import type { NewEvent, Outcome } from '../../src/store/store.js';
import { PostgresStore } from '../../src/store/postgres.js';
import type { PostgresPool, PostgresQuery, PostgresStoreOptions } from '../../src/store/postgres.js';

export const URL_A = 'http://127.0.0.1:1/a';
export const URL_B = 'http://127.0.0.1:1/b';

export function ev(id: string, overrides: Partial<NewEvent> = {}): NewEvent {
  const now = Date.now();
  return {
    id,
    url: URL_A,
    headers: { 'content-type': 'application/json' },
    body: new TextEncoder().encode(JSON.stringify({ id })),
    createdAt: now,
    nextAttemptAt: now,
    ...overrides,
  };
}

export const delivered = (id: string): Outcome => ({ id, type: 'delivered', attempt: { at: Date.now(), durationMs: 1, status: 200 } });
export const retryAt = (id: string, nextAttemptAt: number): Outcome => ({
  id,
  type: 'retry',
  attempt: { at: Date.now(), durationMs: 1, status: 503, error: 'HTTP 503' },
  nextAttemptAt,
  countsAsAttempt: true,
});
export const dead = (id: string): Outcome => ({ id, type: 'dead', reason: 'http-status', at: Date.now(), attempt: { at: Date.now(), durationMs: 1, status: 400 } });

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export type Hook = (text: string, values: unknown[] | undefined, run: () => Promise<pg.QueryResult>) => Promise<pg.QueryResult>;

/** A pool over `pool` whose every statement (its clients' too) goes through `hook` (default: straight through). */
export function hooked(pool: pg.Pool, hook?: Hook): PostgresPool & { hook: Hook | undefined; statements: string[] } {
  const through = (on: { query(query: PostgresQuery): Promise<pg.QueryResult> }) => (query: PostgresQuery) => {
    q.statements.push(query.text);
    const run = () => on.query(query);
    return (q.hook === undefined ? run() : q.hook(query.text, query.values, run)) as never;
  };
  const q = {
    hook,
    statements: [] as string[],
    query: through(pool),
    async connect() {
      const client = await pool.connect();
      return { query: through(client), release: (error?: Error | boolean) => client.release(error) };
    },
  };
  return q;
}

/** Which of the store's statements `text` is (by a phrase only that statement has). */
export const kind = (text: string): string => {
  if (text.includes('CREATE TABLE')) return 'create';
  if (text.includes('AS o(id, kind')) return 'settle';
  if (text.includes('AS pending')) return 'counts';
  if (text.includes('SET leased_until = clock_timestamp()')) return 'renew';
  if (text.includes('SET lease_owner = $') && text.includes('LIMIT $2')) return 'claim';
  if (text.startsWith('INSERT')) return 'insert';
  if (text.includes('SET lease_owner = NULL, leased_until = NULL')) return 'release';
  return 'other';
};

export async function countRows(pool: pg.Pool, table: string, where = 'true'): Promise<number> {
  return (await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`)).rows[0].n as number;
}

/** Two stores on one table (two flushers sharing it), opened. */
export async function openedPair(options: PostgresStoreOptions): Promise<[PostgresStore, PostgresStore]> {
  const pair: [PostgresStore, PostgresStore] = [new PostgresStore(options), new PostgresStore(options)];
  for (const store of pair) await store.open();
  return pair;
}

/** Resolves with the promise's value, or with 'timeout' after `ms` (a rejection passes through). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How a promise settled, as a value: `{ value }` or `{ error }`. */
export function settled<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then((value) => ({ value }), (error: unknown) => ({ error }));
}

/** Clean-ups a test registers, run after it in reverse order (a failing one does not stop the others). */
export function cleanedUpAfterEach(): (() => Promise<unknown>)[] {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  return cleanups;
}
