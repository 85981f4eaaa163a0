import { describe, expect, it } from 'vitest';
import { FAILURE_THRESHOLD, QUIET_LANE_MS } from '../../src/delivery/flusher.js';
import { MemoryStore } from '../../src/store/memory.js';
import { A, B, flush, setup } from './flusher-harness.js';

describe('Flusher', () => {
  it('persists attempts and the next due time, so a restarted flusher neither forgets nor retries early', async () => {
    const first = await setup();
    await first.enqueue(2);
    first.flusher.start();
    await flush();
    expect(first.calls).toHaveLength(2);
    first.calls[0]?.answer('ok'); // the endpoint is up: a failure now is the event's own attempt
    await flush();
    first.calls[1]?.answer(500);
    await flush();
    // Full jitter with random 0.5 after the first failure: 0.5 * 1000 ms.
    expect(first.retries).toEqual([expect.objectContaining({ id: 'e1', attempts: 1, counted: true, nextAttemptAt: 1_000_500 })]);
    await first.flusher.stop(0);

    // A new flusher over the same store (a restart): the event waits for its due time, attempts kept.
    const second = await setup({ store: first.store, clock: first.clock });
    second.flusher.start();
    await flush();
    expect(second.calls).toHaveLength(0);
    second.clock.advance(499);
    await flush();
    expect(second.calls).toHaveLength(0);
    second.clock.advance(1);
    await flush();
    expect(second.calls.map((c) => [c.event.id, c.event.attempts])).toEqual([['e1', 1]]);
    // A restarted flusher knows nothing of the endpoint: a failure counts once it answered normally again.
    await second.enqueue(1, undefined, 'x');
    second.flusher.poke();
    await flush();
    second.calls[1]?.answer('ok');
    await flush();
    second.calls[0]?.answer(500);
    await flush();
    // The second failure doubles the ceiling: 0.5 * 2000 ms.
    expect(second.retries[0]).toMatchObject({ attempts: 2, nextAttemptAt: 1_000_500 + 1_000 });
    await second.flusher.stop(0);
  });

  it('keeps per-endpoint and global limits', async () => {
    const t = await setup({ concurrency: 3, globalConcurrency: 5 });
    await t.enqueue(10, A, 'a');
    await t.enqueue(10, B, 'b');
    t.flusher.start();
    await flush();
    const inFlight = (url: string): number => t.calls.filter((c) => c.event.url === url).length;
    expect(t.calls).toHaveLength(5);
    expect(inFlight(A)).toBeLessThanOrEqual(3);
    expect(inFlight(B)).toBeLessThanOrEqual(3);
    expect(t.flusher.inFlight).toBe(5);
    let answered = 0;
    while (answered < t.calls.length) {
      t.calls[answered++]?.answer('ok');
      await flush();
      expect(t.flusher.inFlight).toBeLessThanOrEqual(5);
    }
    expect(t.delivered).toHaveLength(20);
    expect(t.store.stats().pending).toBe(0);
    await t.flusher.stop(0);
  });

  it('sends the next event while an outcome is being written, up to concurrency outcomes not yet durable', async () => {
    let openGate = (): void => {};
    class SlowDisk extends MemoryStore {
      readonly gate = new Promise<void>((resolve) => (openGate = resolve));
      override async settle(outcomes: Parameters<MemoryStore['settle']>[0]): Promise<void> {
        await this.gate;
        return super.settle(outcomes);
      }
    }
    const t = await setup({ concurrency: 2, store: new SlowDisk() });
    await t.enqueue(10);
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(2);
    t.calls[0]?.answer('ok');
    await flush();
    // The answered request's slot went to the next event although its outcome is not on disk yet.
    expect(t.calls).toHaveLength(3);
    expect(t.delivered).toEqual([]);
    t.calls[1]?.answer('ok');
    await flush();
    // Two outcomes (= concurrency) wait for the disk: nothing more is sent until one is written.
    expect(t.calls).toHaveLength(3);
    expect(t.flusher.endpoints()[A]).toMatchObject({ inFlight: 1, unsettled: 2 });
    openGate();
    await flush();
    expect(t.delivered).toEqual(['e0', 'e1']);
    expect(t.calls).toHaveLength(4);
    for (let i = 0; i < 20 && t.delivered.length < 10; i++) {
      for (const call of t.calls.filter((c) => !c.answered)) call.answer('ok');
      await flush();
    }
    expect(t.calls.map((c) => c.event.id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `e${i}`).sort());
    expect(t.store.stats().pending).toBe(0);
    await t.flusher.stop(0);
  });

  it('an open circuit stops claiming that endpoint only, and probes it once per probe time', async () => {
    const t = await setup({ concurrency: 1 });
    await t.enqueue(20, A, 'a');
    await t.enqueue(3, B, 'b');
    t.flusher.start();
    for (let i = 0; i < FAILURE_THRESHOLD; i++) {
      await flush();
      t.calls.find((c) => c.event.url === A && !c.answered)?.answer(500);
    }
    await flush();
    expect(t.circuits).toEqual([{ url: A, state: 'open', previous: 'closed' }]);
    // B goes on while A is open.
    for (let i = 0; i < 3; i++) {
      t.calls.find((c) => c.event.url === B && !c.answered)?.answer('ok');
      await flush();
    }
    expect(t.delivered.filter((id) => id.startsWith('b'))).toHaveLength(3);
    const aCalls = t.calls.filter((c) => c.event.url === A).length;
    expect(aCalls).toBe(FAILURE_THRESHOLD);
    // At the probe time exactly one request goes to A; its success closes the circuit.
    const probeAt = t.flusher.endpoints()[A]?.nextProbeAt as number;
    t.clock.advance(probeAt - t.clock.now());
    await flush();
    expect(t.calls.filter((c) => c.event.url === A)).toHaveLength(aCalls + 1);
    expect(t.flusher.endpoints()[A]?.circuit).toBe('half-open');
    t.calls.at(-1)?.answer('ok');
    await flush();
    expect(t.flusher.endpoints()[A]).toMatchObject({ circuit: 'closed', concurrency: 1 });
    // Failures while open did not count against the events.
    expect(t.retries.filter((r) => !r.counted).length).toBeGreaterThanOrEqual(1);
    await t.flusher.stop(0);
  });

  // Retry-After 0 (or an HTTP-date already past, which runAttempt reads as 0) asks for no wait: the same
  // backoff applies as without one (it was retried once per round trip, about 6,000 times).
  it.each([
    ['without Retry-After', undefined],
    ['with Retry-After: 0 or a past date', 0],
  ])('a receiver answering 429 %s for a minute gets a bounded number of requests, and loses and kills no event', async (_name, retryAfterMs) => {
    const t = await setup({ concurrency: 16, maxAttempts: 3 });
    await t.enqueue(300);
    t.flusher.start();
    await flush();
    // The receiver answers at once with 429; 10 ms of fake time per round, 60 s in all.
    for (let round = 0; round < 6_000; round++) {
      for (const call of t.calls.filter((c) => !c.answered)) call.answer(429, retryAfterMs);
      await flush();
      t.clock.advance(10);
    }
    // 16 + 8 + 4 + 2 + 1 while the limit halves, then one request per backoff pause (0.5 s, 1 s, 2 s ...
    // with random 0.5 and base 1 s, capped at 30 s): about 40. Before pauses: one per round, about 6,000.
    expect(t.calls.length).toBeLessThan(60);
    expect(t.dead).toEqual([]);
    expect(t.flusher.endpoints()[A]?.circuit).toBe('closed');
    // The receiver recovers: every event is delivered once, none of them dead.
    for (let round = 0; t.delivered.length < 300 && round < 20_000; round++) {
      for (const call of t.calls.filter((c) => !c.answered)) call.answer('ok');
      await flush();
      t.clock.advance(10);
    }
    expect(new Set(t.delivered).size).toBe(300);
    expect(t.dead).toEqual([]);
    await t.flusher.stop(0);
  });

  it('a new endpoint gets its events sent at once, however long the backlogs holding the global limit', async () => {
    const C = 'http://c.test/hook';
    const t = await setup({ concurrency: 2, globalConcurrency: 4 });
    await t.enqueue(40, A, 'a');
    await t.enqueue(40, B, 'b');
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(4);
    t.clock.advance(1_000);
    await t.enqueue(1, C, 'c');
    t.flusher.poke();
    await flush();
    // The next two slots that free up: one of them goes to C, whose event is newer than both backlogs.
    for (let i = 0; i < 2; i++) {
      t.calls.find((c) => !c.answered)?.answer('ok');
      await flush();
    }
    expect(t.calls.filter((c) => c.event.url === C)).toHaveLength(1);
    await t.flusher.stop(0);
  });

  it('endpoints competing for the global limit share it round-robin', async () => {
    const urls = ['a', 'b', 'c', 'd', 'e'].map((name) => `http://${name}.test/hook`);
    const t = await setup({ concurrency: 4, globalConcurrency: 4 });
    for (const url of urls) await t.enqueue(30, url, url);
    t.flusher.start();
    await flush();
    for (let i = 0; i < 60; i++) {
      t.calls.find((c) => !c.answered)?.answer('ok');
      await flush();
    }
    const sent = urls.map((url) => t.calls.filter((c) => c.event.url === url).length);
    // 64 requests over 5 endpoints: 12 or 13 each when shared; the first lanes took them all before.
    expect(Math.min(...sent)).toBeGreaterThanOrEqual(11);
    expect(t.delivered).toHaveLength(60);
    await t.flusher.stop(0);
  });

  it('with thousands of endpoints and every slot taken, claims once per batch, not once per answer', async () => {
    let claims = 0;
    class CountingStore extends MemoryStore {
      override claim(request: Parameters<MemoryStore['claim']>[0]): ReturnType<MemoryStore['claim']> {
        claims++;
        return super.claim(request);
      }
    }
    const t = await setup({ concurrency: 4, globalConcurrency: 16, store: new CountingStore() });
    for (let i = 0; i < 2_000; i++) await t.enqueue(1, `http://127.0.0.1:1/tenant/${i}`, `t${i}-`);
    t.flusher.start();
    await flush();
    for (let answered = 0; answered < 2_000; answered++) {
      t.calls.find((c) => !c.answered)?.answer('ok');
      if (answered % 16 === 15) await flush();
    }
    await flush();
    expect(t.delivered).toHaveLength(2_000);
    expect(t.store.stats().pending).toBe(0);
    // A claim after every answer made 2,000 claims; a batch of up to 256 refills 16 slots many times.
    expect(claims).toBeLessThan(100);
    await t.flusher.stop(0);
  });

  it('forgets an endpoint whose state is a new one\'s at once, and a lowered one after QUIET_LANE_MS', async () => {
    const t = await setup({ concurrency: 4 });
    await t.enqueue(1, A, 'a');
    await t.enqueue(2, B, 'b');
    t.flusher.start();
    await flush();
    for (const call of t.calls.filter((c) => c.event.url === A)) call.answer('ok');
    // A 429 halves B's limit (4 -> 2); B's events are then delivered while it grows back.
    t.calls.find((c) => c.event.url === B)?.answer(429);
    await flush();
    for (let i = 0; i < 10 && t.delivered.length < 3; i++) {
      t.clock.advance(1_000);
      t.flusher.poke();
      await flush();
      for (const call of t.calls.filter((c) => !c.answered)) call.answer('ok');
      await flush();
    }
    expect(t.delivered.sort()).toEqual(['a0', 'b0', 'b1']);
    t.flusher.poke();
    await flush();
    expect(Object.keys(t.flusher.endpoints())).toEqual([B]);
    expect(t.flusher.endpoints()[B]?.circuit).toBe('closed');
    expect(t.flusher.endpoints()[B]?.concurrency).toBeLessThan(4);
    t.clock.advance(QUIET_LANE_MS);
    t.flusher.poke();
    await flush();
    expect(t.flusher.endpoints()).toEqual({});
    // A forgotten endpoint starts like a new one.
    await t.enqueue(1, B, 'again');
    t.flusher.poke();
    await flush();
    expect(t.flusher.endpoints()[B]).toMatchObject({ circuit: 'closed', concurrency: 4, inFlight: 1 });
    await t.flusher.stop(0);
  });

  it('wakes up for the retry of an endpoint it forgot (its state at rest again after a later success)', async () => {
    const t = await setup({ concurrency: 2 });
    await t.enqueue(2);
    t.flusher.start();
    await flush();
    t.calls[0]?.answer(500);
    await flush();
    t.calls[1]?.answer('ok');
    await flush();
    expect(t.flusher.endpoints()).toEqual({});
    expect(t.retries).toEqual([expect.objectContaining({ id: 'e0', nextAttemptAt: 1_000_500 })]);
    t.clock.advance(500);
    await flush();
    expect(t.calls.map((c) => c.event.id)).toEqual(['e0', 'e1', 'e0']);
    t.calls[2]?.answer('ok');
    await flush();
    expect(t.delivered.sort()).toEqual(['e0', 'e1']);
    await t.flusher.stop(0);
  });

  it('stop abandons in-flight requests after its timeout and leaves them pending', async () => {
    const t = await setup();
    await t.enqueue(2);
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(2);
    const stopped = t.flusher.stop(1_000);
    t.clock.advance(1_000);
    await stopped;
    expect(t.store.stats()).toMatchObject({ pending: 2, claimed: 0 });
    t.calls[0]?.answer('ok');
    await flush();
    expect(t.delivered).toEqual([]);
    expect(t.store.stats().pending).toBe(2);
  });
});
