import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { closedAfterEach, enqueueMany, FAST_RETRY, newSecret, timedTransport, waitFor } from './outbox-helpers.js';

const opened = closedAfterEach();

describe('endpointLimits', () => {
  it('caps one endpoint at its own concurrency while another gets the outbox default', async () => {
    const secret = newSecret();
    const narrow = await startFlakyReceiver({ secret, latencyMs: 20 });
    const wide = (opened.receiver = await startFlakyReceiver({ secret, latencyMs: 20 }));
    try {
      const asked: string[] = [];
      const box = (opened.outbox = await Outbox.open({
        store: new MemoryStore(),
        signingSecret: secret,
        retry: FAST_RETRY,
        concurrency: 8,
        endpointLimits: (url) => {
          asked.push(url);
          return url === narrow.url ? { concurrency: 2 } : undefined;
        },
      }));
      for (let n = 0; n < 60; n++) await box.enqueue({ url: n % 2 === 0 ? narrow.url : wide.url, body: { n } });
      await box.drain({ timeoutMs: 10_000 });
      expect(narrow.peakConcurrency).toBe(2);
      expect(wide.peakConcurrency).toBeGreaterThan(2);
      expect(wide.peakConcurrency).toBeLessThanOrEqual(8);
      expect(narrow.requests).toHaveLength(30);
      expect(wide.requests).toHaveLength(30);
      // Asked once per endpoint, when the outbox began sending to it.
      expect(asked.sort()).toEqual([narrow.url, wide.url].sort());
    } finally {
      await narrow.close();
    }
  });

  it('starts at most ratePerSecond requests a second (a second’s worth at once, then one per 1/rate)', async () => {
    const clock = new FakeClock(Date.now());
    const { transport, startedAt } = timedTransport(clock);
    const url = 'http://127.0.0.1:9/hook';
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url, transport, clock, endpointLimits: () => ({ ratePerSecond: 5 }) }));
    await enqueueMany(box, 20);
    const t0 = clock.now();
    await waitFor(() => startedAt.length === 5, 5_000, 'the first burst');
    // Time stands still: nothing more may start, however long the flusher runs.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(startedAt).toHaveLength(5);
    for (let step = 0; step < 40 && startedAt.length < 20; step++) {
      clock.advance(100);
      const due = 5 + Math.floor((clock.now() - t0) / 200);
      await waitFor(() => startedAt.length >= Math.min(20, due), 5_000, `${due} started`);
    }
    await box.drain({ timeoutMs: 5_000 });
    expect(startedAt).toHaveLength(20);
    // The i-th request (from 0) started no earlier than the rate allows: 5 at once, then one per 200 ms.
    startedAt.forEach((at, i) => expect(at - t0).toBeGreaterThanOrEqual(Math.max(0, i - 4) * 200));
  }, 15_000);

  it('applies the defaults and reports an error when the function throws or answers nonsense', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const answers: unknown[] = [() => ({ concurrency: 0 }), () => ({ ratePerSecond: Number.NaN }), () => ({ concurrent: 2 }), () => 'fast'];
    for (const answer of answers) {
      const errors: unknown[] = [];
      const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, endpointLimits: answer as () => undefined }));
      box.on('error', (error) => errors.push(error));
      await enqueueMany(box, 3);
      await box.drain({ timeoutMs: 5_000 });
      expect(errors).toEqual([expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: expect.stringMatching(/^endpointLimits/) })]);
      await box.close();
    }
    const throwing = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      endpointLimits: () => {
        throw new Error('customer table is down');
      },
    }));
    const errors: Error[] = [];
    throwing.on('error', (error) => errors.push(error));
    const enqueued = await enqueueMany(throwing, 3);
    await throwing.drain({ timeoutMs: 5_000 });
    expect(errors.map((e) => [(e as { code?: string }).code, (e.cause as Error).message])).toEqual([['ERR_INVALID_OPTION', 'customer table is down']]);
    expect([...enqueued.keys()].every((id) => rx.countById(id) === 1)).toBe(true);
    await expect(Outbox.open({ store: new MemoryStore(), url: rx.url, endpointLimits: { concurrency: 2 } as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'endpointLimits',
    });
  });
});
