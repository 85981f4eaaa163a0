import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox } from '../../src/outbox.js';
import { flush, open, openBox } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

async function throttleForAMinute(retryAfter: string | undefined, retry: Record<string, number>, concurrency: number) {
  const t = await openBox({ concurrency, retry: { baseDelayMs: 1_000, maxDelayMs: 60_000, maxAttempts: 3, ...retry } });
  box = t.box;
  await Promise.all(Array.from({ length: 300 }, (_, n) => t.box.enqueue({ body: { n } })));
  await flush();
  const headers: Record<string, string> = retryAfter === undefined ? {} : { 'retry-after': retryAfter };
  // The receiver answers at once; 10 ms of fake time per round, 60 s in all (bounded in rounds).
  for (let round = 0; round < 6_000; round++) {
    for (const p of open(t.pending)) p.reply(429, headers);
    await flush(3);
    t.clock.advance(10);
  }
  return t;
}

describe('429 at one request at a time: siblings of the Retry-After: 0 tight loop', () => {
  // Scenario: retry.maxRetryAfterMs: 0 (the operator does not let receivers park the outbox) and a receiver
  // that throttles with `429 Retry-After: 5` for a minute. Expected (docs/04 "Throttled at one request at a
  // time", and the fix for Retry-After: 0): the receiver's wait is bounded to 0 ms, so it asks for no wait,
  // and the endpoint pauses for the backoff steps: well under 60 requests a minute, as without Retry-After.
  // Before the fix: EndpointState.record() tests the raw Retry-After (5000 > 0) to decide whether the backoff pause
  // applies, then bounds the pause to maxRetryAfterMs = 0: no pause at all, one request per round trip
  // (here 1 per 10 ms round = about 6,000 a minute; with a fast real receiver, thousands per second).
  // Why it matters: the exact tight loop just fixed for Retry-After: 0, reached through a documented option.
  it('maxRetryAfterMs: 0 and 429 Retry-After: 5 at concurrency 1: a bounded number of requests a minute', async () => {
    const t = await throttleForAMinute('5', { maxRetryAfterMs: 0 }, 1);
    expect(t.dead).toEqual([]);
    expect(t.sent.length).toBeLessThan(60);
  });

  // Same with a small but non-zero cap (1 s) and a receiver asking for an hour: the bounded pause (1 s) is
  // shorter than the backoff step would be. Passing or not, this documents the rate: at most one a second.
  it('maxRetryAfterMs: 1000 and 429 Retry-After: 3600: about one request a second, no dead letter', async () => {
    const t = await throttleForAMinute('3600', { maxRetryAfterMs: 1_000 }, 16);
    expect(t.dead).toEqual([]);
    expect(t.sent.length).toBeLessThanOrEqual(16 + 8 + 4 + 2 + 1 + 62);
  });

  // Odd Retry-After values (garbage is ignored per docs/03): each must fall back to the backoff pause.
  it.each(['-1', '1.5', ' 0 ', 'soon', '0x10', 'Thu, 01 Jan 1970 00:00:00 GMT', ''])(
    'Retry-After %j at concurrency 1: fewer than 60 requests a minute, no dead letter',
    async (value) => {
      const t = await throttleForAMinute(value, {}, 1);
      expect(t.dead).toEqual([]);
      expect(t.sent.length).toBeLessThan(60);
    },
  );
});
