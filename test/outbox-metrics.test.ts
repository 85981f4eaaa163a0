import { metrics } from '@opentelemetry/api';
import type { Attributes, BatchObservableCallback, Meter, Observable } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { endpointAttribute } from '../src/metrics.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { FlakyReceiver, Reply } from '../src/testing/flaky-receiver.js';
import { FAST_RETRY } from './outbox-helpers.js';

/** A meter that records what an SDK would export: counter additions and one collection of the gauges. */
function recordingMeter() {
  const added: { name: string; value: number; attributes: Attributes | undefined }[] = [];
  const callbacks = new Set<BatchObservableCallback>();
  const names = new Map<Observable, string>();
  const meter = {
    createCounter: (name: string) => ({ add: (value: number, attributes?: Attributes) => added.push({ name, value, attributes }) }),
    createObservableGauge: (name: string) => {
      const gauge = { addCallback() {}, removeCallback() {} } as Observable;
      names.set(gauge, name);
      return gauge;
    },
    addBatchObservableCallback: (callback: BatchObservableCallback) => callbacks.add(callback),
    removeBatchObservableCallback: (callback: BatchObservableCallback) => callbacks.delete(callback),
  };
  const collect = async (): Promise<{ name: string; value: number; attributes: Attributes | undefined }[]> => {
    const observed: { name: string; value: number; attributes: Attributes | undefined }[] = [];
    for (const callback of callbacks) {
      await callback({
        observe: (observable: Observable, value: number, attributes?: Attributes) =>
          observed.push({ name: names.get(observable) ?? '?', value, attributes }),
      });
    }
    return observed;
  };
  return { meter: meter as unknown as Meter, added, callbacks, collect };
}

let receiver: FlakyReceiver | undefined;

afterEach(async () => {
  metrics.disable();
  await receiver?.close();
  receiver = undefined;
});

describe('Outbox metrics', () => {
  it('reports attempts by outcome, dead letters, queue depth, age and circuit state to the global meter provider', async () => {
    const recorder = recordingMeter();
    metrics.setGlobalMeterProvider({ getMeter: () => recorder.meter });
    const rx = (receiver = await startFlakyReceiver({ script: [500, 422] as Reply[] }));
    const outbox = await Outbox.open({ store: new MemoryStore(), url: `${rx.url}?token=secret`, retry: FAST_RETRY, autoFlush: false });
    await outbox.enqueue({ id: 'a', body: 1 });
    await outbox.enqueue({ id: 'b', body: 2 });
    await outbox.enqueue({ id: 'c', body: 3 });

    const before = await recorder.collect();
    expect(before).toContainEqual({ name: 'webhook_outbox.queue.depth', value: 3, attributes: undefined });
    await outbox.drain({ timeoutMs: 5_000 });
    const after = await recorder.collect();
    expect(after).toContainEqual({ name: 'webhook_outbox.queue.depth', value: 0, attributes: undefined });
    expect(after).toContainEqual({ name: 'webhook_outbox.dead_letters', value: 1, attributes: undefined });
    expect(after).toContainEqual({
      name: 'webhook_outbox.circuit.state',
      value: 0,
      attributes: { 'webhook_outbox.endpoint': rx.url },
    });

    const attempts = recorder.added.filter((a) => a.name === 'webhook_outbox.attempts');
    const byOutcome = (outcome: string): number => attempts.filter((a) => a.attributes?.outcome === outcome).length;
    expect(byOutcome('retryable')).toBe(1);
    expect(byOutcome('permanent')).toBe(1);
    expect(byOutcome('delivered')).toBe(2);
    expect(recorder.added.filter((a) => a.name === 'webhook_outbox.dead_lettered')).toEqual([
      { name: 'webhook_outbox.dead_lettered', value: 1, attributes: { reason: 'http-status' } },
    ]);

    await outbox.close();
    expect(recorder.callbacks.size).toBe(0);
  });

  it('counts superseded events, which make no attempt', async () => {
    const recorder = recordingMeter();
    metrics.setGlobalMeterProvider({ getMeter: () => recorder.meter });
    const rx = (receiver = await startFlakyReceiver());
    const outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, retry: FAST_RETRY, autoFlush: false, name: 'crm' });
    for (let n = 0; n < 3; n++) await outbox.enqueue({ id: `u${n}`, body: n, orderingKey: 'customer-1', supersede: true });
    await outbox.drain({ timeoutMs: 5_000 });
    expect(recorder.added.filter((a) => a.name === 'webhook_outbox.superseded')).toEqual([
      { name: 'webhook_outbox.superseded', value: 1, attributes: { 'webhook_outbox.name': 'crm' } },
      { name: 'webhook_outbox.superseded', value: 1, attributes: { 'webhook_outbox.name': 'crm' } },
    ]);
    expect(recorder.added.filter((a) => a.name === 'webhook_outbox.attempts').length).toBe(1);
    expect(rx.requests.map((r) => r.id)).toEqual(['u2']);
    expect(outbox.stats()).toMatchObject({ delivered: 1, superseded: 2, pending: 0 });
    await outbox.close();
  });

  it('counts no attempt for a request that close() abandoned (its event stays pending)', async () => {
    const recorder = recordingMeter();
    metrics.setGlobalMeterProvider({ getMeter: () => recorder.meter });
    const rx = (receiver = await startFlakyReceiver({ script: () => ({ hang: true }) }));
    const store = new MemoryStore();
    const outbox = await Outbox.open({ store, url: rx.url, retry: FAST_RETRY });
    await outbox.enqueue({ id: 'hanging', body: 1 });
    for (let i = 0; i < 500 && rx.inProgress === 0; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(rx.inProgress).toBe(1);
    await outbox.close({ timeoutMs: 20 });
    // The aborted request settles after close() resolved: give it time to be (wrongly) counted.
    for (let i = 0; i < 500 && rx.inProgress > 0; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(store.stats().pending).toBe(1);
    expect(recorder.added.filter((a) => a.name === 'webhook_outbox.attempts')).toEqual([]);
  });

  it('observes one circuit state per endpoint attribute: the worst of the URLs that share it', async () => {
    const recorder = recordingMeter();
    metrics.setGlobalMeterProvider({ getMeter: () => recorder.meter });
    const rx = (receiver = await startFlakyReceiver({ script: () => 503 }));
    // Probes a minute apart: the circuit stays open while the test looks.
    const retry = { ...FAST_RETRY, baseDelayMs: 60_000, maxDelayMs: 60_000 };
    const outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, retry, random: () => 0.99 });
    try {
      // Same origin and path, different queries: the first always fails until its circuit opens.
      for (let i = 0; i < 6; i++) await outbox.enqueue({ url: `${rx.url}?t=1`, body: i });
      for (let i = 0; i < 500 && outbox.stats().endpoints[`${rx.url}?t=1`]?.circuit !== 'open'; i++) await new Promise((resolve) => setTimeout(resolve, 2));
      await outbox.enqueue({ url: `${rx.url}?t=2`, body: 'x' });
      const states = (await recorder.collect()).filter((o) => o.name === 'webhook_outbox.circuit.state');
      expect(states).toEqual([{ name: 'webhook_outbox.circuit.state', value: 2, attributes: { 'webhook_outbox.endpoint': rx.url } }]);
    } finally {
      await outbox.close({ timeoutMs: 0 });
    }
  });

  it('tells two outboxes in one process apart by their name option', async () => {
    const recorder = recordingMeter();
    metrics.setGlobalMeterProvider({ getMeter: () => recorder.meter });
    const rx = (receiver = await startFlakyReceiver({ script: [422] as Reply[] }));
    const orders = await Outbox.open({ store: new MemoryStore(), url: rx.url, retry: FAST_RETRY, autoFlush: false, name: 'orders' });
    const billing = await Outbox.open({ store: new MemoryStore(), url: rx.url, retry: FAST_RETRY, autoFlush: false, name: 'billing' });
    await orders.enqueue({ id: 'o1', body: 1 });
    await orders.enqueue({ id: 'o2', body: 2 });
    await billing.enqueue({ id: 'b1', body: 3 });
    const depth = (await recorder.collect()).filter((o) => o.name === 'webhook_outbox.queue.depth');
    expect(depth).toEqual([
      { name: 'webhook_outbox.queue.depth', value: 2, attributes: { 'webhook_outbox.name': 'orders' } },
      { name: 'webhook_outbox.queue.depth', value: 1, attributes: { 'webhook_outbox.name': 'billing' } },
    ]);
    await billing.drain({ timeoutMs: 5_000 });
    expect(recorder.added.filter((a) => a.name === 'webhook_outbox.dead_lettered')).toEqual([
      { name: 'webhook_outbox.dead_lettered', value: 1, attributes: { 'webhook_outbox.name': 'billing', reason: 'http-status' } },
    ]);
    const circuits = (await recorder.collect()).filter((o) => o.name === 'webhook_outbox.circuit.state');
    expect(circuits.map((o) => o.attributes?.['webhook_outbox.name'])).toEqual(['orders', 'billing']);
    await orders.close();
    await billing.close();
    await expect(Outbox.open({ store: new MemoryStore(), url: rx.url, name: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'name' });
  });

  it('labels endpoints by origin and path only (no query, no credentials)', () => {
    expect(endpointAttribute('https://user:pw@example.com:8443/hooks/1?token=abc#x')).toBe('https://example.com:8443/hooks/1');
  });
});
