import { afterEach, describe, expect, it } from 'vitest';
import type { DeadEvent, RetryEvent } from '../src/delivery/flusher.js';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { closedAfterEach, FAST_RETRY, waitFor } from './outbox-helpers.js';
import { startTestProxy, type TestProxy } from './transport/test-proxy.js';

const opened = closedAfterEach();
let proxy: TestProxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

describe('407 through the outbox', () => {
  it('opens the endpoint circuit (probes) instead of sending every pending event', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    proxy = await startTestProxy(() => 407);
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, proxy: proxy.url, retry: { ...FAST_RETRY, baseDelayMs: 200, maxDelayMs: 2_000 } }));
    const dead: DeadEvent[] = [];
    const retries: RetryEvent[] = [];
    box.on('dead', (e) => dead.push(e));
    box.on('retry', (e) => retries.push(e));
    for (let i = 0; i < 100; i++) await box.enqueue({ body: { i } });
    await waitFor(() => Object.values(box.stats().endpoints).some((e) => e.circuit !== 'closed'), 10_000, 'circuit opens');
    const connectsAtOpen = proxy.seen.length;
    expect(dead).toEqual([]);
    // Once open, no more than a probe at a time: far fewer CONNECTs than pending events.
    expect(connectsAtOpen).toBeLessThan(100);
  });
});
