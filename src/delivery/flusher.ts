/**
 * The flusher: claims due events from the store in bounded batches, sends them within per-endpoint and
 * global concurrency limits, and persists each outcome (delivered, retry with its next due time, dead).
 * Outages are handled per endpoint (see `endpoint.ts`): an open circuit's events are not claimed, and
 * failures while it is open do not count as the events' attempts.
 */
import type { CancelTimer, Clock } from '../clock.js';
import type { NormalizedRetryOptions } from '../options.js';
import type { RandomSource } from '../retry/backoff.js';
import { backoffDelay, nextDelay } from '../retry/backoff.js';
import type { AttemptFailure, AttemptResult } from './attempt.js';
import { EndpointState } from './endpoint.js';
import type { CircuitState, EndpointPolicy, EndpointSignal, EndpointSnapshot, EndpointTicket } from './endpoint.js';
import type { AttemptRecord, DeadReason, Outcome, OutboxStore, StoredEvent } from '../store/store.js';

/** Consecutive endpoint failures that open its circuit. */
export const FAILURE_THRESHOLD = 5;
/** Concurrency of an endpoint right after its circuit closes; it then grows by one per healthy window. */
export const RECOVERY_CONCURRENCY = 1;
/** Most events claimed from the store in one call. */
const CLAIM_BATCH = 256;
/** Pause before the flusher tries the store again after a store fault. */
const STORE_FAULT_PAUSE_MS = 1_000;
/** Longest excerpt of a rejecting receiver's body kept in a dead letter's history (already redacted). */
const DEAD_EXCERPT_CHARS = 256;
/** Re-check delay when work is due but every slot is taken (a finishing request normally pokes sooner). */
const RECHECK_MS = 250;

/** Emitted once the delivery is durable in the store. */
export interface DeliveredEvent {
  id: string;
  url: string;
  status: number;
  /** Attempts including this one. */
  attempts: number;
  durationMs: number;
}

/** Emitted after a failed attempt that will be retried. */
export interface RetryEvent {
  id: string;
  url: string;
  /** Attempts counted so far (failures while the endpoint's circuit was open are not counted). */
  attempts: number;
  /** When the event is due again (ms since epoch); the endpoint's circuit may hold it longer. */
  nextAttemptAt: number;
  /** Whether this failure counted as one of the event's attempts. */
  counted: boolean;
  /** The status, when the receiver answered. */
  status?: number | undefined;
  /** Error code (`ERR_HTTP_STATUS`, `ERR_NETWORK`, `ERR_TIMEOUT`) and errno when there is one. */
  error: string;
}

/** Emitted when an event is moved to the dead letters. */
export interface DeadEvent {
  id: string;
  url: string;
  reason: DeadReason;
  attempts: number;
  /** The last status, when the receiver answered. */
  status?: number | undefined;
}

/** Emitted on every circuit transition of an endpoint. */
export interface CircuitEvent {
  url: string;
  state: CircuitState;
  previous: CircuitState;
}

/** Where the flusher reports what happened. */
export interface FlusherListener {
  delivered(event: DeliveredEvent): void;
  retry(event: RetryEvent): void;
  dead(event: DeadEvent): void;
  circuit(event: CircuitEvent): void;
  /** A store fault (never a delivery failure). */
  error(error: unknown): void;
  /** Something settled or went idle: drain waiters re-check. */
  progress(): void;
}

/** Sends one attempt of a stored event. Never rejects. */
export type Deliver = (event: StoredEvent, signal: AbortSignal) => Promise<AttemptResult>;

/** Everything the flusher needs. */
export interface FlusherConfig {
  store: OutboxStore;
  deliver: Deliver;
  clock: Clock;
  random: RandomSource;
  retry: NormalizedRetryOptions;
  /** Most requests in flight per endpoint. */
  concurrency: number;
  /** Most requests in flight overall. */
  globalConcurrency: number;
  listener: FlusherListener;
}

interface Active {
  event: StoredEvent;
  endpoint: EndpointState;
  ticket: EndpointTicket;
  abort: AbortController;
  abandoned: boolean;
}

/** What an attempt says about its endpoint. */
export function endpointSignal(result: AttemptResult): EndpointSignal {
  if (result.ok) return { ok: true, endpointFailure: false, congestion: false };
  // A permanent status (400, 410, 422...) is the event's problem: the endpoint itself answered.
  if (!result.retryable) return { ok: result.status !== undefined, endpointFailure: false, congestion: false };
  return {
    ok: false,
    endpointFailure: result.status !== 429,
    congestion: result.throttled,
    retryAfterMs: result.retryAfterMs,
  };
}

function describeFailure(failure: AttemptFailure): string {
  const error = failure.error;
  if (error.code === 'ERR_HTTP_STATUS') return `HTTP ${failure.status ?? ''}`.trim();
  const errno = 'errno' in error ? error.errno : undefined;
  return errno === undefined ? error.code : `${error.code} ${errno}`;
}

function attemptRecord(result: AttemptResult): AttemptRecord {
  const record: AttemptRecord = { at: result.at, durationMs: result.durationMs };
  if (result.status !== undefined) record.status = result.status;
  if (result.ok) return record;
  record.error = describeFailure(result);
  if (!result.retryable && result.error.code === 'ERR_HTTP_STATUS' && 'bodyExcerpt' in result.error) {
    const excerpt = result.error.bodyExcerpt;
    if (excerpt.length > 0) {
      const cut = excerpt.length > DEAD_EXCERPT_CHARS ? `${excerpt.slice(0, DEAD_EXCERPT_CHARS)}...` : excerpt;
      record.error += `: ${cut}`;
    }
  }
  return record;
}

/** Runs deliveries for one store. Created stopped; `start()` begins claiming. */
export class Flusher {
  readonly #config: FlusherConfig;
  readonly #policy: EndpointPolicy;
  readonly #endpoints = new Map<string, EndpointState>();
  readonly #active = new Map<string, Active>();
  #running = false;
  #stopped = false;
  #pumping: Promise<void> | undefined;
  #again = false;
  #nextDueAt: number | undefined;
  #cancelWake: CancelTimer | undefined;
  #wakeAt: number | undefined;
  #faultUntil = 0;
  #settleQueue: { outcome: Outcome; done: (error?: unknown) => void }[] = [];
  #settling: Promise<void> | undefined;

  constructor(config: FlusherConfig) {
    this.#config = config;
    const { retry, random } = config;
    this.#policy = {
      maxConcurrency: config.concurrency,
      failureThreshold: FAILURE_THRESHOLD,
      recoveryConcurrency: RECOVERY_CONCURRENCY,
      probeDelayMs: (n) => Math.max(1, backoffDelay(n, retry, random)),
      maxRetryAfterMs: retry.maxRetryAfterMs,
    };
  }

  /** Whether the flusher is claiming work. */
  get running(): boolean {
    return this.#running;
  }

  /** Requests in flight (claimed and being sent). */
  get inFlight(): number {
    return this.#active.size;
  }

  /** Outcomes waiting to be written. */
  get settling(): number {
    return this.#settleQueue.length + (this.#settling === undefined ? 0 : 1);
  }

  /** Starts (or resumes) claiming work. */
  start(): void {
    if (this.#stopped || this.#running) return;
    this.#running = true;
    this.poke();
  }

  /** Stops claiming new work; in-flight requests go on. */
  pause(): void {
    this.#running = false;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    this.#wakeAt = undefined;
  }

  /** New work may be due (an enqueue, a replay): claim now. */
  poke(): void {
    if (!this.#running) return;
    void this.#pump();
  }

  /** Per-endpoint state, for stats. Only endpoints seen since open. */
  endpoints(): Record<string, EndpointSnapshot> {
    const out: Record<string, EndpointSnapshot> = {};
    for (const [url, endpoint] of this.#endpoints) out[url] = endpoint.snapshot();
    return out;
  }

  /**
   * Stops for good: no more claims; waits up to `timeoutMs` for in-flight requests, then abandons the rest
   * (released unchanged, so they stay pending in the store) and aborts their requests. Resolves once every
   * outcome is written.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.pause();
    this.#stopped = true;
    if (this.#pumping !== undefined) await this.#pumping;
    if (this.#active.size > 0 && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.#active.size === 0) finish();
        };
        const cancel = this.#config.clock.setTimer(() => finish(), timeoutMs);
        const finish = (): void => {
          cancel();
          this.#idleWaiters.delete(check);
          resolve();
        };
        this.#idleWaiters.add(check);
        check();
      });
    }
    const abandoned = [...this.#active.values()];
    for (const active of abandoned) {
      active.abandoned = true;
      active.endpoint.release(active.ticket);
      this.#active.delete(active.event.id);
    }
    const released = abandoned.map((active) => this.#settle({ id: active.event.id, type: 'release' }));
    for (const active of abandoned) active.abort.abort();
    await Promise.allSettled(released);
    while (this.#settling !== undefined) await this.#settling;
  }

  readonly #idleWaiters = new Set<() => void>();

  #endpoint(url: string): EndpointState {
    let endpoint = this.#endpoints.get(url);
    if (endpoint === undefined) {
      endpoint = new EndpointState(this.#policy, this.#config.clock, (state, previous) => {
        this.#config.listener.circuit({ url, state, previous });
        // A closed or half-open circuit has room now; an open one has a probe time to wake for.
        this.poke();
      });
      this.#endpoints.set(url, endpoint);
    }
    return endpoint;
  }

  #pump(): Promise<void> {
    if (this.#pumping !== undefined) {
      this.#again = true;
      return this.#pumping;
    }
    this.#pumping = this.#runPump().finally(() => {
      this.#pumping = undefined;
      this.#scheduleWake();
      this.#config.listener.progress();
    });
    return this.#pumping;
  }

  async #runPump(): Promise<void> {
    try {
      do {
        this.#again = false;
        await this.#fill();
      } while (this.#again && this.#running);
    } catch (error) {
      this.#faultUntil = this.#config.clock.now() + STORE_FAULT_PAUSE_MS;
      this.#config.listener.error(error);
    }
  }

  /** Claims and dispatches until there is no room or nothing due. */
  async #fill(): Promise<void> {
    const { store, clock, retry } = this.#config;
    while (this.#running && clock.now() >= this.#faultUntil) {
      const globalRoom = this.#config.globalConcurrency - this.#active.size;
      if (globalRoom <= 0) return;
      const exclude = new Set<string>();
      let maxRoom = 0;
      for (const [url, counters] of Object.entries(store.stats().endpoints)) {
        if (counters.pending === 0) continue;
        const room = this.#endpoint(url).room();
        if (room === 0) exclude.add(url);
        else maxRoom = Math.max(maxRoom, room);
      }
      if (maxRoom === 0) {
        this.#nextDueAt = undefined;
        return;
      }
      const limit = Math.min(globalRoom, maxRoom, CLAIM_BATCH);
      const now = clock.now();
      const { events, nextDueAt } = await store.claim({ limit, now, excludeEndpoints: exclude });
      this.#nextDueAt = nextDueAt;
      if (events.length === 0) return;

      const outcomes: Promise<void>[] = [];
      let progressed = false;
      for (const event of events) {
        if (now >= event.createdAt + retry.maxAgeMs) {
          progressed = true;
          outcomes.push(this.#bury(event, 'max-age', undefined, now));
          continue;
        }
        const endpoint = this.#endpoint(event.url);
        if (!this.#running || endpoint.room() === 0 || this.#active.size >= this.#config.globalConcurrency) {
          outcomes.push(this.#settle({ id: event.id, type: 'release' }));
          continue;
        }
        progressed = true;
        this.#dispatch(event, endpoint);
      }
      await Promise.all(outcomes);
      if (!progressed) return;
    }
  }

  #dispatch(event: StoredEvent, endpoint: EndpointState): void {
    const active: Active = { event, endpoint, ticket: endpoint.acquire(), abort: new AbortController(), abandoned: false };
    this.#active.set(event.id, active);
    void this.#config
      .deliver(event, active.abort.signal)
      .then((result) => this.#complete(active, result))
      .catch(async (error: unknown) => {
        this.#config.listener.error(error);
        // The outcome could not be written: hand the event back so it is tried again (at least once).
        if (!active.abandoned) await this.#config.store.settle([{ id: event.id, type: 'release' }]).catch(() => {});
      })
      .finally(() => {
        // The slot is freed only now that the outcome is durable: the requests a crash could repeat are
        // bounded by the concurrency limits.
        if (!active.abandoned) {
          endpoint.release(active.ticket);
          this.#active.delete(event.id);
        }
        for (const waiter of [...this.#idleWaiters]) waiter();
        this.#config.listener.progress();
        this.poke();
      });
  }

  async #complete(active: Active, result: AttemptResult): Promise<void> {
    if (active.abandoned) return;
    const { event, endpoint, ticket } = active;
    const { clock, retry, random, listener } = this.#config;
    const counts = endpoint.record(ticket, endpointSignal(result));
    const attempt = attemptRecord(result);
    if (result.ok) {
      await this.#settle({ id: event.id, type: 'delivered', attempt });
      listener.delivered({
        id: event.id,
        url: event.url,
        status: result.status,
        attempts: event.attempts + 1,
        durationMs: result.durationMs,
      });
      return;
    }
    const now = clock.now();
    if (!result.retryable) {
      await this.#bury(event, result.status === undefined ? 'invalid' : 'http-status', attempt, now, result.status);
      return;
    }
    // While the circuit is open (or this was a probe), the failure is the endpoint's, not the event's:
    // the attempt is recorded in the history but not counted, and the circuit decides when to try again.
    const attempts = event.attempts + (counts ? 1 : 0);
    if (counts && attempts >= retry.maxAttempts) {
      await this.#bury(event, 'max-attempts', attempt, now, result.status);
      return;
    }
    const delay = counts ? nextDelay(attempts - 1, retry, random, result.retryAfterMs) : 0;
    const nextAttemptAt = now + delay;
    if (nextAttemptAt >= event.createdAt + retry.maxAgeMs) {
      await this.#bury(event, 'max-age', attempt, now, result.status);
      return;
    }
    await this.#settle({ id: event.id, type: 'retry', attempt, nextAttemptAt, countsAsAttempt: counts });
    listener.retry({
      id: event.id,
      url: event.url,
      attempts,
      nextAttemptAt,
      counted: counts,
      status: result.status,
      error: describeFailure(result),
    });
  }

  async #bury(
    event: StoredEvent,
    reason: DeadReason,
    attempt: AttemptRecord | undefined,
    at: number,
    status?: number,
  ): Promise<void> {
    const outcome: Outcome = attempt === undefined ? { id: event.id, type: 'dead', reason, at } : { id: event.id, type: 'dead', reason, at, attempt };
    await this.#settle(outcome);
    this.#config.listener.dead({
      id: event.id,
      url: event.url,
      reason,
      attempts: event.attempts + (attempt === undefined ? 0 : 1),
      status,
    });
  }

  /**
   * Queues an outcome; outcomes that arrive while a write is in progress go out together in the next one
   * (the store fsyncs once per `settle` call). Rejects if the store could not write it.
   */
  #settle(outcome: Outcome): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#settleQueue.push({ outcome, done: (error) => (error === undefined ? resolve() : reject(error)) });
      if (this.#settling === undefined) this.#settling = this.#writeOutcomes();
    });
  }

  async #writeOutcomes(): Promise<void> {
    while (this.#settleQueue.length > 0) {
      const batch = this.#settleQueue;
      this.#settleQueue = [];
      try {
        await this.#config.store.settle(batch.map((entry) => entry.outcome));
        for (const entry of batch) entry.done();
      } catch (error) {
        for (const entry of batch) entry.done(error);
      }
    }
    this.#settling = undefined;
  }

  #scheduleWake(): void {
    if (!this.#running) return;
    const { clock } = this.#config;
    let at = this.#nextDueAt;
    for (const endpoint of this.#endpoints.values()) {
      const wake = endpoint.wakeAt();
      if (wake !== undefined && (at === undefined || wake < at)) at = wake;
    }
    const now = clock.now();
    if (this.#faultUntil > now) at = at === undefined ? this.#faultUntil : Math.max(at, this.#faultUntil);
    if (at !== undefined && at <= now) at = now + RECHECK_MS;
    if (at === this.#wakeAt) return;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    this.#wakeAt = at;
    if (at === undefined) return;
    this.#cancelWake = clock.setTimer(() => {
      this.#cancelWake = undefined;
      this.#wakeAt = undefined;
      this.poke();
    }, at - now);
  }
}
