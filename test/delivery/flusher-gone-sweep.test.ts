import { describe, expect, it } from 'vitest';
import { StoreIoError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { ClaimRequest, ClaimResult, Outcome } from '../../src/store/store.js';
import { A, B, flush, setup } from './flusher-harness.js';

/** A gone URL's sweep (events not due yet) and the per-URL enable count, in the flusher. */
describe('the sweep of a gone URL', () => {
  it('an event in flight when the 410 came, answered 500 after it, is buried too (not left waiting for its retry)', async () => {
    const t = await setup({ concurrency: 2 });
    await t.enqueue(2, A, 'w');
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(2);
    t.calls[0]?.answer(410);
    await flush();
    expect(t.flusher.gone.has(A)).toBe(true);
    // The other request of the window answers 500 afterwards: a retry, due later.
    t.calls[1]?.answer(500);
    await flush();
    await flush();
    expect(t.calls).toHaveLength(2);
    // docs/06: its other events (..., waiting for a retry, ...) become dead letters without a request.
    expect(t.store.stats()).toMatchObject({ pending: 0, dead: 2 });
    await t.flusher.stop(0);
  });
});

describe('the sweep after a store fault', () => {
  it('an event waiting for a retry whose sweep burial failed once is swept again after the fault pause', async () => {
    const STORE_FAULT_PAUSE_MS = 1_000; // src/delivery/flusher.ts (not exported)
    let failed = false;
    class OnceFaulty extends MemoryStore {
      override async settle(outcomes: readonly Outcome[]): Promise<void> {
        if (!failed && outcomes.some((o) => o.type === 'dead' && o.reason === 'endpoint-gone')) {
          failed = true;
          throw new StoreIoError('writing outcomes', { cause: new Error('ENOSPC') });
        }
        return super.settle(outcomes);
      }
    }
    const store = new OnceFaulty();
    await store.open();
    const t = await setup({ store, concurrency: 1, collectErrors: true });
    const now = t.clock.now();
    await store.append([{ id: 'g', url: A, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now }]);
    await store.append([{ id: 'w', url: A, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now + 3_600_000 }]);
    t.flusher.start();
    await flush();
    t.calls[0]?.answer(410);
    await flush();
    expect(failed).toBe(true);
    // The disk has room again; time passes beyond the fault pause (not as far as the retry's due time).
    for (let i = 0; i < 10; i++) {
      t.clock.advance(STORE_FAULT_PAUSE_MS);
      await flush();
    }
    expect(t.store.stats().endpoints[A]).toMatchObject({ pending: 0, dead: 2 });
    expect(t.calls).toHaveLength(1);
    await t.flusher.stop(0);
  });
});

describe('enable() while the sweep claim is out', () => {
  it('the swept events are handed back unsent, and sent only when due', async () => {
    let open: (() => void) | undefined;
    class Gated extends MemoryStore {
      override async claim(request: ClaimRequest): Promise<ClaimResult> {
        const result = await super.claim(request);
        if (request.now === Number.MAX_SAFE_INTEGER) await new Promise<void>((resolve) => (open = resolve));
        return result;
      }
    }
    const store = new Gated();
    await store.open();
    const t = await setup({ store, concurrency: 4 });
    const now = t.clock.now();
    await store.append([{ id: 'g', url: A, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now }]);
    await store.append(Array.from({ length: 5 }, (_, i) => ({ id: `w${i}`, url: A, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now + 60_000 })));
    t.flusher.start();
    await flush();
    t.calls[0]?.answer(410);
    for (let i = 0; i < 20 && open === undefined; i++) await flush();
    expect(open).toBeDefined();
    expect(t.flusher.enable(A)).toBe(true);
    open?.();
    await flush();
    await flush();
    expect(t.calls.map((c) => c.event.id)).toEqual(['g']);
    expect(store.stats().endpoints[A]).toMatchObject({ pending: 5, dead: 1 });
    t.clock.advance(59_000);
    await flush();
    expect(t.calls).toHaveLength(1);
    t.clock.advance(1_000);
    await flush();
    await flush();
    expect(t.calls.map((c) => c.event.id).sort()).toEqual(['g', 'w0', 'w1', 'w2', 'w3']);
    await t.flusher.stop(0);
  });
});

describe('sweeping a big backlog', () => {
  it('20,000 events waiting for a retry are buried in batches: never more than a few claim batches held at once', async () => {
    let most = 0;
    let sweeps = 0;
    class Watching extends MemoryStore {
      override async claim(request: ClaimRequest): Promise<ClaimResult> {
        if (request.now === Number.MAX_SAFE_INTEGER) sweeps++;
        const result = await super.claim(request);
        most = Math.max(most, this.stats().claimed);
        return result;
      }
    }
    const store = new Watching();
    await store.open();
    const t = await setup({ store, concurrency: 1 });
    const now = t.clock.now();
    await store.append([{ id: 'g', url: A, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now }]);
    await store.append(Array.from({ length: 20_000 }, (_, i) => ({ id: `w${i}`, url: A, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now + 3_600_000 })));
    t.flusher.start();
    await flush();
    t.calls[0]?.answer(410);
    for (let i = 0; i < 2_000 && (store.stats().endpoints[A]?.pending ?? 0) > 0; i++) await flush();
    expect(store.stats().endpoints[A]).toMatchObject({ pending: 0, dead: 20_001 });
    expect(t.calls).toHaveLength(1);
    expect(most).toBeLessThanOrEqual(4 * 256);
    expect(sweeps).toBeLessThanOrEqual(20_000 / 256 + 3);
    await t.flusher.stop(0);
  });
});

/** The enable count is per URL, and only an enable of a disabled URL counts. */
describe('enable counter', () => {
  it('enabling endpoint A does not stop a 410 from endpoint B (in flight meanwhile) from disabling B', async () => {
    const t = await setup({ concurrency: 1 });
    await t.enqueue(5, B, 'b');
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(1);
    // Another customer's endpoint A is enabled (it was never disabled, or was: either way nothing about B).
    t.flusher.enable(A);
    t.calls[0]?.answer(410);
    await flush();
    // B answered 410 to a request sent after B's own last enable (there was none): B is gone.
    expect(t.gone.map((g) => g.url)).toEqual([B]);
    // And nothing more is sent to B.
    expect(t.calls).toHaveLength(1);
    await t.flusher.stop(0);
  });

  it('an app that calls enable(url) on every config reload never gets a gone endpoint disabled', async () => {
    const t = await setup({ concurrency: 1 });
    await t.enqueue(20, B, 'b');
    t.flusher.start();
    await flush();
    // Each request takes longer than the reload interval: a reload (enable of every configured URL) between
    // each request and its 410 answer.
    for (let i = 0; i < 10; i++) {
      const call = t.calls[i];
      if (call === undefined) break;
      t.flusher.enable(B); // B is not disabled: a no-op that returns false
      call.answer(410);
      await flush();
    }
    expect(t.gone).toHaveLength(1);
    // The Standard Webhooks promise: after the first 410 nothing more is sent.
    expect(t.calls).toHaveLength(1);
    await t.flusher.stop(0);
  });
});
