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

describe('outbox through a proxy', () => {
  it('a wrong proxy password (407) keeps the backlog pending, retried, until it is fixed: nothing dead', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    let wrong = true;
    proxy = await startTestProxy(() => (wrong ? 407 : 'tunnel'));
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, proxy: proxy.url.replace('http://', 'http://egress:WRONG@'), retry: FAST_RETRY }));
    const dead: DeadEvent[] = [];
    const retries: RetryEvent[] = [];
    box.on('dead', (e) => dead.push(e));
    box.on('retry', (e) => retries.push(e));
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) ids.add((await box.enqueue({ body: { i } })).id);
    await waitFor(() => retries.length >= 20, 10_000, 'retries');
    expect(dead).toEqual([]);
    expect(box.stats().pending).toBe(200);
    expect(rx.requests).toHaveLength(0);
    // The operator fixes the credentials (here: the proxy starts accepting them).
    wrong = false;
    await box.drain({ timeoutMs: 20_000 });
    expect(dead).toEqual([]);
    expect(rx.deliveredIds()).toEqual(ids);
  });

  it('a proxy that is down: every endpoint keeps its events (the circuit probes), nothing dead', async () => {
    const rxs = [await startFlakyReceiver(), await startFlakyReceiver(), await startFlakyReceiver()];
    opened.receiver = rxs[0];
    proxy = await startTestProxy();
    await proxy.refuseConnections();
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), proxy: proxy.url, retry: { ...FAST_RETRY, maxDelayMs: 50 } }));
    const retries: RetryEvent[] = [];
    box.on('retry', (e) => retries.push(e));
    for (const rx of rxs) for (let i = 0; i < 20; i++) await box.enqueue({ url: rx.url, body: { i } });
    await waitFor(() => retries.length >= 15, 10_000, 'retries');
    const stats = box.stats();
    console.log(Object.fromEntries(Object.entries(stats.endpoints).map(([u, e]) => [u, { circuit: e.circuit, pending: e.pending }])));
    expect(stats.pending).toBe(60);
    expect(stats.dead).toBe(0);
    await proxy.acceptConnections();
    await box.drain({ timeoutMs: 20_000 });
    expect(box.stats().dead).toBe(0);
    for (const rx of rxs) expect(rx.deliveredIds().size).toBe(20);
    for (const rx of rxs.slice(1)) await rx.close();
  }, 40_000);
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
