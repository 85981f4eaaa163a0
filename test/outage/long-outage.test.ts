import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox } from '../../src/outbox.js';
import { flush, open, openBox, perMinute, type Pending } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

const HOURS = 3;
const STEP_MS = 5_000;
const START = 1_700_000_000_000;

type Mode = (p: Pending, now: number) => void;

const modes: [string, Mode][] = [
  ['500', (p) => p.reply(500)],
  ['503 Retry-After: 120', (p) => p.reply(503, { 'retry-after': '120' })],
  ['503 Retry-After: 7200 (above maxRetryAfterMs)', (p) => p.reply(503, { 'retry-after': '7200' })],
  ['503 Retry-After: 99999999999999999999', (p) => p.reply(503, { 'retry-after': '99999999999999999999' })],
  ['503 Retry-After: an HTTP-date 30 min ahead', (p, now) => p.reply(503, { 'retry-after': new Date(now + 1_800_000).toUTCString() })],
  ['503 Retry-After: 0', (p) => p.reply(503, { 'retry-after': '0' })],
  ['429 without Retry-After', (p) => p.reply(429)],
  ['429 Retry-After: 0', (p) => p.reply(429, { 'retry-after': '0' })],
  ['ECONNREFUSED', (p) => p.fail('ERR_NETWORK', 'ECONNREFUSED')],
  ['ECONNRESET (accepts, then resets)', (p) => p.fail('ERR_NETWORK', 'ECONNRESET')],
  ['a receiver that hangs (attempt timeouts)', () => {}],
];

describe(`a ${HOURS} h outage compressed on a FakeClock, then recovery`, () => {
  it.each(modes)('%s: no dead letter, a trickle of requests per minute, everything delivered afterwards', async (_name, mode) => {
    const t = await openBox({ concurrency: 16, timeoutMs: 15_000, retry: { maxAttempts: 3 } });
    box = t.box;
    await Promise.all(Array.from({ length: 500 }, (_, n) => t.box.enqueue({ body: { n } })));
    for (let round = 0; round < (HOURS * 3_600_000) / STEP_MS; round++) {
      await flush(3);
      for (const p of open(t.pending)) {
        mode(p, t.clock.now());
        await flush(1);
      }
      t.clock.advance(STEP_MS);
    }
    const minutes = perMinute(t.sent, START, HOURS * 60);
    // After the first 10 minutes (while the backoff grows), how many requests a minute at most.
    const lateMax = Math.max(...minutes.slice(10));
    const total = t.sent.length;
    expect({ dead: t.dead.length, errors: t.errors.length }).toEqual({ dead: 0, errors: 0 });
    expect(lateMax).toBeLessThanOrEqual(3);
    expect(total).toBeLessThan(200);
    expect(t.box.stats().pending).toBe(500);

    // Recovery: the receiver answers 200 (at once); bounded rounds of 100 ms.
    const recoveredAt = t.sent.length;
    for (let round = 0; t.delivered.length < 500 && round < 40_000; round++) {
      await flush(2);
      for (const p of open(t.pending)) p.reply(200);
      t.clock.advance(100);
    }
    expect(new Set(t.delivered).size).toBe(500);
    expect(t.dead).toEqual([]);
    // The load after the recovery rises (slow start from 1), not a window of 16 at once.
    const after = t.sent.slice(recoveredAt);
    expect(after[0]?.concurrency).toBe(1);
    expect(Math.max(...after.slice(0, 10).map((s) => s.concurrency))).toBeLessThanOrEqual(4);
  });
});
