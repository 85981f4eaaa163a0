import { randomBytes } from 'node:crypto';
import { afterEach, expect } from 'vitest';
import type { Clock } from '../src/clock.js';
import type { Outbox } from '../src/outbox.js';
import type { FlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { Transport } from '../src/transport/transport.js';

/** A fresh Standard Webhooks secret. */
export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** Fast schedule for tests: a few ms of backoff, 100 ms cap. */
export const FAST_RETRY = { baseDelayMs: 5, maxDelayMs: 100, maxRetryAfterMs: 100 } as const;

/** Resolves when `predicate` holds, polling every few ms; fails the test after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The JSON body the tests enqueue for event number `n`. */
export function bodyOf(n: number): { n: number; text: string } {
  return { n, text: `event ${n} ${'x'.repeat(n % 50)}` };
}

/**
 * Checks what a receiver got against what was enqueued: every id delivered, exactly the enqueued ids,
 * every request signed correctly and carrying the enqueued body.
 */
export function expectAllDelivered(receiver: FlakyReceiver, enqueued: Map<string, unknown>): void {
  const delivered = receiver.deliveredIds();
  expect(delivered.size).toBe(enqueued.size);
  for (const id of enqueued.keys()) expect(delivered.has(id)).toBe(true);
  for (const request of receiver.requests) {
    expect(request.signatureValid).toBe(true);
    expect(request.id).toBeDefined();
    expect(enqueued.has(request.id as string)).toBe(true);
    expect(JSON.parse(request.body)).toEqual(enqueued.get(request.id as string));
  }
}

/** Enqueues `count` events concurrently; returns id -> body. */
export async function enqueueMany(outbox: Outbox, count: number, offset = 0): Promise<Map<string, unknown>> {
  const bodies = Array.from({ length: count }, (_, i) => bodyOf(offset + i));
  const results = await Promise.all(bodies.map((body) => outbox.enqueue({ body })));
  const map = new Map<string, unknown>();
  results.forEach(({ id }, i) => map.set(id, bodies[i]));
  expect(map.size).toBe(count);
  return map;
}

/** What a test opened, closed (and forgotten) after each test of the file that made it. */
export interface Opened {
  outbox?: Outbox;
  receiver?: FlakyReceiver;
}

/** Registers the close of whatever each test puts into the returned object. */
export function closedAfterEach(): Opened {
  const opened: Opened = {};
  afterEach(async () => {
    await opened.outbox?.close({ timeoutMs: 100 });
    await opened.receiver?.close();
    delete opened.outbox;
    delete opened.receiver;
  });
  return opened;
}

/** A transport that answers 200 at once and records when (on `clock`) each request started. */
export function timedTransport(clock: Clock): { transport: Transport; startedAt: number[] } {
  const startedAt: number[] = [];
  const transport: Transport = {
    send: () => {
      startedAt.push(clock.now());
      return Promise.resolve({ status: 200, headers: {}, bodyExcerpt: '' });
    },
  };
  return { transport, startedAt };
}
