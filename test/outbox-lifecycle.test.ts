/**
 * The lifecycle of an outbox embedded in a service as docs/01 and docs/11 tell it to be: a real child
 * process that enqueues without end to three endpoints, each with its own secret (the async function
 * form), with ordering keys that span endpoints;
 * stopped by SIGTERM through the docs/01 handler, or SIGKILLed at random moments several times over the
 * same directory; then reopened and drained. Checked: every acknowledged event delivered to its own endpoint
 * with a valid signature of that endpoint's secret and its exact body; nothing delivered that was not
 * acknowledged; per ordering key, first deliveries in enqueue order across processes and endpoints.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/index.js';
import { startFlakyReceiver } from '../src/testing/index.js';
import type { FlakyReceiver, ReceivedRequest } from '../src/testing/index.js';
import { builtPackage } from './cli/run-cli.js';
import { newSecret, waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

const tempDir = tempDirs('outbox-lifecycle');
const fixture = join(import.meta.dirname, 'fixtures', 'outbox-service-app.mjs');
const built = builtPackage();
const receivers: FlakyReceiver[] = [];

afterEach(async () => {
  for (const receiver of receivers.splice(0)) await receiver.close();
});

interface Endpoint {
  receiver: FlakyReceiver;
  secret: string;
}

/** Three endpoints with their own secret; each answers 503 to every 7th request and takes 0-15 ms. */
async function endpoints(): Promise<Endpoint[]> {
  const out: Endpoint[] = [];
  for (let i = 0; i < 3; i++) {
    const secret = newSecret();
    const receiver = await startFlakyReceiver({ secret, script: (_req, index) => (index % 7 === 3 ? 503 : { status: 200, delayMs: index % 16 }) });
    receivers.push(receiver);
    out.push({ receiver, secret });
  }
  return out;
}

/** Same as the fixture's `shape()`. */
function shape(n: number, urls: readonly string[]): { url: string; orderingKey: string | undefined } {
  return { url: urls[n % urls.length] as string, orderingKey: n % 5 === 0 ? undefined : `key-${n % 7}` };
}

interface Run {
  acked: Set<string>;
  rejected: Map<string, string>;
  closedMs: number | undefined;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
  stderr(): string;
}

function startApp(dir: string, config: object): Run {
  const child = spawn(process.execPath, [fixture, built.indexUrl, dir, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = {
    acked: new Set(),
    rejected: new Map(),
    closedMs: undefined,
    exit: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
    kill: (signal) => child.kill(signal),
    stderr: () => stderr,
  };
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const [word, id, code] = line.split(' ');
      if (word === 'ack' && id !== undefined) run.acked.add(id);
      else if (word === 'rej' && id !== undefined) run.rejected.set(id, code ?? '');
      else if (word === 'closed') run.closedMs = Number(id);
    }
  });
  return run;
}

/** Reopens the directory in this process with the same secrets, drains it, and checks what arrived. */
async function drainAndCheck(dir: string, eps: readonly Endpoint[], acked: ReadonlySet<string>, unacked: (id: string) => boolean = () => false): Promise<void> {
  const urls = eps.map((ep) => ep.receiver.url);
  const secrets = new Map(eps.map((ep) => [ep.receiver.url, ep.secret]));
  const outbox = await Outbox.open({ dir, signingSecret: (url) => secrets.get(url), retry: { baseDelayMs: 5, maxDelayMs: 50 } });
  try {
    await outbox.drain({ timeoutMs: 30_000 });
    expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0, corrupt: 0 });
  } finally {
    await outbox.close();
  }
  const all: (ReceivedRequest & { url: string })[] = eps.flatMap((ep) => ep.receiver.requests.map((request) => ({ ...request, url: ep.receiver.url })));
  // Every request: an acknowledged event (or, after a kill, one whose enqueue was under way), at its own
  // endpoint, signed with that endpoint's secret, its exact body.
  const strays = all.filter((request) => request.id === undefined || (!acked.has(request.id) && !unacked(request.id)));
  expect(strays.map((request) => request.id)).toEqual([]);
  for (const request of all) {
    const n = Number((request.id as string).slice(4));
    expect(request.signatureValid).toBe(true);
    expect(request.url).toBe(shape(n, urls).url);
    expect(JSON.parse(request.body)).toEqual({ n, text: `event ${n} \u00e9\u4e2d\ud83d\ude00` });
  }
  const delivered = new Set(eps.flatMap((ep) => [...ep.receiver.deliveredIds()]));
  expect([...acked].filter((id) => !delivered.has(id))).toEqual([]);
  // Per ordering key, the first 2xx of each event comes in enqueue order (arrival times across endpoints).
  const firstOk = new Map<string, number>();
  for (const request of [...all].sort((a, b) => a.at - b.at)) {
    if (request.status !== undefined && request.status < 300 && !firstOk.has(request.id as string)) firstOk.set(request.id as string, request.at);
  }
  const byKey = new Map<string, number[]>();
  for (const id of [...firstOk.keys()]) {
    const n = Number(id.slice(4));
    const key = shape(n, urls).orderingKey;
    if (key !== undefined) byKey.set(key, [...(byKey.get(key) ?? []), n]);
  }
  for (const [key, ns] of byKey) expect({ key, order: ns }).toEqual({ key, order: [...ns].sort((a, b) => a - b) });
}

describe('an embedded outbox stopped and killed under load', () => {
  it('SIGTERM with the docs/01 handler while enqueues and requests are in flight: close() in time, every ack delivered after reopen', async () => {
    const eps = await endpoints();
    const urls = eps.map((ep) => ep.receiver.url);
    const dir = await tempDir();
    const run = startApp(dir, { urls, secrets: Object.fromEntries(eps.map((ep) => [ep.receiver.url, ep.secret])), start: 0, closeTimeoutMs: 300 });
    await waitFor(() => run.acked.size >= 400 && eps.every((ep) => ep.receiver.deliveredIds().size >= 10), 20_000, `acks (stderr: ${run.stderr()})`);
    await waitFor(() => eps.some((ep) => ep.receiver.inProgress > 0), 5_000, 'a request in flight');
    run.kill('SIGTERM');
    const exit = await run.exit;
    expect(exit).toEqual({ code: 0, signal: null });
    // close({ timeoutMs: 300 }) returns within timeoutMs + 2 s (README).
    expect(run.closedMs).toBeDefined();
    expect(run.closedMs as number).toBeLessThan(2_300);
    // Enqueues after close() started were refused, not silently dropped.
    for (const code of run.rejected.values()) expect(code).toBe('ERR_OUTBOX_CLOSED');
    await drainAndCheck(dir, eps, run.acked);
  }, 60_000);

  it('SIGKILL at random moments, four times over one directory, then a final drain: every ack delivered once or more, keys in order', async () => {
    const eps = await endpoints();
    const urls = eps.map((ep) => ep.receiver.url);
    const secrets = Object.fromEntries(eps.map((ep) => [ep.receiver.url, ep.secret]));
    const dir = await tempDir();
    const acked = new Set<string>();
    /** Per round, the last id that may have been written without its ack printed (the group being enqueued). */
    const underWay: { start: number; end: number }[] = [];
    let start = 0;
    for (let round = 0; round < 4; round++) {
      const run = startApp(dir, { urls, secrets, start, closeTimeoutMs: 300 });
      const target = 100 + Math.floor(Math.random() * 300);
      await waitFor(() => run.acked.size >= target, 20_000, `acks in round ${round} (stderr: ${run.stderr()})`);
      // A random moment a little later: mid-enqueue, mid-request, mid-outcome.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)));
      run.kill('SIGKILL');
      expect((await run.exit).signal).toBe('SIGKILL');
      for (const id of run.acked) acked.add(id);
      const top = Math.max(...[...run.acked].map((id) => Number(id.slice(4))));
      // Groups of 8 enqueues at a time: a kill can land between a group's fsync and its acks being printed.
      underWay.push({ start, end: top + 16 });
      expect(run.stderr()).toBe('');
      start += 100_000;
    }
    await drainAndCheck(dir, eps, acked, (id) => {
      const n = Number(id.slice(4));
      return underWay.some((round) => n >= round.start && n <= round.end);
    });
  }, 120_000);
});
