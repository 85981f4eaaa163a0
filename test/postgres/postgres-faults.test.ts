import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebhookOutboxError } from '../../src/errors.js';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import type { PostgresQuery } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { FAST_RETRY, newSecret, waitFor } from '../outbox-helpers.js';
import { freshTable } from './pool.js';
import type { RunningPostgres } from './server.js';
import { startPostgres } from './server.js';

const LEASE_MS = 3_000;
const POLL_MS = 200;
const CONCURRENCY = 8;

// A server of its own: this file kills it.
let server: RunningPostgres;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.remove();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the killed server again on the same data; a few tries while its old processes exit. */
async function restart(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(200);
    }
  }
}

describe('PostgresStore when the database server is killed', () => {
  it('every accepted enqueue is delivered once the server is back; the rest reject with ERR_STORE_IO; the outbox resumes by itself', async () => {
    // pg.Pool drops a client that broke (and tells its 'error' listeners), and connects anew afterwards.
    const pool = new pg.Pool({ host: server.host, port: server.port, user: server.user, database: server.database, max: 10, connectionTimeoutMillis: 5_000 });
    const poolErrors: Error[] = [];
    pool.on('error', (error) => poolErrors.push(error));
    const secret = newSecret();
    const receiver = await startFlakyReceiver({ secret, latencyMs: 20 });
    const table = freshTable();
    const outbox = await Outbox.open({
      store: new PostgresStore({ pool, table, leaseMs: LEASE_MS, pollIntervalMs: POLL_MS }),
      url: receiver.url,
      signingSecret: secret,
      retry: FAST_RETRY,
      concurrency: CONCURRENCY,
    });
    const errors: { at: number; error: Error }[] = [];
    outbox.on('error', (error) => errors.push({ at: Date.now(), error }));

    const accepted = new Map<string, number>();
    const rejected: { id: string; at: number; error: unknown }[] = [];
    let stop = false;
    const producing = (async () => {
      const deadline = Date.now() + 60_000;
      for (let n = 0; n < 5_000 && !stop && Date.now() < deadline; n += 5) {
        const group = Array.from({ length: 5 }, (_, i) => {
          const id = `ev-${n + i}`;
          return outbox.enqueue({ id, body: { n: n + i } }).then(
            () => void accepted.set(id, Date.now()),
            (error: unknown) => void rejected.push({ id, at: Date.now(), error }),
          );
        });
        await Promise.all(group);
        await sleep(5);
      }
    })();

    try {
      await waitFor(() => accepted.size >= 200 && receiver.deliveredIds().size >= 50, 20_000, 'a backlog being delivered');
      await waitFor(() => receiver.inProgress > 0, 5_000, 'a request in flight');
      const acceptedBefore = accepted.size;
      const killedAt = Date.now();
      const requestsAtKill = receiver.requests.length;
      const inFlightAtKill = receiver.inProgress;
      await server.stop(true);
      // Down for a second: the enqueues reject, the flusher's calls fail and are reported.
      await waitFor(() => rejected.length >= 5, 10_000, 'rejected enqueues');
      await waitFor(() => errors.some(({ at }) => at >= killedAt), 10_000, 'an error event');
      await sleep(1_000);
      const restartAt = Date.now();
      await restart();
      const upAt = Date.now();
      // The same outbox, not reopened, takes new events again and delivers them.
      const acceptedAtRestart = accepted.size;
      await waitFor(() => accepted.size >= acceptedAtRestart + 100, 20_000, 'enqueues after the restart');
      stop = true;
      await producing;
      await outbox.drain({ timeoutMs: 30_000 }).catch(async (error: unknown) => {
        // What is left, and whose lease holds it: the cause of a drain that does not end.
        const { rows } = await pool.query(
          `SELECT id, lease_owner, leased_until > clock_timestamp() AS leased, attempts FROM ${table} ORDER BY seq LIMIT 5`,
        );
        const left = (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
        const sent = rows.map((row) => `${row.id as string}: ${receiver.countById(row.id as string)} request(s)`);
        throw new Error(`${(error as Error).message}; ${left} row(s) left, e.g. ${JSON.stringify(rows)}; ${sent.join(', ')}`, { cause: error });
      });
      const drainedAt = Date.now();
      expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0 });
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);

      // Nothing accepted is lost.
      const delivered = receiver.deliveredIds();
      expect([...accepted.keys()].filter((id) => !delivered.has(id))).toEqual([]);
      // A rejected enqueue is ERR_STORE_IO (the pg error as its cause); it may still have been written
      // (its answer lost with the connection), so it may be delivered, never required to be.
      expect(rejected.length).toBeGreaterThan(0);
      for (const { error } of rejected) {
        expect(error).toBeInstanceOf(WebhookOutboxError);
        expect(error).toMatchObject({ code: 'ERR_STORE_IO' });
        expect((error as Error).cause).toBeDefined();
      }
      // Every id is one the test enqueued, with its body and a valid signature.
      for (const request of receiver.requests) {
        expect(request.signatureValid).toBe(true);
        expect(JSON.parse(request.body)).toEqual({ n: Number(request.id?.slice(3)) });
      }
      // The flusher reported the outage, as ERR_STORE_IO, and stopped reporting after the restart.
      const outageErrors = errors.filter(({ at }) => at >= killedAt);
      expect(outageErrors.length).toBeGreaterThan(0);
      for (const { error } of outageErrors) expect(error).toMatchObject({ code: 'ERR_STORE_IO' });
      const lateErrors = errors.filter(({ at }) => at > upAt + 2 * STORE_FAULT_PAUSE_MS);
      expect(lateErrors.map(({ error }) => error.message)).toEqual([]);

      // Duplicates: events whose outcome could not be written during the outage, sent again after it.
      const counts = new Map<string, number>();
      for (const request of receiver.requests) counts.set(request.id as string, (counts.get(request.id as string) ?? 0) + 1);
      const duplicated = [...counts].filter(([, count]) => count > 1).map(([id]) => id);
      for (const id of duplicated) {
        const first = receiver.requests.find((request) => request.id === id);
        expect(first?.at).toBeLessThan(restartAt);
      }
      // They are bounded by what the outbox had in hand: requests in flight at the kill, requests it sent
      // from its read-ahead while the server was down, and outcomes being written at the kill (one window).
      const sentWhileDown = receiver.requests.slice(requestsAtKill).filter((request) => request.at < upAt).length;
      expect(duplicated.length).toBeLessThanOrEqual(inFlightAtKill + sentWhileDown + CONCURRENCY);
      const firstAfter = receiver.requests.find((request) => request.at >= upAt && request.status === 200);
      const firstAcceptedAfter = Math.min(...[...accepted.values()].filter((at) => at >= upAt));
      console.log(
        `[postgres-faults] accepted ${accepted.size} (${acceptedBefore} before the kill, ${accepted.size - acceptedAtRestart} after the restart), ` +
          `rejected ${rejected.length}, 'error' events ${errors.length} (codes ${[...new Set(errors.map(({ error }) => (error as WebhookOutboxError).code))].join(',')}), ` +
          `pool errors ${poolErrors.length}, requests ${receiver.requests.length} (${inFlightAtKill} in flight at the kill, ${sentWhileDown} sent while down), ` +
          `duplicates ${duplicated.length}; ` +
          `down ${restartAt - killedAt} ms, restart took ${upAt - restartAt} ms, first enqueue accepted ${firstAcceptedAfter - upAt} ms and first 2xx ` +
          `${firstAfter === undefined ? '-' : firstAfter.at - upAt} ms after it, drained ${drainedAt - upAt} ms after it`,
      );
    } finally {
      stop = true;
      await producing.catch(() => undefined);
      await outbox.close({ timeoutMs: 1_000 }).catch(() => undefined);
      await receiver.close();
      await pool.end();
    }
  }, 120_000);
});

describe('PostgresStore when a write of an outcome fails', () => {
  it('an event whose outcome and release both failed goes back to the table once its lease runs out', async () => {
    // The database drops this store's statements while `broken` (a lost connection), the server stays up.
    const pool = new pg.Pool({ host: server.host, port: server.port, user: server.user, database: server.database, max: 4 });
    pool.on('error', () => undefined);
    let broken = false;
    const flaky = {
      query: (query: PostgresQuery) => (broken ? Promise.reject(new Error('Connection terminated unexpectedly')) : pool.query(query)),
      connect: () => (broken ? Promise.reject(new Error('Connection terminated unexpectedly')) : pool.connect()),
    };
    const table = freshTable();
    const leaseMs = 600;
    const store = new PostgresStore({ pool: flaky, table, leaseMs, pollIntervalMs: 200 });
    const other = new PostgresStore({ pool, table, leaseMs, pollIntervalMs: 200 });
    try {
      await store.open();
      await other.open();
      const now = Date.now();
      await store.append([{ id: 'e1', url: 'http://127.0.0.1:1/hook', headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now }]);
      expect((await store.claim({ now: Date.now(), limit: 10 })).events.map((event) => event.id)).toEqual(['e1']);
      // The request was answered; its outcome, then the flusher's release of the event, meet the outage.
      broken = true;
      await expect(store.settle([{ id: 'e1', type: 'delivered', attempt: { at: Date.now(), durationMs: 1, status: 200 } }])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
      await expect(store.settle([{ id: 'e1', type: 'release' }])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
      broken = false;
      // Nobody will write its outcome now: another flusher gets the event after the lease ran out.
      let claimed: string[] = [];
      const deadline = Date.now() + 20 * leaseMs;
      while (claimed.length === 0 && Date.now() < deadline) {
        await sleep(100);
        claimed = (await other.claim({ now: Date.now(), limit: 10 })).events.map((event) => event.id);
      }
      expect(claimed).toEqual(['e1']);
      await other.settle([{ id: 'e1', type: 'delivered', attempt: { at: Date.now(), durationMs: 1, status: 200 } }]);
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
      // The first store has forgotten it by then.
      await sleep(300);
      expect(store.stats().claimed).toBe(0);
    } finally {
      broken = false;
      await store.close();
      await other.close();
      await pool.end();
    }
  }, 60_000);
});

/** The flusher's pause after a store fault (src/delivery/flusher.ts). */
const STORE_FAULT_PAUSE_MS = 1_000;
