/**
 * Per-endpoint delivery state: a circuit breaker (closed -> open -> half-open) and an adaptive concurrency
 * limit (AIMD). Pure: no I/O, time comes from the injected clock, transitions are reported to a callback.
 */
import type { Clock } from '../clock.js';

/** Circuit state of an endpoint. `open`: nothing is sent; `half-open`: one probe at a time. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** How an endpoint reacts to outcomes. Built by the flusher from the outbox options. */
export interface EndpointPolicy {
  /** Upper bound of the concurrency limit (the `concurrency` option). */
  maxConcurrency: number;
  /** Consecutive endpoint failures (refused, reset, timeout, 5xx) that open the circuit. */
  failureThreshold: number;
  /** Concurrency limit right after the circuit closes: the start of the slow start. */
  recoveryConcurrency: number;
  /** Delay before the `n`-th probe of an open circuit (0-based), e.g. the retry backoff. */
  probeDelayMs(n: number): number;
  /** Upper bound of a Retry-After pause. */
  maxRetryAfterMs: number;
  /**
   * Most requests started per second, in bursts of up to a second's worth (at least one), or `undefined`
   * for no rate limit.
   */
  ratePerSecond?: number | undefined;
}

/** What one attempt said about the endpoint (derived from the attempt result by the flusher). */
export interface EndpointSignal {
  /** The endpoint answered normally: 2xx, or a permanent status that shows it is up (400, 410, 422...). */
  ok: boolean;
  /** A failure of the endpoint rather than of the event: network error, timeout, 5xx. */
  endpointFailure: boolean;
  /** A sign of overload (429, 502, 503, 504, timeout): halves the concurrency limit. */
  congestion: boolean;
  /** The receiver asked to wait this long (Retry-After), before bounding. */
  retryAfterMs?: number | undefined;
}

/**
 * A slot taken by {@link EndpointState.acquire}: `record()` the answer (which frees the request slot but
 * keeps the outcome counted as unsettled), then `settled()` once the outcome is written; or `release()`
 * it when the request is abandoned without an answer.
 */
export interface EndpointTicket {
  /** Decrease epoch when the request was sent: one burst of failures halves the limit only once. */
  readonly epoch: number;
  /** Times the circuit had opened when the request was sent: a failure from before the last opening is stale. */
  readonly openings: number;
  /** Window fills counted before this request: a success grows the limit only if the window filled since. */
  readonly fills: number;
  /** This request is the half-open probe. */
  readonly probe: boolean;
}

/** A snapshot of an endpoint's state, for `stats()`. */
export interface EndpointSnapshot {
  circuit: CircuitState;
  /** Current concurrency limit (whole requests). */
  concurrency: number;
  inFlight: number;
  /** Answered requests whose outcome is not durable yet. */
  unsettled: number;
  consecutiveFailures: number;
  /** When an open circuit sends its next probe (ms since epoch). */
  nextProbeAt: number | undefined;
  /** Retry-After pause end (ms since epoch), while it lasts. */
  pausedUntil: number | undefined;
}

/**
 * Growth slows down by this factor when the limit is about to reach the level where it last met
 * congestion: a receiver at its capacity sees an occasional request above it, not one every few windows.
 */
export const PLATEAU_FACTOR = 8;

/**
 * What a failed attempt means for its event (see {@link EndpointState.record}):
 * - `'attempt'`: one of its attempts (towards `maxAttempts`); it waits the next step of its backoff;
 * - `'endpoint'`: the endpoint's failure, not the event's, because the endpoint has not answered normally
 *   since it was last down (or since this state was made, e.g. at a restart): not counted, and the event
 *   waits the step of the backoff it is at;
 * - `'held'`: not counted, and the endpoint holds the event (its circuit is open, or it pauses after a
 *   429); also a failure of a request sent before the circuit last opened, or of a probe.
 */
export type FailureVerdict = 'attempt' | 'endpoint' | 'held';

/** Called on every circuit transition. */
export type CircuitListener = (state: CircuitState, previous: CircuitState) => void;

/** The delivery state of one endpoint URL. */
export class EndpointState {
  readonly #policy: EndpointPolicy;
  readonly #clock: Clock;
  readonly #onCircuit: CircuitListener;
  #circuit: CircuitState = 'closed';
  #limit: number;
  #inFlight = 0;
  #unsettled = 0;
  #probeInFlight = false;
  #consecutiveFailures = 0;
  /** 429s answered in a row at a limit of one request: each pauses the endpoint for a longer backoff. */
  #throttles = 0;
  #probes = 0;
  /** Times the circuit opened; a ticket remembers the count it was taken at. */
  #openings = 0;
  /** The endpoint answered normally (2xx or a permanent status) since its circuit last opened, or ever. */
  #up = false;
  #nextProbeAt = 0;
  #pausedUntil = 0;
  #epoch = 0;
  #fills = 0;
  #credit = 0;
  #ceiling = Infinity;
  /** Requests the rate limit lets start now (fractional while refilling), as of `#tokensAt`. */
  #tokens: number;
  #tokensAt: number;

  /**
   * `up`: the endpoint answered normally since it was last down, as a forgotten state of it knew (see
   * {@link EndpointState.up}).
   */
  constructor(policy: EndpointPolicy, clock: Clock, onCircuit: CircuitListener = () => {}, up = false) {
    this.#policy = policy;
    this.#clock = clock;
    this.#onCircuit = onCircuit;
    this.#up = up;
    // An endpoint nobody has seen fail yet gets the configured concurrency; slow start follows an outage.
    this.#limit = policy.maxConcurrency;
    this.#tokens = this.#burst();
    this.#tokensAt = clock.now();
  }

  /** The circuit state now (an open circuit whose probe time has come turns half-open). */
  get circuit(): CircuitState {
    this.#tick();
    return this.#circuit;
  }

  /**
   * The endpoint answered normally (2xx or a permanent status) since its circuit last opened, or since this
   * state was made: its failures are the events' own attempts.
   */
  get up(): boolean {
    return this.#up;
  }

  /** Requests in flight (sent, not answered yet). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The adaptive concurrency limit now (whole requests; it applies while the circuit is closed). */
  get limit(): number {
    return this.#limit;
  }

  /** Answered requests whose outcome is not durable yet. */
  get unsettled(): number {
    return this.#unsettled;
  }

  /**
   * How many more requests may start now (0 while open, paused or full). Requests in flight stay within
   * the limit; answered requests whose outcome is not durable yet stay below `maxConcurrency`, so a crash
   * repeats fewer than twice `maxConcurrency` requests of this endpoint.
   */
  room(): number {
    this.#tick();
    if (this.#circuit === 'open') return 0;
    const durable = Math.min(this.#policy.maxConcurrency - this.#unsettled, this.#startable());
    if (this.#circuit === 'half-open') return this.#probeInFlight || durable <= 0 ? 0 : 1;
    if (this.#pausedUntil > this.#clock.now()) return 0;
    return Math.max(0, Math.min(this.#limit - this.#inFlight, durable));
  }

  /**
   * When the passage of time alone can give this endpoint room again (probe time, end of a pause), or
   * `undefined` when only a finishing request can.
   */
  wakeAt(): number | undefined {
    this.#tick();
    if (this.#circuit === 'open') return this.#nextProbeAt;
    const now = this.#clock.now();
    const paused = this.#circuit === 'closed' && this.#pausedUntil > now ? this.#pausedUntil : undefined;
    const rate = this.#policy.ratePerSecond;
    if (rate === undefined || this.#startable() >= 1) return paused;
    // At least a millisecond ahead: a shortfall below what an epoch-ms double can tell would wake at once.
    const refilled = Math.max(now + 1, this.#tokensAt + ((1 - this.#tokens) * 1000) / rate);
    return paused === undefined ? refilled : Math.max(paused, refilled);
  }

  /** Takes a slot. Call only when `room() > 0`. */
  acquire(): EndpointTicket {
    this.#tick();
    const probe = this.#circuit === 'half-open';
    if (probe) this.#probeInFlight = true;
    const ticket = { epoch: this.#epoch, openings: this.#openings, fills: this.#fills, probe };
    // Refilled up to now first, so that the token taken is not credited back for time already past.
    if (this.#startable() !== Infinity) this.#tokens -= 1;
    this.#inFlight += 1;
    if (this.#inFlight >= this.#limit) this.#fills += 1;
    return ticket;
  }

  /** Gives back the slot of a request abandoned without an answer (no outcome to write). */
  release(ticket: EndpointTicket): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (ticket.probe) this.#probeInFlight = false;
  }

  /** The outcome of an answered request is durable (or was handed back): it no longer counts as unsettled. */
  settled(): void {
    this.#unsettled = Math.max(0, this.#unsettled - 1);
  }

  /**
   * Records what an attempt said about the endpoint: its request slot is free again, its outcome counts as
   * unsettled until `settled()`. Returns what a failure means for its event: one of its attempts only while
   * the circuit is closed and the endpoint has shown since it was last down that it is up (an outage,
   * also one that a restart or a 429 to a probe interrupted, dead-letters nothing through `maxAttempts`).
   */
  record(ticket: EndpointTicket, signal: EndpointSignal): FailureVerdict {
    this.release(ticket);
    this.#unsettled += 1;
    const now = this.#clock.now();
    // The wait the receiver asked for, as far as `maxRetryAfterMs` lets it; 0 when none.
    const asked = Math.min(signal.retryAfterMs ?? 0, this.#policy.maxRetryAfterMs);
    if (asked > 0) this.#pausedUntil = Math.max(this.#pausedUntil, now + asked);
    if (ticket.probe && this.#circuit === 'half-open') {
      if (signal.endpointFailure) this.#open(now, signal.retryAfterMs);
      else this.#close(signal.ok);
      return 'held';
    }
    if (this.#circuit !== 'closed') return 'held';
    // Sent before the circuit last opened (and answered after it closed again): news of the outage.
    if (ticket.openings !== this.#openings && !signal.ok) return 'held';

    // A 429 shows neither that the endpoint is down nor that it is up: it leaves the failure count alone.
    if (signal.endpointFailure) this.#consecutiveFailures += 1;
    else if (signal.ok) this.#consecutiveFailures = 0;
    if (signal.ok) {
      this.#throttles = 0;
      this.#probes = 0;
      this.#up = true;
    }
    const throttledAtFloor = signal.congestion && !signal.endpointFailure && this.#limit === 1;
    if (signal.congestion && ticket.epoch === this.#epoch) {
      this.#ceiling = this.#limit;
      this.#limit = Math.max(1, Math.floor(this.#limit / 2));
      this.#credit = 0;
      this.#epoch += 1;
    } else if (signal.ok && !signal.congestion && this.#fills > ticket.fills && ticket.epoch === this.#epoch) {
      this.#credit += 1;
      if (this.#credit >= this.#window()) {
        this.#credit = 0;
        this.#limit = Math.min(this.#policy.maxConcurrency, this.#limit + 1);
        if (this.#limit >= this.#ceiling) this.#ceiling = Infinity;
      }
    }
    if (this.#consecutiveFailures >= this.#policy.failureThreshold) {
      this.#open(now, signal.retryAfterMs);
      return 'held';
    }
    if (throttledAtFloor) {
      // Halving cannot slow down one request at a time: without a Retry-After that asks for a wait (none,
      // 0, or a date already past), pause for the next step of the backoff schedule. Like an open circuit,
      // the throttling is the endpoint's, not the event's.
      if (!(asked > 0)) this.#pausedUntil = Math.max(this.#pausedUntil, now + this.#policy.probeDelayMs(this.#throttles));
      this.#throttles += 1;
      return 'held';
    }
    return this.#up ? 'attempt' : 'endpoint';
  }

  /**
   * Healthy responses (to requests sent since the last decrease, with the window used in full) that grow
   * the limit by one. Below the level that last met congestion, every response does: the limit doubles
   * per round trip back to the last good level. One step below that level it takes `PLATEAU_FACTOR` full
   * windows, so a receiver at its capacity sees an occasional request above it. Otherwise (slow start
   * after an outage, and past the congested level) one full window per step.
   */
  #window(): number {
    if (this.#ceiling === Infinity || this.#limit + 1 > this.#ceiling) return this.#limit;
    return this.#limit + 1 === this.#ceiling ? this.#limit * PLATEAU_FACTOR : 1;
  }

  /** A second's worth of requests, at least one: what the rate limit lets start at once. */
  #burst(): number {
    const rate = this.#policy.ratePerSecond;
    return rate === undefined ? Infinity : Math.max(1, Math.floor(rate));
  }

  /** Whole requests the rate limit lets start now (Infinity without one). */
  #startable(): number {
    const rate = this.#policy.ratePerSecond;
    if (rate === undefined) return Infinity;
    const now = this.#clock.now();
    // A clock stepped back (NTP, a restored VM) refills nothing, and takes nothing either.
    this.#tokens = Math.min(this.#burst(), this.#tokens + (Math.max(0, now - this.#tokensAt) * rate) / 1000);
    this.#tokensAt = now;
    // Refills summed over many calls fall short of a whole token by a rounding error (1 - 1e-16).
    return Math.floor(this.#tokens + 1e-9);
  }

  /**
   * Whether this state is that of an endpoint never seen: closed, at full concurrency, nothing in flight
   * or unsettled, no failures or throttling counted, no pause. Forgetting such a state changes nothing.
   */
  atRest(): boolean {
    return (
      this.circuit === 'closed' &&
      this.#inFlight === 0 &&
      this.#unsettled === 0 &&
      this.#consecutiveFailures === 0 &&
      this.#throttles === 0 &&
      this.#limit === this.#policy.maxConcurrency &&
      this.#pausedUntil <= this.#clock.now() &&
      this.#startable() >= this.#burst()
    );
  }

  /** A copy of the state, for stats. */
  snapshot(): EndpointSnapshot {
    const circuit = this.circuit;
    const now = this.#clock.now();
    return {
      circuit,
      concurrency: circuit === 'closed' ? this.#limit : circuit === 'half-open' ? 1 : 0,
      inFlight: this.#inFlight,
      unsettled: this.#unsettled,
      consecutiveFailures: this.#consecutiveFailures,
      nextProbeAt: circuit === 'open' ? this.#nextProbeAt : undefined,
      pausedUntil: this.#pausedUntil > now ? this.#pausedUntil : undefined,
    };
  }

  #tick(): void {
    if (this.#circuit === 'open' && this.#clock.now() >= this.#nextProbeAt) {
      this.#transition('half-open');
    }
  }

  #open(now: number, retryAfterMs: number | undefined): void {
    const delay = this.#policy.probeDelayMs(this.#probes);
    const floor = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, this.#policy.maxRetryAfterMs);
    this.#probes += 1;
    this.#openings += 1;
    this.#up = false;
    // Never before a pause the receiver asked for (Retry-After) is over, also one asked for earlier.
    this.#nextProbeAt = Math.max(now + Math.max(delay, floor), this.#pausedUntil);
    this.#transition('open');
  }

  /**
   * After a probe that the endpoint answered: `up` when normally (the probe delays start over); after a 429
   * they go on growing, so that a receiver alternating 429s and 503s is probed ever more slowly.
   */
  #close(up: boolean): void {
    this.#consecutiveFailures = 0;
    if (up) {
      this.#probes = 0;
      this.#up = true;
    }
    this.#limit = Math.min(this.#policy.maxConcurrency, this.#policy.recoveryConcurrency);
    this.#credit = 0;
    this.#ceiling = Infinity;
    this.#epoch += 1;
    this.#transition('closed');
  }

  #transition(next: CircuitState): void {
    const previous = this.#circuit;
    if (previous === next) return;
    this.#circuit = next;
    this.#onCircuit(next, previous);
  }
}
