import { describe, expect, it } from 'vitest';
import { FAILURE_THRESHOLD } from '../src/delivery/flusher.js';
import type { CircuitEvent, RetryEvent } from '../src/delivery/flusher.js';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { closedAfterEach, enqueueMany, expectAllDelivered, FAST_RETRY, newSecret, waitFor } from './outbox-helpers.js';

const opened = closedAfterEach();

const BACKLOG = 600;

describe('Outbox during an outage', () => {
  it('probes a refusing receiver instead of hammering it, burns no attempts, then ramps up and respects capacity', async () => {
    const secret = newSecret();
    // Some latency, so that concurrent requests overlap at the receiver and its concurrency shows.
    const rx = (opened.receiver = await startFlakyReceiver({ secret, latencyMs: 10 }));
    await rx.refuseConnections();
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      signingSecret: secret,
      // maxAttempts 5 (against at least ten probes) would dead-letter the backlog if outage failures counted
      // against events. After the recovery the receiver's capacity answers 429s, which do count: 3 allowed
      // one unlucky event to die of them (seen once in a full run).
      retry: { ...FAST_RETRY, maxDelayMs: 50, maxAttempts: 5 },
      timeoutMs: 5_000,
    }));
    const retries: RetryEvent[] = [];
    const circuit: CircuitEvent[] = [];
    const errors: unknown[] = [];
    box.on('retry', (event) => retries.push(event));
    box.on('circuit', (event) => circuit.push(event));
    box.on('error', (error) => errors.push(error));

    const enqueued = await enqueueMany(box, BACKLOG);
    await waitFor(() => circuit.filter((c) => c.state === 'open').length >= 10, 10_000, 'ten probes');
    // Attempts during the outage: before the circuit opened, at most one window (16) plus the slots that
    // freed up before the threshold was reached; after that, one per probe.
    const probes = circuit.filter((c) => c.state === 'half-open').length;
    expect(retries.length).toBeLessThanOrEqual(16 + FAILURE_THRESHOLD + probes + 1);
    expect(retries.filter((r) => r.counted).length).toBeLessThanOrEqual(16 + FAILURE_THRESHOLD);
    expect(box.stats().endpoints[rx.url]?.circuit).not.toBe('closed');
    expect(box.stats().pending).toBe(BACKLOG);

    const recoveredAt = rx.requests.length;
    rx.setCapacity(4);
    await rx.acceptConnections();
    await box.drain({ timeoutMs: 20_000 });

    // First: a dead letter shows its reason and history here, not only as a missing delivery.
    expect(await box.deadLetters()).toEqual([]);
    expectAllDelivered(rx, enqueued);
    expect(errors).toEqual([]);
    expect(circuit.at(-1)).toMatchObject({ state: 'closed', previous: 'half-open' });

    // Slow start: the receiver sees the load rise, not a wall of 16 requests.
    const after = rx.requests.slice(recoveredAt);
    const peak = (from: number, to: number): number => Math.max(...after.slice(from, to).map((r) => r.concurrency));
    expect(peak(0, 3)).toBe(1);
    expect(peak(0, 10)).toBeLessThanOrEqual(3);
    // Capacity 4: few 429s (each one halves the window, and growth slows near that level), yet it grew.
    const throttled = after.filter((r) => r.status === 429).length;
    expect(throttled).toBeLessThan(BACKLOG * 0.05);
    expect(Math.max(...after.map((r) => r.concurrency))).toBeGreaterThanOrEqual(3);
  });

  it('a Retry-After pauses the endpoint', async () => {
    const rx = (opened.receiver = await startFlakyReceiver({ script: [{ status: 429, headers: { 'retry-after': '1' } }] }));
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      retry: { ...FAST_RETRY, maxRetryAfterMs: 300 },
      concurrency: 1,
    }));
    await enqueueMany(box, 3);
    await box.drain({ timeoutMs: 5_000 });
    const [first, second] = rx.requests;
    expect(first?.status).toBe(429);
    // Retry-After: 1 s, bounded to 300 ms by maxRetryAfterMs: nothing is sent to the endpoint before then.
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(290);
    expect(rx.deliveredIds().size).toBe(3);
  });

  it('a gateway that answers 502 or 504 above the receiver\'s capacity slows the outbox down, like a 429', async () => {
    // Standard Webhooks: 502 and 504 usually mean the server is under load; throttle.
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret, latencyMs: 10, script: (request) => (request.concurrency > 4 ? (request.concurrency % 2 === 0 ? 502 : 504) : 200) }));
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, signingSecret: secret, retry: FAST_RETRY, timeoutMs: 5_000 }));
    const enqueued = await enqueueMany(box, 300);
    await box.drain({ timeoutMs: 20_000 });
    expect(await box.deadLetters()).toEqual([]);
    expectAllDelivered(rx, enqueued);
    const refused = rx.requests.filter((r) => r.status === 502 || r.status === 504).length;
    // About 25 (the first window's 12, then one each time the limit grows past 4); 170 when they only backed off.
    expect(refused).toBeLessThan(300 * 0.2);
  });
});
