import { cp, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { URL_A as A, URL_B as B, countRows, dead, ev, retryAt } from '../postgres/helpers.js';
import { freshTable, testPool } from '../postgres/pool.js';
import { builtPackage, runCli } from './run-cli.js';
import type { CliRun } from './run-cli.js';

const built = builtPackage();
const pool = testPool();
const server = inject('postgres');
// The test server trusts every local connection: the password is only there to be looked for in the output.
const PASSWORD = 'pg-S3cret-pa55word';
const connection = (port = server.port): string => `postgres://${server.user}:${PASSWORD}@${server.host}:${port}/${server.database}`;
const secret = `whsec_${Buffer.from('a demo secret of thirty-two bytes').toString('base64')}`;

/** Runs the CLI on `table` (given with --postgres and --table), and checks the password is in none of its output. */
async function run(table: string, ...args: string[]): Promise<CliRun> {
  const result = await runCli(built.cli, [...args, '--postgres', connection(), '--table', table]);
  expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  return result;
}

async function json<T>(result: Promise<CliRun>): Promise<T> {
  const { code, stdout, stderr } = await result;
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(stdout) as T;
}

/**
 * A table filled through PostgresStore: `p1`, `p2` pending for A, `k1` pending for B (retried once, due in an
 * hour), `d1`, `d2` dead letters of A, `d3` of B.
 */
async function filledTable(): Promise<string> {
  const table = freshTable();
  const store = new PostgresStore({ pool, table });
  await store.open();
  await store.append([ev('d1'), ev('d2'), ev('d3', { url: B }), ev('k1', { url: B })]);
  const { events } = await store.claim({ limit: 10, now: Date.now() });
  expect(events.map((event) => event.id).sort()).toEqual(['d1', 'd2', 'd3', 'k1']);
  await store.settle([dead('d1'), dead('d2'), dead('d3'), retryAt('k1', Date.now() + 3_600_000)]);
  await store.append([ev('p1'), ev('p2')]);
  await store.close();
  return table;
}

async function leases(table: string): Promise<number> {
  return countRows(pool, table, 'lease_owner IS NOT NULL');
}

interface Status {
  store: string;
  dir: string | null;
  table: string | null;
  ownerPid: number | null;
  pending: number;
  inFlight: number;
  dead: number;
  oldestPendingAgeMs: number | null;
  endpoints: Record<string, { pending: number; dead: number }>;
}

describe('webhook-outbox on a PostgreSQL table: reading', () => {
  let table: string;
  beforeAll(async () => {
    table = await filledTable();
  });

  it('status counts the whole table, as text and as JSON, without a lease or a change', async () => {
    const before = (await pool.query(`SELECT id, lease_owner, leased_until, attempts, dead_at FROM ${table} ORDER BY id`)).rows;
    const report = await json<Status>(run(table, 'status', '--json'));
    expect(report).toMatchObject({ store: 'postgres', dir: null, table, ownerPid: null, pending: 3, inFlight: 0, dead: 3 });
    expect(report.oldestPendingAgeMs).toBeGreaterThanOrEqual(0);
    expect(report.endpoints).toEqual({ [A]: { pending: 2, dead: 2 }, [B]: { pending: 1, dead: 1 } });
    const text = await run(table, 'status');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`PostgreSQL table ${table}`);
    expect(text.stdout).toMatch(/pending\s+3\n/);
    expect(text.stdout).not.toContain('corrupt');
    expect((await pool.query(`SELECT id, lease_owner, leased_until, attempts, dead_at FROM ${table} ORDER BY id`)).rows).toEqual(before);
  });

  it('status shows the events an outbox is sending (a live lease) as in flight, and show says claimed', async () => {
    const own = await filledTable();
    const app = new PostgresStore({ pool, table: own });
    await app.open();
    try {
      await app.claim({ limit: 1, now: Date.now() });
      expect((await json<Status>(run(own, 'status', '--json'))).inFlight).toBe(1);
      const [held] = (await pool.query(`SELECT id FROM ${own} WHERE lease_owner IS NOT NULL`)).rows as { id: string }[];
      const shown = await run(own, 'show', held?.id ?? '?');
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain(`${held?.id}: claimed (an outbox is sending it)`);
    } finally {
      await app.close();
    }
  });

  it('show prints a pending event and a dead letter, and exits 1 for an id the table does not hold', async () => {
    const pending = await json<{ state: string; attempts: number; history: unknown[] }>(run(table, 'show', 'k1', '--json'));
    expect(pending).toMatchObject({ state: 'pending', attempts: 1 });
    expect(pending.history).toHaveLength(1);
    const letter = await run(table, 'show', 'd3');
    expect(letter.code).toBe(0);
    expect(letter.stdout).toMatch(/^d3: dead \(http-status\) since /);
    expect(letter.stdout).toContain(`url ${B}`);
    const missing = await run(table, 'show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope is not in the outbox');
    expect(await leases(table)).toBe(0);
  });

  it('dead list lists, filters and names the ids it does not hold (exit 1)', async () => {
    const all = await json<{ id: string }[]>(run(table, 'dead', 'list', '--json'));
    expect(all.map((letter) => letter.id).sort()).toEqual(['d1', 'd2', 'd3']);
    const ofB = await json<{ id: string }[]>(run(table, 'dead', 'list', '--json', '--endpoint', B));
    expect(ofB.map((letter) => letter.id)).toEqual(['d3']);
    const text = await run(table, 'dead', 'list');
    expect(text.stdout).toContain('3 dead letters.');
    const named = await run(table, 'dead', 'list', 'd1', 'p1');
    expect(named.code).toBe(1);
    expect(named.stderr).toContain('not a dead letter: p1');
  });

  it('a table that does not exist is a usage error (exit 2), and is not created', async () => {
    const absent = freshTable();
    for (const args of [['status'], ['show', 'x'], ['dead', 'list'], ['dead', 'purge', '--all'], ['move', A, B], ['flush']]) {
      const result = await run(absent, ...args);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toContain(`--table: there is no table "${absent}"`);
    }
    expect((await pool.query('SELECT to_regclass($1) AS t', [absent])).rows[0].t).toBeNull();
    const foreign = await run('pg_catalog.pg_class', 'status');
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toContain('not a webhook-outbox table');
  });
});

describe('webhook-outbox on a PostgreSQL table: changing', () => {
  it('dead replay puts dead letters back (to --url when given) and refuses an id that is not one, changing nothing', async () => {
    const table = await filledTable();
    const refused = await run(table, 'dead', 'replay', 'd1', 'p1');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('not a dead letter: p1 (nothing was changed)');
    expect(await countRows(pool, table, 'dead_at IS NOT NULL')).toBe(3);
    const one = await run(table, 'dead', 'replay', 'd3', '--url', 'http://127.0.0.1:9/c');
    expect(one).toMatchObject({ code: 0, stdout: 'Replayed 1 dead letter: pending again, to http://127.0.0.1:9/c.\n' });
    const rest = await run(table, 'dead', 'replay', '--endpoint', A);
    expect(rest.stdout).toBe('Replayed 2 dead letters: pending again.\n');
    const report = await json<Status>(run(table, 'status', '--json'));
    expect(report).toMatchObject({ pending: 6, dead: 0 });
    expect(report.endpoints['http://127.0.0.1:9/c']).toEqual({ pending: 1, dead: 0 });
    expect(await leases(table)).toBe(0);
  });

  it('dead purge deletes the named ids, or all with --all, and refuses neither', async () => {
    const table = await filledTable();
    expect((await run(table, 'dead', 'purge')).code).toBe(2);
    expect((await run(table, 'dead', 'purge', 'd1')).stdout).toBe('Purged 1 dead letter.\n');
    expect((await run(table, 'dead', 'purge', '--all')).stdout).toBe('Purged 2 dead letters.\n');
    expect(await countRows(pool, table, 'dead_at IS NOT NULL')).toBe(0);
    expect(await countRows(pool, table)).toBe(3);
  });

  it('move sends the pending events and dead letters of one URL to another', async () => {
    const table = await filledTable();
    const result = await run(table, 'move', A, 'http://127.0.0.1:9/moved');
    expect(result).toMatchObject({ code: 0, stdout: `Moved 4 events from ${A} to http://127.0.0.1:9/moved.\n`, stderr: '' });
    expect(await countRows(pool, table, `url = '${A}'`)).toBe(0);
    expect(await countRows(pool, table, `url = 'http://127.0.0.1:9/moved'`)).toBe(4);
    // Moved pending events are due at once, with fresh attempts.
    expect(await countRows(pool, table, `url = 'http://127.0.0.1:9/moved' AND dead_at IS NULL AND attempts = 0`)).toBe(2);
  });
});

describe('webhook-outbox flush on a PostgreSQL table', () => {
  let receiver: FlakyReceiver;
  beforeEach(async () => {
    receiver = await startFlakyReceiver({ secret });
  });
  afterEach(async () => {
    await receiver.close();
  });

  async function tableFor(ids: string[]): Promise<string> {
    const table = freshTable();
    const store = new PostgresStore({ pool, table });
    await store.open();
    await store.append(ids.map((id) => ev(id, { url: receiver.url })));
    await store.close();
    return table;
  }

  it('delivers everything pending, signed with --secret, after a 503, and exits 0 with the table empty', async () => {
    const table = await tableFor(['f1', 'f2', 'f3']);
    receiver.setScript([503]);
    const result = await run(table, 'flush', '--secret', secret, '--quiet');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^3 pending at start: 3 delivered, 0 dead-lettered, 0 still pending \(1 retries, /);
    expect([...receiver.deliveredIds()].sort()).toEqual(['f1', 'f2', 'f3']);
    expect(receiver.requests.every((request) => request.signatureValid)).toBe(true);
    expect(await countRows(pool, table)).toBe(0);
  });

  it('exits 1 when events became dead letters, pointing to dead list without the connection string', async () => {
    const table = await tableFor(['g1']);
    receiver.setScript(() => 400);
    const result = await run(table, 'flush', '--quiet');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`webhook-outbox dead list --postgres "$WEBHOOK_OUTBOX_POSTGRES" --table ${table}`);
    expect(await countRows(pool, table, 'dead_at IS NOT NULL')).toBe(1);
  });

  it('exits 4 at --timeout, the rest staying in the table, leases given back', async () => {
    const table = await tableFor(['h1']);
    receiver.setScript(() => 503);
    const result = await run(table, 'flush', '--timeout', '1500ms', '--quiet');
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(`1 event(s) stay in PostgreSQL table ${table}`);
    expect(await countRows(pool, table, 'dead_at IS NULL')).toBe(1);
    expect(await leases(table)).toBe(0);
  });

  it('respects --block-private-addresses: the events to the loopback receiver become dead letters, unsent', async () => {
    const table = await tableFor(['i1']);
    const result = await run(table, 'flush', '--block-private-addresses', '--quiet');
    expect(result.code).toBe(1);
    expect(receiver.requests).toHaveLength(0);
    const [letter] = await json<{ lastError: string }[]>(run(table, 'dead', 'list', '--json'));
    expect(letter?.lastError).toContain('EPRIVATEADDRESS');
  });
});

describe('webhook-outbox --postgres: arguments, failures and the password', () => {
  it('takes the connection string from WEBHOOK_OUTBOX_POSTGRES, and the table from WEBHOOK_OUTBOX_TABLE', async () => {
    const table = await filledTable();
    const result = await runCli(built.cli, ['status', '--json'], { env: { WEBHOOK_OUTBOX_POSTGRES: connection(), WEBHOOK_OUTBOX_TABLE: table } });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ table, pending: 3 });
  });

  it.each([
    [['status', '--dir', '.outbox', '--postgres', 'CONNECTION'], {}, "option '--dir <path>' cannot be used with option '--postgres"],
    [['dead', 'list', '--dir', '.outbox'], { WEBHOOK_OUTBOX_POSTGRES: 'CONNECTION' }, 'cannot be used with'],
    [['flush', '--postgres', 'CONNECTION'], { WEBHOOK_OUTBOX_DIR: '.outbox' }, 'cannot be used with'],
    [['status', '--table', 'webhook_outbox'], {}, '--table needs --postgres'],
    [['status', '--postgres', 'CONNECTION', '--table', 'Bad-Name'], {}, '--table: expected a table name'],
    [['status', '--postgres', `mysql://root:${PASSWORD}@127.0.0.1/db`], {}, "option '--postgres' (or WEBHOOK_OUTBOX_POSTGRES): expected a connection string"],
    [['status', '--postgres', `${PASSWORD}`], {}, 'the value is not shown'],
    [['status', `--postgress=${'CONNECTION'}`], {}, "unknown option '--postgress=<not shown>'"],
    [['status', '--postgress', 'CONNECTION'], {}, "unknown option '--postgress'"],
    [['status', '--bogus', '--postgres', 'CONNECTION'], {}, "unknown option '--bogus'"],
    [['dead', 'list', 'CONNECTION', '--bogus'], {}, "unknown option '--bogus'"],
    [['send', 'http://127.0.0.1:9/x', '--data', '{}', '--postgres', 'CONNECTION'], {}, "unknown option '--postgres'"],
  ] as [string[], Record<string, string>, string][])('%j %j exits 2 and never shows the password', async (args, env, message) => {
    const fill = (value: string): string => value.replace('CONNECTION', connection());
    const result = await runCli(
      built.cli,
      args.map(fill),
      { env: Object.fromEntries(Object.entries(env).map(([name, value]) => [name, fill(value)])) },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it('a database that cannot be reached exits 1 with one line, without the password or a stack trace', async () => {
    const result = await runCli(built.cli, ['status', '--postgres', connection(1)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: PostgreSQL \(table webhook_outbox\): connect ECONNREFUSED 127\.0\.0\.1:1\n$/);
    expect(result.stdout).toBe('');
    for (const args of [['dead', 'purge', '--all'], ['flush']]) {
      const failed = await runCli(built.cli, [...args, '--postgres', connection(1)]);
      expect({ args, code: failed.code }).toEqual({ args, code: 1 });
      expect(failed.stderr).not.toContain(PASSWORD);
      expect(failed.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('--help never shows the connection string from the environment', async () => {
    for (const args of [['status', '--help'], ['flush', '--help'], ['dead', 'replay', '--help']]) {
      const result = await runCli(built.cli, args, { env: { WEBHOOK_OUTBOX_POSTGRES: connection() } });
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('--postgres <connection-string>');
      expect(result.stdout + result.stderr).not.toContain(PASSWORD);
    }
  });
});

describe('webhook-outbox --postgres without pg installed', () => {
  const root = resolve(import.meta.dirname, '../..');
  let home: string;
  beforeAll(async () => {
    // The built package with every dependency but pg: a real resolution failure, from the package and from the cwd.
    home = await mkdtemp(join(tmpdir(), 'webhook-outbox-no-pg-'));
    await cp(dirname(dirname(built.cli)), join(home, 'dist'), { recursive: true });
    await mkdir(join(home, 'node_modules'));
    for (const name of await readdir(join(root, 'node_modules'))) {
      if (name !== 'pg' && !name.startsWith('.')) await symlink(join(root, 'node_modules', name), join(home, 'node_modules', name));
    }
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('exits 2 saying to npm install pg, without the password; --dir still works', async () => {
    const cli = join(home, 'dist', 'cli', 'main.js');
    const result = await runCli(cli, ['status', '--postgres', connection()], { cwd: home });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('`npm install pg`');
    expect(result.stderr).not.toContain(PASSWORD);
    const dir = await runCli(cli, ['status', '--dir', join(home, 'nothing-here')], { cwd: home });
    expect(dir.code).toBe(2);
    expect(dir.stderr).toContain('no outbox directory');
  });
});
