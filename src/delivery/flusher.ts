/**
 * The flusher: claims due events from the store in bounded batches, sends them within per-endpoint and
 * global concurrency limits, and persists each outcome (delivered, retry with its next due time, dead).
 * Outages are handled per endpoint (see `endpoint.ts`): an open circuit's events are not claimed, and
 * failures while it is open do not count as the events' attempts.
 */
import { setMaxListeners } from 'node:events';
import type { CancelTimer, Clock } from '../clock.js';
import { ProxyError } from '../errors.js';
import type { EndpointLimits, NormalizedRetryOptions } from '../options.js';
import type { RandomSource } from '../retry/backoff.js';
import { backoffDelay, nextDelay } from '../retry/backoff.js';
import type { AttemptFailure, AttemptResult } from './attempt.js';
import { EndpointState } from './endpoint.js';
import type { CircuitState, EndpointPolicy, EndpointSignal, EndpointSnapshot, EndpointTicket, FailureVerdict } from './endpoint.js';
import type { AttemptRecord, DeadReason, Outcome, OutboxStore, StoredEvent } from '../store/store.js';

/** Consecutive endpoint failures that open its circuit. */
export const FAILURE_THRESHOLD = 5;
/** Concurrency of an endpoint right after its circuit closes; it then grows by one per healthy window. */
export const RECOVERY_CONCURRENCY = 1;
/** Most events claimed from the store in one call. */
const CLAIM_BATCH = 256;
/** Events read ahead per endpoint, in windows of its concurrency limit: claims (and disk reads) come in batches. */
const READ_AHEAD_WINDOWS = 2;
/** Pause before the flusher tries the store again after a store fault. */
const STORE_FAULT_PAUSE_MS = 1_000;
/** Longest excerpt of a rejecting receiver's body kept in a dead letter's history (already redacted). */
const DEAD_EXCERPT_CHARS = 256;
/** Re-check delay when work is due but every slot is taken (a finishing request normally pokes sooner). */
const RECHECK_MS = 250;
/**
 * How long the state of a quiet endpoint (nothing buffered, in flight or waited for) is kept when it is not
 * that of a new endpoint (a lowered limit, failures counted): after this it no longer describes the
 * endpoint. A quiet endpoint whose state is that of a new one is forgotten at once.
 */
export const QUIET_LANE_MS = 10 * 60_000;
/** URLs whose forgotten lanes' endpoints were up that are remembered (the least recently forgotten go first). */
const UP_URLS = 10_000;

/** Emitted once the delivery is recorded in the store (see docs/05 for how durable). */
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
  /**
   * What failed: `HTTP 503` for a status, else the error code and the errno when there is one
   * (`ERR_NETWORK ECONNREFUSED`, `ERR_TIMEOUT ETIMEDOUT`).
   */
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

/**
 * Emitted when an event is removed without a request because a later-enqueued event of its ordering key
 * with `supersede: true` was pending when its turn came.
 */
export interface SupersededEvent {
  id: string;
  url: string;
  orderingKey: string;
  /** The id of the pending event that superseded it. */
  by: string;
}

/**
 * Emitted when an endpoint answers 410 Gone (with `goneDisablesEndpoint`): no more requests go to its URL
 * in this process; its events become dead letters (`endpoint-gone`) until `enableEndpoint()`.
 */
export interface EndpointGoneEvent {
  url: string;
  /** The event that was answered 410 (a dead letter, reason `http-status`). */
  id: string;
  /** When (ms since epoch). */
  at: number;
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
  superseded(event: SupersededEvent): void;
  endpointGone(event: EndpointGoneEvent): void;
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
  /** An endpoint's own limits (asked when its state is made), when it has any. */
  limitsOf?: ((url: string) => EndpointLimits | undefined) | undefined;
  /** A 410 Gone answer stops sending to its URL (see {@link EndpointGoneEvent}). */
  goneDisablesEndpoint: boolean;
  listener: FlusherListener;
}

/** An endpoint's delivery state and the events claimed for it but not sent yet (the read-ahead). */
interface Lane {
  url: string;
  state: EndpointState;
  buffer: StoredEvent[];
  /** In the flusher's busy list (see `#busy`). */
  busy: boolean;
  /** When it was last found quiet. */
  quietSince: number;
}

/** A lane quiet for `QUIET_LANE_MS`: its state no longer describes the endpoint. */
function isStale(lane: Lane, now: number): boolean {
  return !lane.busy && now - lane.quietSince >= QUIET_LANE_MS;
}

interface Active {
  event: StoredEvent;
  lane: Lane;
  ticket: EndpointTicket;
  abandoned: boolean;
  /** How often its URL had been enabled again when it was sent. */
  enables: number;
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
  // The receiver never saw it: `status` stays unset, and the proxy's answer goes into the text.
  if (error instanceof ProxyError && error.proxyStatus !== undefined) return `${error.code} ${error.errno ?? ''}: the proxy answered HTTP ${error.proxyStatus}`;
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
  /** The endpoints with a delivery state worth keeping, by URL, and their URLs (for the discovery claim). */
  readonly #lanes = new Map<string, Lane>();
  readonly #laneUrls = new Set<string>();
  /** What `limitsOf` answered per URL, and until when that answer is used. */
  readonly #limits = new Map<string, { limits: EndpointLimits | undefined; until: number }>();
  /** Endpoints that were up when their lane was forgotten (see `#forget`). */
  readonly #upUrls = new Set<string>();
  /** Endpoints not to claim for now, with how many holds each (see {@link hold}). */
  readonly #held = new Map<string, number>();
  /** Hand-backs of events a claim brought for a held endpoint (cleared once nothing is held). */
  #heldReleases: Promise<void>[] = [];
  /** The store claim under way, if any (see {@link hold}). */
  #claiming: Promise<unknown> | undefined;
  /** Events being removed without a request (see {@link #unsent}), by URL: no lane counts them. */
  readonly #burying = new Map<string, number>();
  /** Endpoints that answered 410 Gone, with when: their events are buried unsent. */
  readonly #gone = new Map<string, number>();
  /** Gone endpoints whose events not due yet (waiting for a retry) are still to be buried. */
  readonly #sweep = new Set<string>();
  /** Per URL, how often it was enabled again after a 410: one to a request sent before that is old news. */
  readonly #enabled = new Map<string, number>();
  /**
   * The lanes that may have something to do: events buffered, requests in flight or outcomes unsettled, or
   * a circuit or pause that time will end. Only these are walked per claim and per answer, so the cost of
   * delivering does not grow with the endpoints seen before. A claim drops the quiet ones (forgetting
   * those at rest). An array for the round-robin dispatch, with where its next pass starts.
   */
  readonly #busy: Lane[] = [];
  #cursor = 0;
  #nextForgetAt = 0;
  /** Events in all lanes' read-ahead. */
  #buffered = 0;
  /** A lane with events and room of its own was held back by `globalConcurrency`: freed slots go round-robin. */
  #starved = false;
  /** Most requests one lane may have in flight while lanes compete for the global slots (see `#dispatchBuffered`). */
  #share = Infinity;
  readonly #active = new Map<string, Active>();
  readonly #idleWaiters = new Set<() => void>();
  #running = false;
  #stopped = false;
  #pumping: Promise<void> | undefined;
  #again = false;
  #nextDueAt: number | undefined;
  #cancelWake: CancelTimer | undefined;
  #wakeAt: number | undefined;
  #faultUntil = 0;
  #discover = false;
  #settleQueue: { outcome: Outcome; done: (error?: unknown) => void }[] = [];
  #settling: Promise<void> | undefined;
  /**
   * One signal for every request: only `stop()` aborts requests, and then all that are still in flight.
   * A controller per request showed as about 5 us of CPU per delivery in profiles (docs/12).
   */
  readonly #abort = new AbortController();

  constructor(config: FlusherConfig) {
    this.#config = config;
    // Each request in flight may listen to it (got does): no leak warning at 11.
    setMaxListeners(0, this.#abort.signal);
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

  /** Requests in flight (sent, not answered yet). */
  get inFlight(): number {
    return this.#active.size;
  }

  /** Outcomes waiting to be written. */
  get settling(): number {
    return this.#settleQueue.length + (this.#settling === undefined ? 0 : 1);
  }

  /**
   * Stops claiming events of endpoint `url` and hands its read-ahead back to the store (resolves once
   * that is done); requests in flight go on ({@link busyWith} tells). Undone by {@link unhold}.
   */
  async hold(url: string): Promise<void> {
    this.#held.set(url, (this.#held.get(url) ?? 0) + 1);
    // A claim already under way may bring events of `url`: `#take` (which runs before this resumes) hands
    // those back. Later claims skip `url`.
    await this.#claiming?.catch(() => undefined);
    const lane = this.#lanes.get(url);
    await Promise.allSettled([...this.#heldReleases, ...(lane === undefined ? [] : this.#unbuffer(lane))]);
  }

  /** Claims events of `url` again (once every {@link hold} of it is undone). */
  unhold(url: string): void {
    const holds = (this.#held.get(url) ?? 1) - 1;
    if (holds > 0) this.#held.set(url, holds);
    else this.#held.delete(url);
    if (this.#held.size === 0) this.#heldReleases = [];
    this.poke();
  }

  /** The endpoints disabled by a 410 Gone, with when (ms since epoch). */
  get gone(): ReadonlyMap<string, number> {
    return this.#gone;
  }

  /** Sends to `url` again after a 410 Gone disabled it. Whether it was disabled. */
  enable(url: string): boolean {
    if (!this.#gone.delete(url)) return false;
    this.#sweep.delete(url);
    this.#enabled.set(url, (this.#enabled.get(url) ?? 0) + 1);
    return true;
  }

  /** Whether events of `url` are being removed without a request (their outcome not yet written). */
  burying(url: string): boolean {
    return (this.#burying.get(url) ?? 0) > 0;
  }

  /** Whether a request for event `id` is out now. */
  sending(id: string): boolean {
    return this.#active.has(id);
  }

  /** Whether a request to `url` is in flight or an outcome of it (a burial included) not yet written. */
  busyWith(url: string): boolean {
    const state = this.#lanes.get(url)?.state;
    return (this.#burying.get(url) ?? 0) > 0 || (state !== undefined && (state.inFlight > 0 || state.unsettled > 0));
  }

  /** Starts (or resumes) claiming work. */
  start(): void {
    if (this.#stopped || this.#running) return;
    this.#running = true;
    this.poke();
  }

  /** Stops claiming and sending new work; in-flight requests go on. */
  pause(): void {
    this.#running = false;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    this.#wakeAt = undefined;
  }

  /** New work may be due (an enqueue, a replay), perhaps for an endpoint not seen yet: claim now. */
  poke(): void {
    if (!this.#running) return;
    this.#discover = true;
    void this.#pump();
  }

  /**
   * Per-endpoint state, for stats: endpoints with something in progress or a state unlike a new endpoint's
   * (quiet ones are forgotten after `QUIET_LANE_MS`).
   */
  endpoints(): Record<string, EndpointSnapshot> {
    const out: Record<string, EndpointSnapshot> = {};
    const now = this.#config.clock.now();
    for (const [url, lane] of this.#lanes) {
      // Forgotten here too: an idle outbox makes no claim that would forget it.
      if (isStale(lane, now)) this.#forget(lane);
      else out[url] = lane.state.snapshot();
    }
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
      active.lane.state.release(active.ticket);
      this.#active.delete(active.event.id);
    }
    const released = abandoned.map((active) => this.#settle({ id: active.event.id, type: 'release' }));
    for (const lane of this.#lanes.values()) released.push(...this.#unbuffer(lane));
    if (abandoned.length > 0) this.#abort.abort();
    await Promise.allSettled(released);
    while (this.#settling !== undefined) await this.#settling;
  }

  #lane(url: string): Lane {
    let lane = this.#lanes.get(url);
    if (lane === undefined) {
      const limits = this.#limitsOf(url);
      const policy =
        limits === undefined
          ? this.#policy
          : { ...this.#policy, maxConcurrency: limits.concurrency ?? this.#policy.maxConcurrency, ratePerSecond: limits.ratePerSecond };
      const state = new EndpointState(
        policy,
        this.#config.clock,
        (next, previous) => {
          this.#config.listener.circuit({ url, state: next, previous });
          this.#engage(created);
          // An open circuit's read-ahead goes back to the store; its probe is claimed when it is due.
          if (next === 'open') for (const released of this.#unbuffer(created)) released.catch(() => {});
          // A closed or half-open circuit has room now; an open one has a probe time to wake for. Not at
          // once: transitions happen in the middle of dispatching.
          queueMicrotask(() => this.poke());
        },
        this.#upUrls.has(url),
      );
      const created: Lane = { url, state, buffer: [], busy: false, quietSince: 0 };
      lane = created;
      this.#lanes.set(url, lane);
      this.#laneUrls.add(url);
    }
    return lane;
  }

  /**
   * An endpoint's own limits, asked at most once per `QUIET_LANE_MS` per URL: a lane at rest is forgotten
   * at once and made again for the next event, and the function (or its error) must not run per event.
   */
  #limitsOf(url: string): EndpointLimits | undefined {
    const ask = this.#config.limitsOf;
    if (ask === undefined) return undefined;
    const now = this.#config.clock.now();
    const known = this.#limits.get(url);
    if (known !== undefined && now < known.until) return known.limits;
    const limits = ask(url);
    this.#limits.set(url, { limits, until: now + QUIET_LANE_MS });
    return limits;
  }

  #engage(lane: Lane): void {
    if (lane.busy) return;
    lane.busy = true;
    this.#busy.push(lane);
  }

  /**
   * Drops the quiet lanes from the busy list and forgets those at rest (and, once per `QUIET_LANE_MS`,
   * those quiet for that long). Returns how many events the lanes and the endpoints without one want claimed
   * (never 0), and which lanes want nothing.
   */
  #survey(now: number): { wanted: number; exclude: Set<string> } {
    const exclude = new Set<string>();
    let wanted = 0;
    const busy = this.#busy;
    let kept = 0;
    for (const lane of busy) {
      const { state } = lane;
      const quiet = lane.buffer.length === 0 && state.inFlight === 0 && state.unsettled === 0 && state.wakeAt() === undefined;
      if (quiet) {
        lane.busy = false;
        lane.quietSince = now;
        if (state.atRest()) this.#forget(lane);
        continue;
      }
      busy[kept++] = lane;
      const deficit = this.#deficit(lane);
      if (deficit === 0) exclude.add(lane.url);
      wanted += deficit;
    }
    busy.length = kept;
    if (this.#cursor >= kept) this.#cursor = 0;
    for (const url of this.#held.keys()) exclude.add(url);
    // A quiet lane wants what a new one does: a window and its read-ahead. So do the endpoints without a
    // lane (new, or forgotten with retries due later): the claim also learns when their events are due.
    wanted += (this.#lanes.size - kept + 1) * (1 + READ_AHEAD_WINDOWS) * this.#config.concurrency;
    if (now >= this.#nextForgetAt) {
      this.#nextForgetAt = now + QUIET_LANE_MS;
      for (const lane of this.#lanes.values()) if (isStale(lane, now)) this.#forget(lane);
      for (const [url, { until }] of this.#limits) if (now >= until) this.#limits.delete(url);
    }
    return { wanted, exclude };
  }

  #forget(lane: Lane): void {
    this.#lanes.delete(lane.url);
    this.#laneUrls.delete(lane.url);
    // A lane at rest is forgotten at once: whether its endpoint was up must outlive it (see FailureVerdict).
    this.#upUrls.delete(lane.url);
    if (!lane.state.up) return;
    this.#upUrls.add(lane.url);
    if (this.#upUrls.size > UP_URLS) this.#upUrls.delete(this.#upUrls.values().next().value as string);
  }

  /** Hands a lane's read-ahead back to the store. */
  #unbuffer(lane: Lane): Promise<void>[] {
    const events = lane.buffer;
    lane.buffer = [];
    this.#buffered -= events.length;
    return events.map((event) => this.#settle({ id: event.id, type: 'release' }));
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
      // A poke between the pump's last look at `#again` and here found it still pumping: pump for it now.
      if (this.#again && this.#running) void this.#pump();
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

  /**
   * How many more events a lane wants claimed: enough to fill its free slots and keep `READ_AHEAD_WINDOWS`
   * windows read ahead, so that a finishing request is followed at once by the next. 0 while it has
   * enough: a lane is topped up only once its read-ahead is half used, so claims come in batches.
   */
  #deficit(lane: Lane): number {
    // A gone endpoint's events are buried, not sent: its circuit, rate and read-ahead do not apply.
    if (this.#gone.has(lane.url)) return CLAIM_BATCH;
    const room = lane.state.room();
    const ahead = lane.state.circuit === 'closed' ? READ_AHEAD_WINDOWS * lane.state.limit : 0;
    if (room === 0 && lane.buffer.length > ahead / 2) return 0;
    return Math.max(0, room + ahead - lane.buffer.length);
  }

  /** Sends what the read-ahead holds, then claims more, until there is no room or nothing due. */
  async #fill(): Promise<void> {
    const { store, clock } = this.#config;
    while (this.#running && clock.now() >= this.#faultUntil) {
      this.#dispatchBuffered();
      for (const url of this.#sweep) {
        if (this.#held.has(url)) continue;
        // Also those not due yet (waiting for a retry): nothing is sent to a gone endpoint, so none need wait.
        const { events } = await (this.#claiming = store.claim({ limit: CLAIM_BATCH, now: Number.MAX_SAFE_INTEGER, endpoint: url }));
        if (events.length < CLAIM_BATCH) this.#sweep.delete(url);
        const gone: StoredEvent[] = [];
        for (const event of events) {
          if (event.url === url && this.#gone.has(url)) gone.push(event);
          // Enabled again meanwhile (or another URL's, from a store that ignored `endpoint`): back to the
          // store, to be sent when due.
          else this.#settle({ id: event.id, type: 'release' }).catch(() => {});
        }
        if (!this.#take(gone)) return;
      }
      let nextDueAt: number | undefined;
      if (this.#discover) {
        // Endpoints without a lane (a new URL, a replay, a previous process's backlog) get a window of their
        // own at once, however old the known lanes' backlogs are and however busy the global limit is.
        const limit = this.#config.concurrency;
        const excluded = this.#held.size === 0 ? this.#laneUrls : new Set([...this.#laneUrls, ...this.#held.keys()]);
        const found = await (this.#claiming = store.claim({ limit, now: clock.now(), excludeEndpoints: excluded }));
        nextDueAt = found.nextDueAt;
        this.#discover = found.events.length === limit;
        if (!this.#take(found.events)) return;
        this.#dispatchBuffered();
      }
      const { wanted, exclude } = this.#survey(clock.now());
      const limit = Math.min(CLAIM_BATCH, wanted);
      const { events, nextDueAt: due } = await (this.#claiming = store.claim({ limit, now: clock.now(), excludeEndpoints: exclude }));
      this.#nextDueAt = nextDueAt === undefined || (due !== undefined && due < nextDueAt) ? due : nextDueAt;
      // A short batch means nothing else is due outside the excluded (full) endpoints.
      if (events.length < limit) this.#discover = false;
      if (!this.#take(events)) return;
      if (events.length < limit && !this.#discover) {
        this.#dispatchBuffered();
        return;
      }
    }
  }

  /** Buffers claimed events in their lanes; false (with everything handed back) when the flusher stopped meanwhile. */
  #take(events: readonly StoredEvent[]): boolean {
    for (const event of events) {
      if (this.#held.has(event.url)) {
        // Claimed while its endpoint was put on hold: straight back (`hold()` waits for it).
        this.#heldReleases.push(this.#settle({ id: event.id, type: 'release' }).catch(() => {}));
        continue;
      }
      if (event.supersededBy !== undefined) {
        this.#supersede(event, event.supersededBy);
        continue;
      }
      if (this.#gone.has(event.url)) {
        this.#unsent(event, this.#bury(event, 'endpoint-gone', undefined, this.#config.clock.now()));
        continue;
      }
      const lane = this.#lane(event.url);
      lane.buffer.push(event);
      this.#engage(lane);
      this.#buffered++;
    }
    if (this.#running) return true;
    for (const lane of this.#busy) for (const released of this.#unbuffer(lane)) released.catch(() => {});
    return false;
  }

  /**
   * Sends buffered events wherever there is room, one per lane per turn starting after the lane served
   * last, so that lanes competing for `globalConcurrency` share it instead of the first ones taking it all.
   */
  #dispatchBuffered(): void {
    const lanes = this.#busy;
    const n = lanes.length;
    this.#starved = false;
    // While lanes compete for the global slots, none takes more than its share: else the slots freed by
    // an endpoint that answers go, turn by turn, to endpoints whose requests hang until their timeout.
    // (Counted up to globalConcurrency: from there on the share is 1.)
    const { globalConcurrency, concurrency } = this.#config;
    let competing = 0;
    for (let i = 0; i < n && competing < globalConcurrency; i++) {
      const lane = lanes[i] as Lane;
      if (lane.buffer.length > 0 || lane.state.inFlight > 0) competing++;
    }
    this.#share = competing > 1 && competing * concurrency > globalConcurrency ? Math.max(1, Math.floor(globalConcurrency / competing)) : Infinity;
    for (let turn = 0, idle = 0; idle < n && this.#active.size < this.#config.globalConcurrency; turn++) {
      const at = (this.#cursor + turn) % n;
      if (this.#dispatchOne(lanes[at] as Lane)) {
        idle = 0;
        this.#cursor = (at + 1) % n;
      } else {
        idle++;
      }
    }
    if (this.#active.size >= this.#config.globalConcurrency) {
      this.#starved = lanes.some((lane) => lane.buffer.length > 0 && lane.state.room() > 0);
    }
  }

  /** Sends the lane's buffered events while it and the global limit have room. */
  #dispatchLane(lane: Lane): void {
    while (this.#dispatchOne(lane));
    if (this.#active.size >= this.#config.globalConcurrency && lane.buffer.length > 0 && lane.state.room() > 0) this.#starved = true;
  }

  /** Sends the lane's next buffered event (burying those past their max age); false when it sent none. */
  #dispatchOne(lane: Lane): boolean {
    const { globalConcurrency, retry, clock } = this.#config;
    while (this.#running && lane.buffer.length > 0 && this.#active.size < globalConcurrency && lane.state.inFlight < this.#share && lane.state.room() > 0) {
      const event = lane.buffer.shift() as StoredEvent;
      this.#buffered -= 1;
      const now = clock.now();
      if (now >= event.createdAt + retry.maxAgeMs) {
        this.#unsent(event, this.#bury(event, 'max-age', undefined, now));
        continue;
      }
      this.#dispatch(event, lane);
      return true;
    }
    return false;
  }

  #dispatch(event: StoredEvent, lane: Lane): void {
    const active: Active = { event, lane, ticket: lane.state.acquire(), abandoned: false, enables: this.#enabled.get(event.url) ?? 0 };
    this.#active.set(event.id, active);
    this.#config.deliver(event, this.#abort.signal).then(
      (result) => this.#answered(active, result),
      (error: unknown) => {
        // `deliver` never rejects; if it did, the event goes back to the store untouched.
        if (active.abandoned) return;
        this.#active.delete(event.id);
        lane.state.release(active.ticket);
        this.#config.listener.error(error);
        this.#settle({ id: event.id, type: 'release' }).catch(() => {});
        this.#afterSlot(lane);
      },
    );
  }

  /**
   * A request was answered: its slot goes to the next buffered event right away, while the outcome is
   * written (sharing a group commit with others). The outcome counts as unsettled on the endpoint until it
   * is durable, which bounds the requests a crash could repeat.
   */
  #answered(active: Active, result: AttemptResult): void {
    if (active.abandoned) return;
    const { event, lane, ticket } = active;
    this.#active.delete(event.id);
    const verdict = lane.state.record(ticket, endpointSignal(result));
    // The outcome is queued (synchronously) before anyone hears that the slot is free. A 410 to a request
    // sent before an endpoint was enabled again is no news about it.
    const written = this.#complete(event, result, verdict, active.enables === (this.#enabled.get(event.url) ?? 0));
    this.#afterSlot(lane);
    written
      .catch(async (error: unknown) => {
        this.#config.listener.error(error);
        // The outcome could not be written: hand the event back so it is tried again (at least once).
        await this.#config.store.settle([{ id: event.id, type: 'release' }]).catch(() => {});
      })
      .finally(() => {
        lane.state.settled();
        this.#afterSlot(lane);
        this.#config.listener.progress();
      });
  }

  /** A slot or an unsettled outcome was freed: send the next buffered events, claim more if running low. */
  #afterSlot(lane: Lane): void {
    for (const waiter of [...this.#idleWaiters]) waiter();
    if (!this.#running) return;
    // The lane that just finished goes first, unless other lanes are waiting for a global slot.
    if (this.#starved) this.#dispatchBuffered();
    else this.#dispatchLane(lane);
    if (this.#active.size < this.#config.globalConcurrency) this.#dispatchBuffered();
    const { globalConcurrency } = this.#config;
    // Every slot taken and a read-ahead to refill each: a claim now would send nothing sooner.
    const saturated = this.#active.size >= globalConcurrency && this.#buffered >= globalConcurrency;
    if (saturated || this.#deficit(lane) === 0) {
      // A Retry-After pause has no finishing request to end it: wake up for it.
      if (lane.state.wakeAt() !== undefined) this.#scheduleWake();
      return;
    }
    if (this.#pumping !== undefined) this.#again = true;
    else void this.#pump();
  }

  async #complete(event: StoredEvent, result: AttemptResult, verdict: FailureVerdict, current: boolean): Promise<void> {
    const { clock, retry, random, listener } = this.#config;
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
      // Before the burial is written: the lane's next dispatch (right after this returns) must see it.
      if (result.status === 410 && current && this.#config.goneDisablesEndpoint) this.#disable(event, now);
      await this.#bury(event, result.status === undefined ? 'invalid' : 'http-status', attempt, now, result.status);
      return;
    }
    // Out when the endpoint answered another request 410 (and not enabled since): nothing more is sent.
    if (this.#gone.has(event.url) && current) {
      await this.#bury(event, 'endpoint-gone', attempt, now, result.status);
      return;
    }
    // Unless the failure is the event's own (see FailureVerdict), it is recorded in the history but not
    // counted; while the endpoint holds the event (an open circuit, a pause), that decides when it goes again.
    const counts = verdict === 'attempt';
    const attempts = event.attempts + (counts ? 1 : 0);
    if (counts && attempts >= retry.maxAttempts) {
      await this.#bury(event, 'max-attempts', attempt, now, result.status);
      return;
    }
    const delay = verdict === 'held' ? 0 : nextDelay(Math.max(0, attempts - 1), retry, random, result.retryAfterMs);
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

  /** Removes an event its store marked superseded, without a request. */
  #supersede(event: StoredEvent, by: string): void {
    const { listener } = this.#config;
    const written = this.#settle({ id: event.id, type: 'superseded', by }).then(() => {
      listener.superseded({ id: event.id, url: event.url, orderingKey: event.orderingKey as string, by });
    });
    this.#unsent(event, written);
  }

  /** A 410 Gone from `event`'s endpoint: no more requests to it; what its lane read ahead is buried unsent. */
  #disable(event: StoredEvent, now: number): void {
    const { url } = event;
    if (this.#gone.has(url)) return;
    this.#gone.set(url, now);
    this.#sweep.add(url);
    this.#config.listener.endpointGone({ url, id: event.id, at: now });
    const lane = this.#lanes.get(url);
    if (lane === undefined) return;
    const events = lane.buffer;
    lane.buffer = [];
    this.#buffered -= events.length;
    for (const unsent of events) this.#unsent(unsent, this.#bury(unsent, 'endpoint-gone', undefined, now));
  }

  /**
   * Follows the removal of a claimed event without a request (superseded, past its max age, its endpoint
   * gone), counted in `#burying` until `written` settles. Once written, its ordering key's next (or its
   * key's next state) may be due: claim again. Not written: handed back, to be judged again at a later
   * claim after the pause of any store fault (claiming it again at once would spin on a full disk).
   */
  #unsent(event: StoredEvent, written: Promise<void>): void {
    const { url } = event;
    const { listener, store } = this.#config;
    this.#burying.set(url, (this.#burying.get(url) ?? 0) + 1);
    written
      .catch(async (error: unknown) => {
        listener.error(error);
        this.#faultUntil = this.#config.clock.now() + STORE_FAULT_PAUSE_MS;
        await store.settle([{ id: event.id, type: 'release' }]).catch(() => {});
        // Handed back not due (a retry's), its endpoint gone: the sweep takes it after the pause.
        if (this.#gone.has(url)) this.#sweep.add(url);
      })
      .finally(() => {
        const left = (this.#burying.get(url) ?? 1) - 1;
        if (left > 0) this.#burying.set(url, left);
        else this.#burying.delete(url);
        listener.progress();
        if (!this.#running) return;
        if (this.#pumping !== undefined) this.#again = true;
        else void this.#pump();
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
    for (const lane of this.#busy) {
      const wake = lane.state.wakeAt();
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
