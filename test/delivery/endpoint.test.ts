import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { EndpointState, PLATEAU_FACTOR } from '../../src/delivery/endpoint.js';
import type { CircuitState, EndpointPolicy, EndpointSignal, EndpointTicket, FailureVerdict } from '../../src/delivery/endpoint.js';

const OK: EndpointSignal = { ok: true, endpointFailure: false, congestion: false };
const REFUSED: EndpointSignal = { ok: false, endpointFailure: true, congestion: false };
const UNAVAILABLE: EndpointSignal = { ok: false, endpointFailure: true, congestion: true };
const THROTTLED: EndpointSignal = { ok: false, endpointFailure: false, congestion: true };
const REJECTED: EndpointSignal = { ok: true, endpointFailure: false, congestion: false };

function setup(overrides: Partial<EndpointPolicy> = {}) {
  const clock = new FakeClock(0);
  const transitions: string[] = [];
  const policy: EndpointPolicy = {
    maxConcurrency: 16,
    failureThreshold: 3,
    recoveryConcurrency: 1,
    probeDelayMs: (n) => 100 * 2 ** n,
    maxRetryAfterMs: 5_000,
    ...overrides,
  };
  const endpoint = new EndpointState(policy, clock, (next: CircuitState, previous: CircuitState) =>
    transitions.push(`${previous}->${next}`),
  );
  return { clock, endpoint, transitions };
}

/** Records an answer, then its outcome as durable, as the flusher does. */
function finish(endpoint: EndpointState, ticket: EndpointTicket, signal: EndpointSignal): FailureVerdict {
  const verdict = endpoint.record(ticket, signal);
  endpoint.settled();
  return verdict;
}

/** One request, start to finish. */
function roundTrip(endpoint: EndpointState, signal: EndpointSignal): FailureVerdict {
  return finish(endpoint, endpoint.acquire(), signal);
}

describe('EndpointState circuit', () => {
  it('starts closed at full concurrency', () => {
    const { endpoint } = setup();
    expect(endpoint.circuit).toBe('closed');
    expect(endpoint.room()).toBe(16);
    expect(endpoint.wakeAt()).toBeUndefined();
  });

  it('opens after the threshold of consecutive failures and stops handing out slots', () => {
    const { clock, endpoint, transitions } = setup();
    // Not the event's attempts: the endpoint has not answered normally yet.
    expect(roundTrip(endpoint, REFUSED)).toBe('endpoint');
    expect(roundTrip(endpoint, REFUSED)).toBe('endpoint');
    expect(endpoint.circuit).toBe('closed');
    expect(roundTrip(endpoint, REFUSED)).toBe('held');
    expect(endpoint.circuit).toBe('open');
    expect(transitions).toEqual(['closed->open']);
    expect(endpoint.room()).toBe(0);
    expect(endpoint.wakeAt()).toBe(clock.now() + 100);
  });

  it("a failure is the event's attempt once the endpoint answered normally, until its circuit opens again", () => {
    const { clock, endpoint } = setup();
    expect(roundTrip(endpoint, REFUSED)).toBe('endpoint');
    roundTrip(endpoint, REJECTED); // a 400 shows the endpoint is up as well as a 2xx
    expect(roundTrip(endpoint, REFUSED)).toBe('attempt');
    expect(roundTrip(endpoint, UNAVAILABLE)).toBe('attempt');
    expect(roundTrip(endpoint, REFUSED)).toBe('held'); // the third in a row opens the circuit
    clock.advance(100);
    expect(roundTrip(endpoint, THROTTLED)).toBe('held'); // a probe answered 429 closes it: up, but busy
    expect(endpoint.circuit).toBe('closed');
    expect(roundTrip(endpoint, REFUSED)).toBe('endpoint'); // not shown to be up since it was down
    roundTrip(endpoint, OK);
    expect(roundTrip(endpoint, REFUSED)).toBe('attempt');
  });

  it('a failure of a request sent before the circuit opened is not counted after it closed again', () => {
    const { clock, endpoint } = setup();
    roundTrip(endpoint, OK);
    const late = endpoint.acquire();
    for (let i = 0; i < 3; i++) roundTrip(endpoint, REFUSED);
    expect(endpoint.circuit).toBe('open');
    clock.advance(100);
    expect(roundTrip(endpoint, OK)).toBe('held'); // the probe: closed again
    expect(finish(endpoint, late, REFUSED)).toBe('held');
    expect(endpoint.snapshot().consecutiveFailures).toBe(0);
    expect(roundTrip(endpoint, REFUSED)).toBe('attempt');
  });

  it('probes answered 429 between reopenings do not start the probe delays over', () => {
    const { clock, endpoint } = setup();
    const delays: number[] = [];
    for (let cycle = 0; cycle < 3; cycle++) {
      for (let i = 0; i < 3; i++) roundTrip(endpoint, UNAVAILABLE);
      expect(endpoint.circuit).toBe('open');
      const wake = endpoint.wakeAt() as number;
      delays.push(wake - clock.now());
      clock.advance(wake - clock.now());
      roundTrip(endpoint, THROTTLED);
      expect(endpoint.circuit).toBe('closed');
    }
    expect(delays).toEqual([100, 200, 400]);
  });

  it('a success in between resets the failure count', () => {
    const { endpoint } = setup();
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, OK);
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, REFUSED);
    expect(endpoint.circuit).toBe('closed');
    roundTrip(endpoint, REFUSED);
    expect(endpoint.circuit).toBe('open');
  });

  it('a permanent rejection (4xx) shows the endpoint is up', () => {
    const { endpoint } = setup();
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, REJECTED);
    roundTrip(endpoint, REFUSED);
    expect(endpoint.circuit).toBe('closed');
  });

  it('turns half-open at the probe time and allows exactly one probe', () => {
    const { clock, endpoint, transitions } = setup();
    for (let i = 0; i < 3; i++) roundTrip(endpoint, REFUSED);
    clock.advance(99);
    expect(endpoint.room()).toBe(0);
    clock.advance(1);
    expect(endpoint.circuit).toBe('half-open');
    expect(endpoint.room()).toBe(1);
    const probe = endpoint.acquire();
    expect(probe.probe).toBe(true);
    expect(endpoint.room()).toBe(0);
    expect(transitions).toEqual(['closed->open', 'open->half-open']);
    expect(finish(endpoint, probe, OK)).toBe('held');
    expect(endpoint.circuit).toBe('closed');
    expect(transitions).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
  });

  it('a failed probe reopens with the next, longer probe delay', () => {
    const { clock, endpoint, transitions } = setup();
    for (let i = 0; i < 3; i++) roundTrip(endpoint, REFUSED);
    clock.advance(100);
    expect(roundTrip(endpoint, REFUSED)).toBe('held');
    expect(endpoint.circuit).toBe('open');
    expect(endpoint.wakeAt()).toBe(clock.now() + 200);
    clock.advance(200);
    roundTrip(endpoint, UNAVAILABLE);
    expect(endpoint.wakeAt()).toBe(clock.now() + 400);
    expect(transitions).toEqual([
      'closed->open',
      'open->half-open',
      'half-open->open',
      'open->half-open',
      'half-open->open',
    ]);
  });

  it('an answer frees its request slot; outcomes not yet durable stay below maxConcurrency', () => {
    const { endpoint } = setup({ maxConcurrency: 2 });
    const first = endpoint.acquire();
    const second = endpoint.acquire();
    expect(endpoint.room()).toBe(0);
    endpoint.record(first, OK);
    expect(endpoint).toMatchObject({ inFlight: 1, unsettled: 1 });
    expect(endpoint.room()).toBe(1);
    endpoint.record(second, OK);
    // Two answers whose outcomes are not on disk yet: nothing more goes out until one is, so a crash
    // could repeat at most 2 (answered) + 1 (in flight) < 2 x maxConcurrency requests.
    expect(endpoint).toMatchObject({ inFlight: 0, unsettled: 2 });
    expect(endpoint.room()).toBe(0);
    endpoint.settled();
    expect(endpoint.room()).toBe(1);
    endpoint.settled();
    expect(endpoint.room()).toBe(2);
  });

  it('a probe abandoned without an outcome lets another probe go', () => {
    const { clock, endpoint } = setup();
    for (let i = 0; i < 3; i++) roundTrip(endpoint, REFUSED);
    clock.advance(100);
    const probe = endpoint.acquire();
    expect(endpoint.room()).toBe(0);
    endpoint.release(probe);
    expect(endpoint.circuit).toBe('half-open');
    expect(endpoint.room()).toBe(1);
  });

  it('failures of requests sent before the circuit opened do not count against their events', () => {
    const { endpoint } = setup();
    roundTrip(endpoint, OK);
    const inFlight = Array.from({ length: 5 }, () => endpoint.acquire());
    const counted = inFlight.map((ticket) => finish(endpoint, ticket, REFUSED));
    expect(counted).toEqual(['attempt', 'attempt', 'held', 'held', 'held']);
    expect(endpoint.circuit).toBe('open');
    expect(endpoint.inFlight).toBe(0);
  });

  it('Retry-After on the failure that opens the circuit delays the first probe (bounded)', () => {
    const { clock, endpoint } = setup();
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, { ...UNAVAILABLE, retryAfterMs: 60_000 });
    expect(endpoint.wakeAt()).toBe(clock.now() + 5_000);
  });
});

describe('EndpointState slow start (AIMD)', () => {
  function recover(endpoint: EndpointState, clock: FakeClock): void {
    for (let i = 0; i < 3; i++) roundTrip(endpoint, REFUSED);
    clock.advance(100);
    roundTrip(endpoint, OK);
  }

  /** Runs full windows of healthy requests; returns the limit seen at the start of each window. */
  function healthyWindows(endpoint: EndpointState, windows: number): number[] {
    const seen: number[] = [];
    for (let w = 0; w < windows; w++) {
      const room = endpoint.room();
      seen.push(room);
      const tickets = Array.from({ length: room }, () => endpoint.acquire());
      for (const ticket of tickets) finish(endpoint, ticket, OK);
    }
    return seen;
  }

  it('restarts at the recovery concurrency and grows by one per healthy window', () => {
    const { clock, endpoint } = setup();
    recover(endpoint, clock);
    expect(endpoint.room()).toBe(1);
    expect(healthyWindows(endpoint, 18)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 16]);
  });

  it('does not grow while the window is not used', () => {
    const { clock, endpoint } = setup();
    recover(endpoint, clock);
    roundTrip(endpoint, OK);
    expect(endpoint.room()).toBe(2);
    for (let i = 0; i < 20; i++) roundTrip(endpoint, OK);
    expect(endpoint.room()).toBe(2);
  });

  it('halves once per burst of congestion signals', () => {
    const { clock, endpoint } = setup();
    recover(endpoint, clock);
    healthyWindows(endpoint, 9);
    expect(endpoint.room()).toBe(10);
    const tickets = Array.from({ length: 10 }, () => endpoint.acquire());
    for (const ticket of tickets) finish(endpoint, ticket, THROTTLED);
    expect(endpoint.room()).toBe(5);
    expect(endpoint.circuit).toBe('closed');
    roundTrip(endpoint, THROTTLED);
    expect(endpoint.room()).toBe(2);
    roundTrip(endpoint, THROTTLED);
    expect(endpoint.room()).toBe(1);
    roundTrip(endpoint, THROTTLED);
    expect(endpoint.limit).toBe(1);
  });

  it('answers to requests sent before a decrease do not grow the limit back', () => {
    const { clock, endpoint } = setup();
    recover(endpoint, clock);
    healthyWindows(endpoint, 9);
    const tickets = Array.from({ length: 10 }, () => endpoint.acquire());
    finish(endpoint, tickets[0] as EndpointTicket, THROTTLED);
    for (const ticket of tickets.slice(1)) finish(endpoint, ticket, OK);
    expect(endpoint.room()).toBe(5);
  });

  it('climbs back fast to the last good level, waits there, then probes the congested level and grows past it', () => {
    const { clock, endpoint } = setup();
    recover(endpoint, clock);
    healthyWindows(endpoint, 4);
    expect(endpoint.room()).toBe(5);
    const tickets = Array.from({ length: 5 }, () => endpoint.acquire());
    for (const ticket of tickets) finish(endpoint, ticket, THROTTLED);
    expect(endpoint.room()).toBe(2);
    // 2 -> 4 (one more per answer, up to one below the congested level) in one window; 4 -> 5 (the
    // congested level) takes PLATEAU_FACTOR windows; past it, one per window again.
    const seen = healthyWindows(endpoint, 1 + PLATEAU_FACTOR + 3);
    expect(seen).toEqual([2, ...Array<number>(PLATEAU_FACTOR).fill(4), 5, 6, 7]);
  });

  it('Retry-After pauses the endpoint until then, bounded by maxRetryAfterMs', () => {
    const { clock, endpoint } = setup();
    roundTrip(endpoint, { ...THROTTLED, retryAfterMs: 2_000 });
    expect(endpoint.room()).toBe(0);
    expect(endpoint.wakeAt()).toBe(2_000);
    clock.advance(2_000);
    expect(endpoint.room()).toBe(8);
    roundTrip(endpoint, { ...THROTTLED, retryAfterMs: 3_600_000 });
    expect(endpoint.wakeAt()).toBe(clock.now() + 5_000);
    expect(endpoint.snapshot()).toMatchObject({ circuit: 'closed', concurrency: 4, pausedUntil: clock.now() + 5_000 });
  });

  it('never exceeds the configured concurrency, nor goes below one', () => {
    const { clock, endpoint } = setup({ maxConcurrency: 3, recoveryConcurrency: 2 });
    recover(endpoint, clock);
    expect(endpoint.room()).toBe(2);
    expect(healthyWindows(endpoint, 5)).toEqual([2, 3, 3, 3, 3]);
    for (let i = 0; i < 5; i++) roundTrip(endpoint, THROTTLED);
    expect(endpoint.limit).toBe(1);
  });

  it('429s at one request at a time pause the endpoint for a growing backoff, and are not the events\' attempts', () => {
    const { clock, endpoint } = setup({ maxConcurrency: 2 });
    expect(roundTrip(endpoint, THROTTLED)).toBe('endpoint');
    expect(endpoint.limit).toBe(1);
    const pauses: number[] = [];
    for (let i = 0; i < 4; i++) {
      expect(roundTrip(endpoint, THROTTLED)).toBe('held');
      expect(endpoint.room()).toBe(0);
      const wake = endpoint.wakeAt() as number;
      pauses.push(wake - clock.now());
      clock.advance(wake - clock.now() - 1);
      expect(endpoint.room()).toBe(0);
      clock.advance(1);
      expect(endpoint.room()).toBe(1);
    }
    expect(pauses).toEqual([100, 200, 400, 800]);
    expect(endpoint.circuit).toBe('closed');
    // A Retry-After is the receiver's own pause: it replaces the backoff step.
    expect(roundTrip(endpoint, { ...THROTTLED, retryAfterMs: 50 })).toBe('held');
    expect(endpoint.wakeAt()).toBe(clock.now() + 50);
    clock.advance(50);
    // A healthy answer grows the limit again and starts the schedule over.
    roundTrip(endpoint, OK);
    expect(endpoint.limit).toBe(2);
    expect(roundTrip(endpoint, THROTTLED)).toBe('attempt');
    expect(endpoint.wakeAt()).toBeUndefined();
    roundTrip(endpoint, THROTTLED);
    expect(endpoint.wakeAt()).toBe(clock.now() + 100);
  });

  it('an open circuit sends its probe no earlier than the end of a Retry-After pause asked for before', () => {
    const { clock, endpoint } = setup({ failureThreshold: 2 });
    const tickets = [endpoint.acquire(), endpoint.acquire(), endpoint.acquire()];
    finish(endpoint, tickets[0] as EndpointTicket, { ...THROTTLED, retryAfterMs: 4_000 });
    finish(endpoint, tickets[1] as EndpointTicket, REFUSED);
    finish(endpoint, tickets[2] as EndpointTicket, REFUSED);
    expect(endpoint.circuit).toBe('open');
    // The probe delay alone would be 100 ms.
    expect(endpoint.wakeAt()).toBe(4_000);
    clock.advance(3_999);
    expect(endpoint.room()).toBe(0);
    clock.advance(1);
    expect(endpoint.circuit).toBe('half-open');
    expect(endpoint.room()).toBe(1);
  });

  it('a 429 between failures neither resets nor adds to the count that opens the circuit', () => {
    const { endpoint } = setup();
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, REFUSED);
    roundTrip(endpoint, THROTTLED);
    expect(endpoint.snapshot().consecutiveFailures).toBe(2);
    roundTrip(endpoint, REFUSED);
    expect(endpoint.circuit).toBe('open');
  });
});

describe('EndpointState rate limit', () => {
  it('lets a second’s worth start at once, then one per 1/rate, and wakes when the next may start', () => {
    const { clock, endpoint } = setup({ ratePerSecond: 4 });
    expect(endpoint.room()).toBe(4);
    for (let i = 0; i < 4; i++) roundTrip(endpoint, OK);
    expect(endpoint.room()).toBe(0);
    expect(endpoint.wakeAt()).toBe(250);
    expect(endpoint.atRest()).toBe(false);
    clock.advance(249);
    expect(endpoint.room()).toBe(0);
    clock.advance(1);
    expect(endpoint.room()).toBe(1);
    roundTrip(endpoint, OK);
    expect(endpoint.wakeAt()).toBe(500);
    // Unused time refills up to one second's worth, no more: a quiet endpoint does not save up a flood.
    clock.advance(10_000);
    expect(endpoint.room()).toBe(4);
    expect(endpoint.wakeAt()).toBeUndefined();
    expect(endpoint.atRest()).toBe(true);
  });

  it('below one per second, starts one at a time, one every 1/rate seconds; the concurrency limit still applies', () => {
    const slow = setup({ ratePerSecond: 0.5 });
    expect(slow.endpoint.room()).toBe(1);
    slow.endpoint.acquire();
    expect(slow.endpoint.wakeAt()).toBe(2_000);
    slow.clock.advance(2_000);
    expect(slow.endpoint.room()).toBe(1);

    const narrow = setup({ ratePerSecond: 100, maxConcurrency: 2 });
    expect(narrow.endpoint.room()).toBe(2);
    narrow.endpoint.acquire();
    narrow.endpoint.acquire();
    expect(narrow.endpoint.room()).toBe(0);
    // Full because of concurrency, not the rate: only an answer frees it.
    expect(narrow.endpoint.wakeAt()).toBeUndefined();
  });

  it('a paused endpoint wakes when both the pause and the rate allow', () => {
    const { clock, endpoint } = setup({ ratePerSecond: 1 });
    finish(endpoint, endpoint.acquire(), { ...THROTTLED, retryAfterMs: 300 });
    expect(endpoint.wakeAt()).toBe(1_000);
    clock.advance(1_000);
    expect(endpoint.room()).toBeGreaterThan(0);
  });
});
