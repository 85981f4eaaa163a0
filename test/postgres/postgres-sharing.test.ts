import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { countRows, dead, delivered, ev, hooked, sleep, URL_A, openedPair } from './helpers.js';

const pool = testPool(6);

describe('PostgresStore: shared by flushers and transactions', () => {
  it('SQL in an ordering key and a URL is data: append, claim, dead, replay, move, purge', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table, pollIntervalMs: 1000, leaseMs: 60_000 });
    await store.open();
    try {
      const key = `K'); DROP TABLE ${table}; --`;
      const url = `http://127.0.0.1:1/x?q=');DELETE FROM ${table};--`;
      await store.append([ev('i1', { orderingKey: key, url }), ev('i2', { orderingKey: key, url })]);
      const got = (await store.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
      expect(got).toEqual(['i1']);
      await store.settle([dead('i1')]);
      expect(await store.replay(['i1'], Date.now())).toBe(1);
      expect(await store.moveEndpoint(url, `${url}'--`)).toBe(2);
      expect((await store.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['i1']);
      expect(await countRows(pool, table)).toBe(2);
    } finally {
      await store.close();
    }
  });

  it('appendIn with a key in a transaction that rolls back: the key lock goes with it, the next append is not held up, stats corrected at the next refresh', async () => {
    const table = freshTable();
    const store = new PostgresStore({ pool, table, pollIntervalMs: 50, leaseMs: 60_000 });
    await store.open();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await store.appendIn(client, [ev('r1', { orderingKey: 'K' })]);
      await client.query('ROLLBACK');
      await store.append([ev('r2', { orderingKey: 'K' })]);
      expect((await store.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['r2']);
      for (let i = 0; i < 100 && store.stats().pending !== 1; i++) await sleep(20);
      expect(store.stats().pending).toBe(1);
    } finally {
      client.release();
      await store.close();
    }
  });

  it('per-endpoint claims: another process\'s first event to a new URL is claimed after the next refresh; never more than limit; nextDueAt of a known URL', async () => {
    const table = freshTable();
    const BIG = 'http://127.0.0.1:1/big';
    const [a, b] = await openedPair({ pool, table, pollIntervalMs: 50, leaseMs: 60_000 });
    try {
      const now = Date.now();
      await a.append(Array.from({ length: 1_200 }, (_, i) => ev(`b${i}`, { url: BIG })));
      await a.append(Array.from({ length: 6 }, (_, i) => ev(`a${i}`, { url: URL_A, createdAt: now, nextAttemptAt: now + i })));
      await a.append([ev('later', { url: `${URL_A}/later`, nextAttemptAt: now + 60_000 })]);
      const excludeEndpoints = new Set([BIG]);
      const first = await a.claim({ limit: 4, now: Date.now(), excludeEndpoints });
      expect(first.events.map((e) => e.id)).toEqual(['a0', 'a1', 'a2', 'a3']);
      expect(first.nextDueAt).toBe(now + 4);
      await a.settle(first.events.map((e) => delivered(e.id)));
      await b.append([ev('new', { url: 'http://127.0.0.1:1/new' })]);
      const seen: string[] = [];
      for (let i = 0; i < 100 && !seen.includes('new'); i++) {
        const { events } = await a.claim({ limit: 10, now: Date.now(), excludeEndpoints });
        expect(events.length).toBeLessThanOrEqual(10);
        seen.push(...events.map((e) => e.id));
        await a.settle(events.map((e) => delivered(e.id)));
        await sleep(20);
      }
      expect(seen).toContain('new');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a claim that excludes every endpoint with events (the backlog of one URL behind an open circuit) asks nothing; an event to a new URL is found after the next refresh', async () => {
    const table = freshTable();
    const BIG = 'http://127.0.0.1:1/big';
    const statements = hooked(pool);
    const a = new PostgresStore({ pool: statements, table, pollIntervalMs: 50 });
    const b = new PostgresStore({ pool, table, pollIntervalMs: 50 });
    await a.open();
    await b.open();
    try {
      await a.append(Array.from({ length: 1_200 }, (_, i) => ev(`b${i}`, { url: BIG })));
      statements.statements.length = 0;
      expect(await a.claim({ limit: 16, now: Date.now(), excludeEndpoints: new Set([BIG]) })).toEqual({ events: [], nextDueAt: undefined });
      expect(statements.statements).toEqual([]);
      await b.append([ev('new', { url: URL_A })]);
      let found: string[] = [];
      for (let i = 0; i < 100 && found.length === 0; i++) {
        await sleep(20);
        found = (await a.claim({ limit: 16, now: Date.now(), excludeEndpoints: new Set([BIG]) })).events.map((e) => e.id);
      }
      expect(found).toEqual(['new']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
