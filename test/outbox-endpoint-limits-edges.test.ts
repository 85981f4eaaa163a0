/**
 * endpointLimits at its edges: probes, pauses, ordering keys, the global limit, clock steps, rounding, and
 * how often the function is asked (from the review of e615b9b).
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { EndpointState } from '../src/delivery/endpoint.js';
import type { EndpointPolicy } from '../src/delivery/endpoint.js';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import type { TransportRequest, TransportResponse } from '../src/transport/transport.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { closedAfterEach, timedTransport } from './outbox-helpers.js';

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

function endpoint(overrides: Partial<EndpointPolicy>) {
  const clock = new FakeClock(0);
  const policy: EndpointPolicy = { maxConcurrency: 16, failureThreshold: 3, recoveryConcurrency: 1, probeDelayMs: () => 100, maxRetryAfterMs: 5_000, ...overrides };
  return { clock, state: new EndpointState(policy, clock) };
}

const FAIL = { ok: false, endpointFailure: true, congestion: false };

describe('EndpointState bucket with the circuit', () => {
  it('the half-open probe waits for a token, and wakeAt says when', () => {
    const { clock, state } = endpoint({ ratePerSecond: 0.5 });
    for (let i = 0; i < 3; i++) {
      clock.advance(2_000);
      expect(state.room()).toBe(1);
      const ticket = state.acquire();
      state.record(ticket, FAIL);
      state.settled();
    }
    expect(state.circuit).toBe('open');
    expect(state.wakeAt()).toBe(clock.now() + 100);
    clock.advance(100);
    expect(state.circuit).toBe('half-open');
    expect(state.room()).toBe(0); // the last request took the token 100 ms ago
    expect(state.wakeAt()).toBe(clock.now() + 1_900);
    clock.advance(1_900);
    expect(state.room()).toBe(1);
    state.acquire();
    expect(state.room()).toBe(0);
  });

  it('a lane is at rest (may be forgotten) only with a full bucket', () => {
    const { clock, state } = endpoint({ ratePerSecond: 4 });
    state.record(state.acquire(), { ok: true, endpointFailure: false, congestion: false });
    state.settled();
    expect(state.atRest()).toBe(false);
    clock.advance(249);
    expect(state.atRest()).toBe(false);
    clock.advance(1);
    expect(state.atRest()).toBe(true);
  });
});

describe('endpointLimits in the outbox (FakeClock)', () => {
  const opened = closedAfterEach();

  it('a rate-limited endpoint starts its next request when its token comes, while another endpoint hangs (no unrelated wake needed), without busy claims', async () => {
    const clock = new FakeClock(1_000_000);
    const started: { url: string; at: number }[] = [];
    const slow = 'http://slow.test/in';
    const stuck = 'http://stuck.test/in';
    const hanging: (() => void)[] = [];
    const send = (request: TransportRequest): Promise<TransportResponse> => {
      started.push({ url: request.url, at: clock.now() });
      if (request.url === stuck) return new Promise((resolve) => hanging.push(() => resolve({ status: 200, headers: {}, bodyExcerpt: '' })));
      return Promise.resolve({ status: 200, headers: {}, bodyExcerpt: '' });
    };
    const store = new MemoryStore();
    let claims = 0;
    const claim = store.claim.bind(store);
    store.claim = (request) => {
      claims++;
      return claim(request);
    };
    const box = (opened.outbox = await Outbox.open({ store, transport: { send }, clock, endpointLimits: (url) => (url === slow ? { ratePerSecond: 1 } : undefined) }));
    await Promise.all([...Array.from({ length: 5 }, (_, n) => box.enqueue({ url: slow, body: n })), box.enqueue({ url: stuck, body: 'x' })]);
    await settle();
    const t0 = 1_000_000;
    expect(started.filter((s) => s.url === slow).map((s) => s.at - t0)).toEqual([0]);
    const before = claims;
    for (let second = 1; second <= 4; second++) {
      clock.advance(1_000);
      await settle();
    }
    expect(started.filter((s) => s.url === slow).map((s) => s.at - t0)).toEqual([0, 1_000, 2_000, 3_000, 4_000]);
    // A few claims per request (the wake, the answer's top-up), not a loop.
    expect(claims - before).toBeLessThanOrEqual(4 * 4);
    // Time standing still: nothing more happens.
    const frozen = claims;
    await settle();
    await settle();
    expect(claims).toBe(frozen);
    for (const release of hanging) release();
    await box.drain({ timeoutMs: 1_000 });
  });

  it('a Retry-After pause and the rate together: the next request waits for both', async () => {
    const clock = new FakeClock(1_000_000);
    const startedAt: number[] = [];
    let n = 0;
    const send = (): Promise<TransportResponse> => {
      startedAt.push(clock.now());
      return Promise.resolve(n++ === 0 ? { status: 503, headers: { 'retry-after': '3' }, bodyExcerpt: '' } : { status: 200, headers: {}, bodyExcerpt: '' });
    };
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://r.test/in', transport: { send }, clock, retry: { baseDelayMs: 1, maxDelayMs: 1 }, endpointLimits: () => ({ ratePerSecond: 0.5 }) }));
    await box.enqueue({ body: 1 });
    await settle();
    for (let ms = 0; ms < 5_000 && startedAt.length < 2; ms += 100) {
      clock.advance(100);
      await settle();
    }
    expect((startedAt[1] ?? 0) - (startedAt[0] ?? 0)).toBe(3_000);
  });

  it('ordering keys and globalConcurrency 1: a keyed backlog goes at the rate, and an unlimited endpoint is not held up while the limited one waits for tokens', async () => {
    const clock = new FakeClock(1_000_000);
    const started: { url: string; at: number }[] = [];
    const send = (request: TransportRequest): Promise<TransportResponse> => {
      started.push({ url: request.url, at: clock.now() - 1_000_000 });
      return Promise.resolve({ status: 200, headers: {}, bodyExcerpt: '' });
    };
    const limited = 'http://limited.test/in';
    const free = 'http://free.test/in';
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      transport: { send },
      clock,
      globalConcurrency: 1,
      endpointLimits: (url) => (url === limited ? { ratePerSecond: 1 } : undefined),
    }));
    for (let n = 0; n < 3; n++) await box.enqueue({ url: limited, body: n, orderingKey: 'k' });
    await settle();
    for (let n = 0; n < 3; n++) await box.enqueue({ url: free, body: n });
    await settle();
    expect(started.filter((s) => s.url === free)).toHaveLength(3);
    for (let second = 1; second <= 2; second++) {
      clock.advance(1_000);
      await settle();
    }
    expect(started.filter((s) => s.url === limited).map((s) => s.at)).toEqual([0, 1_000, 2_000]);
  });
});

const EPOCH = 1_700_000_000_000;

function endpointAt(start: number, overrides: Partial<EndpointPolicy>) {
  const clock = new FakeClock(start);
  const policy: EndpointPolicy = { maxConcurrency: 16, failureThreshold: 3, recoveryConcurrency: 1, probeDelayMs: () => 100, maxRetryAfterMs: 5_000, ...overrides };
  return { clock, endpoint: new EndpointState(policy, clock) };
}


describe('endpointLimits token bucket: arithmetic', () => {
  it('a system clock stepped back (NTP, VM restore) does not empty the bucket and stall the endpoint', () => {
    const { clock, endpoint } = endpointAt(EPOCH, { ratePerSecond: 10 });
    expect(endpoint.room()).toBe(10);
    // Date.now() jumps one hour back. Nothing was sent meanwhile: the bucket should still let requests start.
    clock.advance(-3_600_000);
    expect(endpoint.room()).toBeGreaterThan(0);
    // Even a second later (a full refill at 10/s) it is still empty: the step cost an hour of tokens (36,000).
    clock.advance(1_000);
    expect(endpoint.room()).toBe(10);
  });

  it('at 1 request/s, a request may start exactly 1 s after the previous one, whatever moments room() was asked at', () => {
    const { clock, endpoint } = endpointAt(EPOCH, { ratePerSecond: 1 });
    endpoint.acquire();
    clock.advance(30);
    endpoint.room(); // the flusher asks at any moment: an enqueue, another lane's answer...
    clock.advance(282);
    endpoint.room();
    clock.advance(688); // 1000 ms after the start
    // 0.03 + 0.282 + 0.688 = 0.9999999999999999 in floating point: floor() says no token.
    expect(endpoint.room()).toBe(1);
  });

  it('when the rate alone holds an endpoint back, wakeAt() is in the future (else the flusher waits RECHECK_MS = 250 ms)', () => {
    const { clock, endpoint } = endpointAt(EPOCH, { ratePerSecond: 1 });
    endpoint.acquire();
    clock.advance(30);
    endpoint.room();
    clock.advance(282);
    endpoint.room();
    clock.advance(688);
    if (endpoint.room() === 0) {
      const wake = endpoint.wakeAt();
      // The shortfall (1e-16 tokens = 1e-13 ms) is below the resolution of an epoch-ms double: wakeAt() === now.
      expect(wake).toBeGreaterThan(clock.now());
    }
  });
});

describe('endpointLimits in the outbox', () => {
  const opened = closedAfterEach();

  it('at 1 request/s the second request starts 1 s after the first, not 1.25 s (FakeClock, epoch-ms times)', async () => {
    const clock = new FakeClock(EPOCH);
    const { transport, startedAt } = timedTransport(clock);
    const url = 'http://hooks.test/in';
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url, transport, clock, endpointLimits: () => ({ ratePerSecond: 1 }) }));
    const t0 = clock.now();
    await box.enqueue({ body: 1 });
    await settle();
    expect(startedAt).toEqual([t0]);
    // Two more events arrive at +30 ms and +312 ms: each enqueue makes the flusher look at the lane.
    clock.advance(30);
    await box.enqueue({ body: 2 });
    await settle();
    clock.advance(282);
    await box.enqueue({ body: 3 });
    await settle();
    // Walk the clock forward a millisecond at a time until the second request starts.
    for (let ms = 312; ms < 1_400 && startedAt.length < 2; ms++) {
      clock.advance(1);
      await settle();
    }
    expect((startedAt[1] ?? Infinity) - t0).toBeLessThanOrEqual(1_001);
  });

  it('asks endpointLimits when the outbox starts sending to a URL, and again only after 10 quiet minutes (docs/04)', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const asked: string[] = [];
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      endpointLimits: (url) => {
        asked.push(url);
        return { concurrency: 2 };
      },
    }));
    // A trickle: each event is delivered before the next arrives (seconds apart at most, not 10 minutes).
    for (let n = 0; n < 5; n++) {
      await box.enqueue({ body: { n } });
      await box.drain({ timeoutMs: 5_000 });
    }
    expect(rx.requests).toHaveLength(5);
    expect(asked).toEqual([rx.url]);
  });

  it('a throwing endpointLimits reports one error, not one per event of a trickle', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      endpointLimits: () => {
        throw new Error('customer table is down');
      },
    }));
    const errors: unknown[] = [];
    box.on('error', (error) => errors.push(error));
    for (let n = 0; n < 5; n++) {
      await box.enqueue({ body: { n } });
      await box.drain({ timeoutMs: 5_000 });
    }
    expect(rx.requests).toHaveLength(5);
    expect(errors).toHaveLength(1);
  });
});
