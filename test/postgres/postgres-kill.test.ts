import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import type { OutboxOptions } from '../../src/options.js';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { builtPackage } from '../cli/run-cli.js';
import { FAST_RETRY, newSecret, waitFor } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';

// The child needs runnable JS: the package built with its own tsup config into a private directory, and
// node-postgres (a dev dependency, which the package does not import) by its path.
const built = builtPackage();
const pgUrl = pathToFileURL(createRequire(import.meta.url).resolve('pg')).href;
const pool = testPool();

const LEASE_MS = 3_000;
const POLL_MS = 200;
const CONCURRENCY = 8;

/**
 * An app that enqueues (and delivers) on a PostgresStore, for the kill -9 tests. It prints `ready`, then:
 * - `stream`: enqueues `evt-<n>` in groups of 10 (a short pause between groups, at most `limit` events),
 *   printing `ack <id>` once each enqueue resolved (committed); then idles until killed.
 * - `transaction`: for n < `limit`, BEGIN, an order row, enqueue(`tx-<n>`, { transaction }), COMMIT, then
 *   `committed <id>`; then BEGIN, an order row, enqueue(`tx-open`, { transaction }), `open <id>` once that
 *   resolved, and waits with the transaction open until killed.
 */
const CHILD = `
const [entry, pgUrl, json] = process.argv.slice(1);
const config = JSON.parse(json);
const { Outbox, PostgresStore } = await import(entry);
const { default: pg } = await import(pgUrl);
const pool = new pg.Pool({ ...config.server, max: 10, application_name: config.app });
pool.on('error', () => {});
const store = new PostgresStore({ pool, table: config.table, leaseMs: ${LEASE_MS}, pollIntervalMs: ${POLL_MS} });
const outbox = await Outbox.open({
  store,
  url: config.url,
  signingSecret: config.secret,
  retry: { baseDelayMs: 5, maxDelayMs: 100 },
  concurrency: ${CONCURRENCY},
  timeoutMs: 30000,
});
outbox.on('error', (error) => process.stderr.write('outbox error: ' + error.message + '\\n'));
setInterval(() => {}, 1000);
const say = (line) => process.stdout.write(line + '\\n');
say('ready');
if (config.mode === 'stream') {
  for (let n = 0; n < config.limit; n += 10) {
    const group = Array.from({ length: 10 }, (_, i) => outbox.enqueue({ id: 'evt-' + (n + i), body: { n: n + i } }));
    const results = await Promise.all(group);
    // Pipes are synchronous on Linux: the lines are out before the next enqueue starts.
    say(results.map(({ id }) => 'ack ' + id).join('\\n'));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  say('enqueued');
} else {
  const client = await pool.connect();
  for (let n = 0; n < config.limit; n++) {
    await client.query('BEGIN');
    await client.query('INSERT INTO ' + config.table + '_orders VALUES ($1)', ['tx-' + n]);
    const { id } = await outbox.enqueue({ id: 'tx-' + n, body: { order: n } }, { transaction: client });
    await client.query('COMMIT');
    say('committed ' + id);
  }
  await client.query('BEGIN');
  await client.query('INSERT INTO ' + config.table + '_orders VALUES ($1)', ['tx-open']);
  const { id } = await outbox.enqueue({ id: 'tx-open', body: { order: 'open' } }, { transaction: client });
  say('open ' + id);
}
`;

interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
  exited: Promise<NodeJS.Signals | null>;
}

function startChild(config: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD, built.indexUrl, pgUrl, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffer = '';
  let stderr = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
  return { proc, lines, stderr: () => stderr, exited };
}

function server(): Record<string, unknown> {
  return { ...inject('postgres') };
}

async function rowCount(table: string): Promise<number> {
  return (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
}

/** The outbox in the parent that takes over the dead child's table. */
function survivor(table: string, url: string, signingSecret: string, options: Partial<OutboxOptions> = {}): Promise<Outbox> {
  return Outbox.open({ store: new PostgresStore({ pool, table, leaseMs: LEASE_MS, pollIntervalMs: POLL_MS }), url, signingSecret, retry: FAST_RETRY, ...options });
}

describe('PostgresStore after kill -9 of a flusher', () => {
  it('another outbox delivers every accepted event once the dead one\'s leases ran out; duplicates only for requests in flight', async () => {
    const secret = newSecret();
    let slow = true;
    // The child's requests are held 400 ms: at the kill it has requests in flight and more events claimed.
    const receiver = await startFlakyReceiver({ secret, script: () => (slow ? { status: 200, delayMs: 400 } : 200) });
    const table = freshTable();
    const child = startChild({ mode: 'stream', server: server(), table, url: receiver.url, secret, limit: 2_000, app: `kill-${table}` });
    let outbox: Outbox | undefined;
    try {
      const acked = (): string[] => child.lines.filter((line) => line.startsWith('ack ')).map((line) => line.slice(4));
      await waitFor(() => acked().length >= 300 && receiver.deliveredIds().size >= 30, 20_000, `acks and deliveries (stderr: ${child.stderr()})`);
      await waitFor(() => receiver.inProgress >= CONCURRENCY / 2, 5_000, 'requests in flight');
      child.proc.kill('SIGKILL');
      expect(await child.exited).toBe('SIGKILL');
      const killedAt = Date.now();
      const accepted = acked();
      const requestsAtKill = receiver.requests.length;
      const inFlightAtKill = new Set(receiver.requests.filter((request) => request.status === undefined).map((request) => request.id as string));
      // What the dead flusher held: rows leased to it, until when (the database's clock, on this machine).
      const leased = (
        await pool.query(`SELECT id, extract(epoch FROM leased_until) * 1000 AS until FROM ${table} WHERE leased_until > clock_timestamp()`)
      ).rows.map((row) => ({ id: row.id as string, until: Number(row.until) }));
      expect(leased.length).toBeGreaterThanOrEqual(inFlightAtKill.size);
      for (const id of inFlightAtKill) expect(leased.map((row) => row.id)).toContain(id);
      const pendingAtKill = await rowCount(table);

      slow = false;
      outbox = await survivor(table, receiver.url, secret, { concurrency: 16 });
      await outbox.drain({ timeoutMs: 25_000 });
      const drainedAt = Date.now();
      expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0 });
      expect(await rowCount(table)).toBe(0);

      const delivered = receiver.deliveredIds();
      expect(accepted.filter((id) => !delivered.has(id))).toEqual([]);
      // Every request is an event the app made (one whose enqueue had not resolved yet may have been committed), signed.
      const lastAcked = Math.max(...accepted.map((id) => Number(id.slice(4))));
      for (const request of receiver.requests) {
        expect(request.signatureValid).toBe(true);
        expect(request.id).toMatch(/^evt-\d+$/);
        expect(Number(request.id?.slice(4))).toBeLessThan(lastAcked + 1 + 10);
        expect(JSON.parse(request.body)).toEqual({ n: Number(request.id?.slice(4)) });
      }
      // A leased event was not taken before its lease ran out (the same machine's clock; 50 ms for rounding).
      const until = new Map(leased.map((row) => [row.id, row.until]));
      for (const request of receiver.requests.slice(requestsAtKill)) {
        const end = until.get(request.id as string);
        if (end !== undefined) expect(request.at).toBeGreaterThanOrEqual(end - 50);
      }
      // Duplicates: only events whose request was in flight at the kill, or answered just before it with
      // the outcome not yet written, sent once more after it (at least once: the second may be a 2xx again).
      const counts = new Map<string, number>();
      for (const request of receiver.requests) counts.set(request.id as string, (counts.get(request.id as string) ?? 0) + 1);
      const duplicated = [...counts].filter(([, count]) => count > 1).map(([id]) => id);
      for (const id of duplicated) {
        expect(counts.get(id)).toBe(2);
        const indexes = receiver.requests.flatMap((request, i) => (request.id === id ? [i] : []));
        expect(indexes[0]).toBeLessThan(requestsAtKill);
        expect(indexes[1]).toBeGreaterThanOrEqual(requestsAtKill);
      }
      expect(duplicated.length).toBeLessThanOrEqual(2 * CONCURRENCY);
      for (const id of inFlightAtKill) expect(duplicated).toContain(id);

      const afterKill = receiver.requests.slice(requestsAtKill);
      const lastLeaseEnd = Math.max(...leased.map((row) => row.until));
      console.log(
        `[postgres-kill] accepted ${accepted.length}, rows at kill ${pendingAtKill}, leased to the dead flusher ${leased.length}, ` +
          `in flight ${inFlightAtKill.size}, duplicates ${duplicated.length} (${duplicated.filter((id) => !inFlightAtKill.has(id)).length} answered before the kill), requests after kill ${afterKill.length}; ` +
          `last lease ran out ${Math.round(lastLeaseEnd - killedAt)} ms after the kill, drained ${drainedAt - killedAt} ms after it`,
      );
    } finally {
      if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
      await outbox?.close({ timeoutMs: 1_000 });
      await receiver.close();
    }
  });

  it('an event written in a transaction the kill left open is never delivered; those committed before are', async () => {
    const secret = newSecret();
    let slow = true;
    const receiver = await startFlakyReceiver({ secret, script: () => (slow ? { status: 200, delayMs: 300 } : 200) });
    const table = freshTable();
    const app = `tx-${table}`;
    await pool.query(`CREATE TABLE ${table}_orders (id text PRIMARY KEY)`);
    const child = startChild({ mode: 'transaction', server: server(), table, url: receiver.url, secret, limit: 40, app });
    let outbox: Outbox | undefined;
    try {
      await waitFor(() => child.lines.includes('open tx-open'), 20_000, `the open transaction (stderr: ${child.stderr()})`);
      const committed = child.lines.filter((line) => line.startsWith('committed ')).map((line) => line.slice(10));
      expect(committed).toHaveLength(40);
      // The open transaction is there, its row invisible to others.
      const open = await pool.query(`SELECT state FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`, [app]);
      expect(open.rows).toHaveLength(1);
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE id = 'tx-open'`)).rows[0].n).toBe(0);
      child.proc.kill('SIGKILL');
      expect(await child.exited).toBe('SIGKILL');
      const killedAt = Date.now();
      // The server ends the dead client's session, and its transaction with it.
      let sessions = 1;
      for (let i = 0; i < 200 && sessions > 0; i++) {
        sessions = (await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [app])).rows[0].n as number;
        if (sessions > 0) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(sessions).toBe(0);
      const rolledBackAfter = Date.now() - killedAt;

      slow = false;
      outbox = await survivor(table, receiver.url, secret);
      await outbox.drain({ timeoutMs: 25_000 });
      // A few more polls: nothing shows up late.
      await new Promise((resolve) => setTimeout(resolve, 3 * POLL_MS));
      await outbox.drain({ timeoutMs: 5_000 });

      const delivered = receiver.deliveredIds();
      expect(committed.filter((id) => !delivered.has(id))).toEqual([]);
      expect(receiver.countById('tx-open')).toBe(0);
      expect(await outbox.find('tx-open')).toBeUndefined();
      for (const request of receiver.requests) {
        expect(request.signatureValid).toBe(true);
        expect(committed).toContain(request.id);
      }
      expect(await rowCount(table)).toBe(0);
      // The order and its event: both or neither.
      const orders = (await pool.query(`SELECT id FROM ${table}_orders ORDER BY id`)).rows.map((row) => row.id as string);
      expect(orders.sort()).toEqual([...committed].sort());
      const duplicates = committed.filter((id) => receiver.countById(id) > 1).length;
      console.log(`[postgres-kill tx] committed ${committed.length}, delivered ${delivered.size}, duplicates ${duplicates}, session gone ${rolledBackAfter} ms after the kill`);
    } finally {
      if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
      await outbox?.close({ timeoutMs: 1_000 });
      await receiver.close();
    }
  });
});
