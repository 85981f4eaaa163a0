import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { MemoryStore } from '../../src/store/memory.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { closedAfterEach, enqueueMany, expectAllDelivered, newSecret, waitFor } from '../outbox-helpers.js';

const opened = closedAfterEach();

describe('recovery on a real receiver on 127.0.0.1', () => {
  // Attack: accept-then-reset outage (socket destroyed without an answer), then a receiver that recovers
  // with capacity 3 and answers 503 (not 429) above it: the 503s are both endpoint failures and congestion,
  // so a careless recovery could re-open the circuit or dead-letter events through maxAttempts.
  it.each([
    ['503 above capacity 3', 3, 503],
    ['429 above capacity 2', 2, 429],
  ])('after resets for a while, %s: all delivered, none dead, few refusals, concurrency near capacity', async (_name, capacity, over) => {
    const secret = newSecret();
    let phase: 'reset' | 'recovered' = 'reset';
    const rx = (opened.receiver = await startFlakyReceiver({
      secret,
      latencyMs: 15,
      script: (request) => (phase === 'reset' ? { drop: true } : request.concurrency > capacity ? over : 200),
    }));
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      signingSecret: secret,
      retry: { baseDelayMs: 5, maxDelayMs: 50, maxRetryAfterMs: 100, maxAttempts: 5 },
      timeoutMs: 5_000,
    }));
    const opens: number[] = [];
    box.on('circuit', (c) => {
      if (c.state === 'open') opens.push(rx.requests.length);
    });
    const enqueued = await enqueueMany(box, 400);
    await waitFor(() => opens.length >= 8, 10_000, 'eight re-openings during the reset phase');
    const recoveredAt = rx.requests.length;
    const opensBefore = opens.length;
    phase = 'recovered';
    await box.drain({ timeoutMs: 25_000 });
    expect(await box.deadLetters()).toEqual([]);
    expectAllDelivered(rx, enqueued);
    const after = rx.requests.slice(recoveredAt);
    const refused = after.filter((r) => r.status === over).length;
    // Once closed after the recovery, the circuit stays closed.
    expect(opens.length - opensBefore).toBeLessThanOrEqual(1);
    expect(refused).toBeLessThan(400 * 0.1);
    expect(Math.max(...after.map((r) => r.concurrency))).toBeLessThanOrEqual(capacity + 2);
  });
});
