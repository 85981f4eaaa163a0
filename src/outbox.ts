/**
 * The outbox: durable, fire-and-forget delivery. `enqueue()` writes the event to the store and resolves
 * once it is durable; the flusher (in this process unless `autoFlush: false`) delivers it later.
 */
import { EventEmitter } from 'node:events';
import { holdProcessOpen } from './clock.js';
import { DrainTimeoutError, InvalidOptionError, OutboxClosedError, OutboxFullError } from './errors.js';
import { createTransportStack, runAttempt } from './delivery/attempt.js';
import type { CircuitEvent, DeadEvent, DeliveredEvent, EndpointGoneEvent, RetryEvent, SupersededEvent } from './delivery/flusher.js';
import { Flusher } from './delivery/flusher.js';
import type { EndpointSnapshot } from './delivery/endpoint.js';
import { prepareMessage } from './message.js';
import type { OutboxMessage, PrepareOptions } from './message.js';
import { OutboxMetrics } from './metrics.js';
import { checkEndpointLimits, checkInteger, checkKnownKeys, checkObject, checkUrl, normalizeOutboxOptions } from './options.js';
import type { EndpointLimits, NormalizedOutboxOptions, OutboxOptions } from './options.js';
import { FileStore } from './store/file/file-store.js';
import type { DeadLetter, DeadLetterQuery, NewEvent, OutboxStore, StoredEvent } from './store/store.js';
import { deadLetterMatches, filtersDeadLetters } from './store/validate.js';
import type { Transport } from './transport/transport.js';

/** The events an {@link Outbox} emits, with their listener arguments. */
export type OutboxEventMap = {
  /** An event was delivered (2xx) and removed from the store. */
  delivered: [event: DeliveredEvent];
  /** An attempt failed and the event will be tried again. */
  retry: [event: RetryEvent];
  /** An event was moved to the dead letters. */
  dead: [event: DeadEvent];
  /**
   * An event was removed unsent: a later event of its ordering key, enqueued with `supersede: true`, was
   * pending when its turn came (see docs/03).
   */
  superseded: [event: SupersededEvent];
  /**
   * An endpoint answered 410 Gone (with `goneDisablesEndpoint`, the default): this outbox sends it nothing
   * more; its events become dead letters, reason `endpoint-gone`, until `enableEndpoint()` or a restart (see
   * docs/06). Disable the endpoint in your own records and tell its owner.
   */
  endpointGone: [event: EndpointGoneEvent];
  /** An endpoint's circuit changed state. */
  circuit: [event: CircuitEvent];
  /**
   * A fault of the outbox itself (store I/O), never a delivery failure. Without a listener it is reported
   * with `process.emitWarning` instead of crashing the app.
   */
  error: [error: Error];
};

/** An endpoint as `stats()` reports it: store counters plus delivery state. */
export interface EndpointStats {
  pending: number;
  dead: number;
  circuit: EndpointSnapshot['circuit'];
  /** Current adaptive concurrency limit. */
  concurrency: number;
  inFlight: number;
  /** When an open circuit probes next (ms since epoch). */
  nextProbeAt: number | undefined;
  /** End of a Retry-After pause (ms since epoch). */
  pausedUntil: number | undefined;
  /** When a 410 Gone disabled the endpoint (ms since epoch), while it is disabled. */
  goneSince: number | undefined;
}

/** What {@link Outbox.stats} returns. */
export interface OutboxStats {
  /** Events waiting to be delivered, due or not, including those in flight. */
  pending: number;
  /** Requests being sent right now. */
  inFlight: number;
  /** Events delivered since the outbox was opened. */
  delivered: number;
  /** Events removed unsent since the outbox was opened, superseded by a later event of their ordering key. */
  superseded: number;
  /** Dead letters kept. */
  dead: number;
  /** Records skipped on recovery because they were corrupt. */
  corrupt: number;
  /** Age of the oldest pending event (ms), or `undefined` when nothing is pending. */
  oldestPendingAgeMs: number | undefined;
  bytesOnDisk: number;
  /** Per endpoint URL. */
  endpoints: Record<string, EndpointStats>;
}

/**
 * Which dead letters `replay()` and `purge()` act on: these ids, or those a query selects (by ids,
 * endpoint URL, time of death; at most `limit`).
 */
export type DeadLetterSelection = readonly string[] | DeadLetterQuery;

/** What {@link Outbox.find} says about an event it holds. */
export type FoundEventStatus = (StoredEvent & { state: 'pending' | 'in-flight' }) | (DeadLetter & { state: 'dead' });

/** Options of {@link Outbox.replay}. */
export interface ReplayOptions {
  /**
   * Send the replayed events to this URL from now on, instead of the one they were enqueued for (the
   * receiver moved). `http:` or `https:`. The change is durable: it holds after a restart. Needs ids or
   * an `endpoint` in the selection (never every endpoint's events to one URL; all of one endpoint's
   * events, pending ones too: `moveEndpoint()`), and a store that can move events (one with
   * `moveEndpoint()`: all of this package's).
   * @default undefined (each event keeps its URL)
   */
  url?: string;
}

/** Options of {@link Outbox.enqueue}. */
export interface EnqueueOptions {
  /**
   * Write the event inside your own database transaction (a store with `appendIn()`: `PostgresStore`, with
   * the client on which you ran `BEGIN`): it exists once you commit, and never if you roll back. `enqueue()`
   * then resolves once it is written in the transaction, not committed.
   */
  transaction?: unknown;
}

/** Options of {@link Outbox.drain}. */
export interface DrainOptions {
  /**
   * Reject with `ERR_DRAIN_TIMEOUT` if not drained by then: whole milliseconds, or `Infinity` to wait as
   * long as it takes.
   * @default 30000
   */
  timeoutMs?: number;
}

/** Options of {@link Outbox.close}. */
export interface CloseOptions {
  /**
   * How long in-flight requests may finish (whole milliseconds, or `Infinity`); the rest are abandoned and
   * stay pending on disk.
   * @default 10000
   */
  timeoutMs?: number;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
/** How long close() gives the writes that follow the requests (releases, outcomes, the store's close) past its timeout. */
const CLOSE_GRACE_MS = 2_000;

/** Dead-letter ids: absent (all of them) or an array of non-empty strings. */
function checkIds(ids: unknown, option: string): void {
  if (ids === undefined) return;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string' && id.length > 0)) {
    throw new InvalidOptionError(option, 'expected an array of event ids (non-empty strings)');
  }
}

/** Checks a dead-letter query (absent: all of them). */
function checkQuery(query: unknown): DeadLetterQuery {
  const q = checkObject(query, 'query');
  checkKnownKeys(q, ['ids', 'endpoint', 'since', 'until', 'limit']);
  checkIds(q.ids, 'ids');
  if (q.endpoint !== undefined && typeof q.endpoint !== 'string') throw new InvalidOptionError('endpoint', 'expected an endpoint URL (a string)');
  checkInteger(q.since, 'since', 0, { min: 0 });
  checkInteger(q.until, 'until', 0, { min: 0 });
  checkInteger(q.limit, 'limit', 0, { min: 0, allowInfinity: true });
  return q as DeadLetterQuery;
}

/** A selection as a query: ids become `{ ids }`. */
function checkSelection(selection: unknown): DeadLetterQuery {
  if (Array.isArray(selection)) {
    checkIds(selection, 'ids');
    return { ids: selection as string[] };
  }
  return checkQuery(selection);
}

/** Whether a letter passes every filter of `query`, ids included (a store's answer is checked again). */
function selector(query: DeadLetterQuery): (letter: DeadLetter) => boolean {
  const ids = query.ids === undefined ? undefined : new Set(query.ids);
  return (letter) => (ids === undefined || ids.has(letter.id)) && deadLetterMatches(query, letter.url, letter.deadAt);
}

/** The `timeoutMs` of drain/close options: a whole number of ms >= 0, or Infinity (wait as long as it takes). */
function timeoutOption(options: DrainOptions | CloseOptions, fallback: number): number {
  const o = checkObject(options, 'options');
  return checkInteger(o.timeoutMs, 'timeoutMs', fallback, { min: 0, allowInfinity: true });
}

interface Waiter {
  check(): void;
}

interface QueuedEvent {
  event: NewEvent;
  resolve(value: { id: string }): void;
  reject(error: unknown): void;
}

/**
 * A durable webhook outbox. Open it with {@link Outbox.open}; after `close()` every method rejects with
 * `ERR_OUTBOX_CLOSED`, except `stats()`, which keeps returning the last figures.
 */
export class Outbox extends EventEmitter<OutboxEventMap> {
  readonly #options: NormalizedOutboxOptions;
  /** What `prepareMessage()` takes: the options, with ordering keys allowed. */
  readonly #prepare: NormalizedOutboxOptions & PrepareOptions;
  readonly #store: OutboxStore;
  readonly #transport: Transport;
  readonly #flusher: Flusher;
  readonly #metrics: OutboxMetrics;
  readonly #waiters = new Set<Waiter>();
  /** Enqueues of this tick, appended together on the next microtask. */
  #batch: QueuedEvent[] = [];
  /** Whether an event of `#batch` came with the caller's own id (then the store checks the batch for duplicates). */
  #batchHasOwnIds = false;
  /** Appends handed to the store and not settled yet. */
  readonly #appending = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #drains = 0;
  #superseded = 0;

  private constructor(options: NormalizedOutboxOptions, store: OutboxStore, transport: Transport) {
    super();
    this.#options = options;
    this.#prepare = { ...options, orderingKeys: true };
    this.#store = store;
    this.#transport = transport;
    this.#metrics = new OutboxMetrics(() => this.stats(), options.name);
    const { clock, timeoutMs, retryOnDnsFailure } = options;
    this.#flusher = new Flusher({
      store,
      clock,
      random: options.random,
      retry: options.retry,
      concurrency: options.concurrency,
      globalConcurrency: options.globalConcurrency,
      limitsOf: options.endpointLimits === undefined ? undefined : (url) => this.#limitsOf(url),
      goneDisablesEndpoint: options.goneDisablesEndpoint,
      deliver: async (event, signal) => {
        const result = await runAttempt(transport, event, { timeoutMs, signal, clock, retryOnDnsFailure });
        // A request that close() abandoned is no attempt: its event stays pending, untouched.
        if (!signal.aborted) this.#metrics.attempt(result);
        return result;
      },
      listener: {
        delivered: (event) => this.#emitSafely('delivered', event),
        retry: (event) => this.#emitSafely('retry', event),
        dead: (event) => {
          this.#metrics.dead(event.reason);
          this.#emitSafely('dead', event);
        },
        superseded: (event) => {
          this.#superseded += 1;
          this.#metrics.superseded();
          this.#emitSafely('superseded', event);
        },
        endpointGone: (event) => this.#emitSafely('endpointGone', event),
        circuit: (event) => this.#emitSafely('circuit', event),
        error: (error) => this.#fault(error),
        progress: () => this.#checkWaiters(),
      },
    });
  }

  /**
   * Opens the store (taking its lock and recovering what a previous process left), and starts the
   * flusher unless `autoFlush: false`. Rejects with `InvalidOptionError` for bad options and
   * `ERR_OUTBOX_LOCKED` when another process owns the directory.
   */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const normalized = normalizeOutboxOptions(options);
    const store =
      normalized.store ??
      new FileStore({
        dir: normalized.dir as string,
        durability: normalized.durability,
        ...(normalized.maxBytes === undefined ? {} : { maxBytes: normalized.maxBytes }),
      });
    await store.open();
    const transport = createTransportStack(normalized);
    const outbox = new Outbox(normalized, store, transport);
    outbox.#store.watch?.(() => {
      outbox.#flusher.poke();
      outbox.#checkWaiters();
    });
    if (normalized.autoFlush) outbox.#flusher.start();
    return outbox;
  }

  /**
   * Validates the message (same rules and codes as `send()`), gives it an id, and resolves with that id
   * once the event is durable. Never waits for delivery. Enqueues made in the same tick are handed to the
   * store as one batch, and the store's group commit writes batches queued meanwhile together.
   */
  enqueue(message: OutboxMessage, options?: EnqueueOptions): Promise<{ id: string }> {
    if (this.#closing !== undefined) return Promise.reject(new OutboxClosedError());
    if (options !== undefined) return this.#enqueueIn(message, options);
    let event: NewEvent;
    try {
      event = this.#newEvent(message);
    } catch (error) {
      return Promise.reject(error);
    }
    if ((message as { id?: unknown }).id !== undefined) this.#batchHasOwnIds = true;
    return new Promise((resolve, reject) => {
      if (this.#batch.push({ event, resolve, reject }) === 1) queueMicrotask(this.#appendBatch);
    });
  }

  #newEvent(message: OutboxMessage): NewEvent {
    const { id, url, headers, body, orderingKey, supersede } = prepareMessage(message, this.#prepare);
    const now = this.#options.clock.now();
    // Built field by field: a spread of the prepared message costs an enqueue a third of its time.
    const event: NewEvent = { id, url, headers, body, createdAt: now, nextAttemptAt: now };
    if (orderingKey !== undefined) event.orderingKey = orderingKey;
    if (supersede === true) event.supersede = true;
    return event;
  }

  async #enqueueIn(message: OutboxMessage, options: EnqueueOptions): Promise<{ id: string }> {
    const o = checkObject(options, 'options');
    checkKnownKeys(o, ['transaction']);
    if (o.transaction === undefined) return this.enqueue(message);
    const appendIn = this.#store.appendIn?.bind(this.#store);
    if (appendIn === undefined) throw new InvalidOptionError('transaction', 'this store cannot write in your transaction (PostgresStore can)');
    const event = this.#newEvent(message);
    await appendIn(o.transaction, [event]);
    // Visible to claims once committed: the store's watch() wakes the flusher then; this poke covers a store without one.
    this.#flusher.poke();
    return { id: event.id };
  }

  /** Counters and per-endpoint state; synchronous and cheap. */
  stats(): OutboxStats {
    const store = this.#store.stats();
    const live = this.#flusher.endpoints();
    const gone = this.#flusher.gone;
    const endpoints: Record<string, EndpointStats> = {};
    for (const url of new Set([...Object.keys(store.endpoints), ...Object.keys(live), ...gone.keys()])) {
      const counters = store.endpoints[url];
      const state = live[url];
      endpoints[url] = {
        pending: counters?.pending ?? 0,
        dead: counters?.dead ?? 0,
        circuit: state?.circuit ?? 'closed',
        concurrency: state?.concurrency ?? this.#options.concurrency,
        inFlight: state?.inFlight ?? 0,
        nextProbeAt: state?.nextProbeAt,
        pausedUntil: state?.pausedUntil,
        goneSince: gone.get(url),
      };
    }
    return {
      pending: store.pending,
      inFlight: this.#flusher.inFlight,
      delivered: store.delivered,
      superseded: this.#superseded,
      dead: store.dead,
      corrupt: store.corrupt,
      oldestPendingAgeMs:
        store.oldestPendingAt === undefined ? undefined : Math.max(0, this.#options.clock.now() - store.oldestPendingAt),
      bytesOnDisk: store.bytesOnDisk,
      endpoints,
    };
  }

  /**
   * Resolves once nothing is pending (due or scheduled later) and nothing is in flight. Runs the flusher
   * while it waits, also when `autoFlush` is false. Rejects with `DrainTimeoutError` (`remaining` = events
   * still pending) after `timeoutMs`. Keeps the process alive while it waits.
   */
  async drain(options: DrainOptions = {}): Promise<void> {
    const timeoutMs = timeoutOption(options, DEFAULT_DRAIN_TIMEOUT_MS);
    if (this.#closing !== undefined) throw new OutboxClosedError();
    this.#drains += 1;
    this.#flusher.start();
    const release = holdProcessOpen();
    try {
      await new Promise<void>((resolve, reject) => {
        const cancel = this.#options.clock.setTimer(() => {
          this.#waiters.delete(waiter);
          reject(new DrainTimeoutError(timeoutMs, this.#store.stats().pending + this.#batch.length));
        }, timeoutMs);
        const done = (): void => {
          cancel();
          this.#waiters.delete(waiter);
        };
        // A shared store is asked itself before the drain resolves (one question at a time); a no or a
        // fault leaves the drain waiting for the next check (its watch() polls).
        let asking = false;
        const waiter: Waiter = {
          check: () => {
            if (!this.#waiters.has(waiter)) return;
            if (this.#closing !== undefined) {
              done();
              reject(new OutboxClosedError('The outbox was closed while draining'));
            } else if (this.#idle() && !asking) {
              const ask = this.#store.hasPending?.bind(this.#store);
              if (ask === undefined) {
                done();
                resolve();
                return;
              }
              asking = true;
              ask().then(
                (pending) => {
                  asking = false;
                  if (!pending && this.#idle() && this.#waiters.has(waiter) && this.#closing === undefined) {
                    done();
                    resolve();
                  }
                },
                () => (asking = false),
              );
            }
          },
        };
        this.#waiters.add(waiter);
        waiter.check();
      });
    } finally {
      release();
      this.#drains -= 1;
      if (this.#drains === 0 && !this.#options.autoFlush) this.#flusher.pause();
    }
  }

  /**
   * Where the event with this id stands, with its payload, attempts and history: `pending` (waiting for its
   * due time, for its ordering key or for a free slot), `in-flight` (a request is out now) or `dead` (with
   * reason and time). `undefined` when the outbox does not hold it: delivered (delivered events are not
   * kept), purged, or never enqueued. Rejects with `ERR_INVALID_OPTION` for a store without `get()`.
   */
  async find(id: string): Promise<FoundEventStatus | undefined> {
    if (typeof id !== 'string' || id.length === 0) throw new InvalidOptionError('id', 'expected the id of an event (a non-empty string)');
    if (this.#closing !== undefined) throw new OutboxClosedError();
    if (this.#store.get === undefined) throw new InvalidOptionError('store', 'this store cannot look up events (it has no get())');
    const found = await this.#store.get(id);
    if (found === undefined || found.state === 'dead') return found;
    // Claimed here is either out now or in the flusher's read-ahead, waiting for a slot; claimed by another
    // outbox sharing the store, it is that one's to send: out, as far as this one can tell.
    const { heldElsewhere, ...event } = found;
    return { ...event, state: found.state === 'claimed' && (heldElsewhere === true || this.#flusher.sending(id)) ? 'in-flight' : 'pending' };
  }

  /**
   * Dead letters, oldest first, with their payload, reason and attempt history: all, or those `query`
   * selects (`ids`, `endpoint` URL, died at or after `since` and before `until`, at most `limit`).
   */
  async deadLetters(query?: DeadLetterQuery): Promise<DeadLetter[]> {
    const q = checkQuery(query);
    if (this.#closing !== undefined) throw new OutboxClosedError();
    return (await this.#store.deadLetters(q)).filter(selector(q));
  }

  /**
   * Runs `act` once on the dead letters `query` selects when it is called (by id: what dies again meanwhile
   * is not chosen again; one the store is busy with is skipped, as with ids). Without filters it hands the
   * ids (or `undefined`: all) to `act` as they are.
   */
  async #forSelected(query: DeadLetterQuery, act: (ids: readonly string[] | undefined) => Promise<number>): Promise<number> {
    if (!filtersDeadLetters(query) && query.limit === undefined) return act(query.ids);
    const store = this.#store;
    // Listed letters are checked again: a store that ignored a filter must not widen what is acted on.
    const { limit: _limit, ...filters } = query;
    const ids =
      store.deadLetterIds === undefined ? (await store.deadLetters(filters)).filter(selector(query)).map((letter) => letter.id) : await store.deadLetterIds(query);
    const chosen = ids.slice(0, query.limit ?? ids.length);
    return chosen.length === 0 ? 0 : act(chosen);
  }

  /**
   * Puts dead letters (all, those `ids`, or those a query selects, as in `deadLetters()`) back in the
   * queue with fresh attempts; resolves with how many. With `url`, they go there from now on (the
   * receiver moved): same id, headers and body.
   */
  async replay(selection?: DeadLetterSelection, options: ReplayOptions = {}): Promise<number> {
    const query = checkSelection(selection);
    const o = checkObject(options, 'options');
    checkKnownKeys(o, ['url']);
    const url = checkUrl(o.url, 'url', this.#options.addressGuard);
    if (url !== undefined) {
      // Every dead letter to one URL would hand each endpoint's events (and credentials) to that one.
      if (query.ids === undefined && query.endpoint === undefined) {
        throw new InvalidOptionError('ids', 'name the dead letters to send to the new URL, or their endpoint (to move all of one endpoint: moveEndpoint())');
      }
      if (this.#store.moveEndpoint === undefined) throw new InvalidOptionError('url', 'this store cannot change where events go (it has no moveEndpoint())');
    }
    if (this.#closing !== undefined) throw new OutboxClosedError();
    const now = this.#options.clock.now();
    const count = await this.#forSelected(query, (ids) => this.#store.replay(ids, now, url));
    this.#flusher.poke();
    return count;
  }

  /**
   * Sends to endpoint `url` again after it answered 410 Gone (its owner brought it back): its events
   * pending now and enqueued from now on are sent. Resolves, with whether it was disabled, once the events
   * given up on before are all written as dead letters (reason `endpoint-gone`): a `replay()` then finds
   * every one. Rejects with `ERR_INVALID_OPTION` for a value that is not a URL.
   */
  async enableEndpoint(url: string): Promise<boolean> {
    const checked = checkUrl(url, 'url');
    if (checked === undefined) throw new InvalidOptionError('url', 'expected an http(s) URL, got undefined');
    if (this.#closing !== undefined) throw new OutboxClosedError();
    const was = this.#flusher.enable(checked);
    this.#flusher.poke();
    // Each burial ends in its outcome written or the event handed back (after a store fault).
    while (this.#flusher.burying(checked)) await this.#progress(1_000);
    return was;
  }

  /**
   * Sends everything queued for endpoint URL `from` to `to` from now on (the receiver moved): pending
   * events are due at once with their attempts reset (their age, for `retry.maxAgeMs`, goes on), dead
   * letters stay dead but replay to `to`. Durable, like a replay's URL. Requests to `from` in flight finish
   * first (waiting up to `timeoutMs`, default 30 s); if one fails, its event moves too. Events read ahead
   * for `from` are handed back and moved. Resolves with how many events moved; what is still at `from`
   * then (a request in flight past `timeoutMs`, events enqueued for `from` meanwhile, an unreadable
   * event) stays there: `stats().endpoints` tells. Rejects with `ERR_INVALID_OPTION` for a bad URL or timeout, or
   * a store without `moveEndpoint()`; with `ERR_OUTBOX_CLOSED` after `close()`.
   */
  async moveEndpoint(from: string, to: string, options: DrainOptions = {}): Promise<number> {
    const fromUrl = checkUrl(from, 'from');
    const toUrl = checkUrl(to, 'to', this.#options.addressGuard);
    if (fromUrl === undefined || toUrl === undefined) throw new InvalidOptionError(fromUrl === undefined ? 'from' : 'to', 'expected an http(s) URL, got undefined');
    const timeoutMs = timeoutOption(options, DEFAULT_DRAIN_TIMEOUT_MS);
    if (this.#closing !== undefined) throw new OutboxClosedError();
    const store = this.#store;
    if (store.moveEndpoint === undefined) throw new InvalidOptionError('store', 'this store cannot move endpoints (it has no moveEndpoint())');
    const { clock } = this.#options;
    const deadline = clock.now() + timeoutMs;
    const release = holdProcessOpen();
    try {
      await this.#flusher.hold(fromUrl);
      let moved = 0;
      for (;;) {
        if (this.#closing !== undefined) return moved;
        moved += await store.moveEndpoint(fromUrl, toUrl, clock.now());
        const left = store.stats().endpoints[fromUrl];
        if (left === undefined || left.pending + left.dead === 0 || clock.now() >= deadline || this.#closing !== undefined) return moved;
        // What is left is in flight, or has its outcome being written: try again after the next outcome.
        // Anything else (enqueued for `from` meanwhile, unreadable) stays.
        if (!this.#flusher.busyWith(fromUrl)) return moved;
        await this.#progress(deadline - clock.now());
      }
    } finally {
      this.#flusher.unhold(fromUrl);
      release();
    }
  }

  /** Resolves after the flusher's next progress, or after `ms`. */
  #progress(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        cancel();
        this.#waiters.delete(waiter);
        resolve();
      };
      const waiter: Waiter = { check: done };
      const cancel = this.#options.clock.setTimer(done, Math.max(0, ms));
      this.#waiters.add(waiter);
    });
  }

  /**
   * Deletes dead letters (all, those `ids`, or those a query selects, as in `deadLetters()`) for good;
   * resolves with how many.
   */
  async purge(selection?: DeadLetterSelection): Promise<number> {
    const query = checkSelection(selection);
    if (this.#closing !== undefined) throw new OutboxClosedError();
    return this.#forSelected(query, (ids) => this.#store.purge(ids));
  }

  /**
   * Stops intake (`enqueue()` rejects with `ERR_OUTBOX_CLOSED`), waits for enqueues being written, lets
   * in-flight requests finish for up to `timeoutMs` (the rest are abandoned and stay pending on disk),
   * then closes the store (fsync, lock released) and the transport. Idempotent: every call returns the
   * same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing === undefined) {
      let timeoutMs: number;
      try {
        timeoutMs = timeoutOption(options, DEFAULT_CLOSE_TIMEOUT_MS);
      } catch (error) {
        return Promise.reject(error);
      }
      this.#closing = this.#shutdown(timeoutMs);
      // Only now that closing is visible: a drain() waiting for the outbox rejects at once.
      this.#checkWaiters();
    }
    return this.#closing;
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    // Every wait ends by the deadline (the writes after the requests get CLOSE_GRACE_MS more): a store call
    // that never answers (a network partition, a database lock wait) must not hold close() for good. What
    // is abandoned stays in the store: at worst an event is sent again, never lost.
    const { clock } = this.#options;
    const deadline = clock.now() + timeoutMs;
    const bounded = (work: Promise<unknown>, graceMs = 0): Promise<void> => this.#within(work, deadline - clock.now() + graceMs);
    this.#appendBatch();
    await bounded(Promise.all(this.#appending));
    await bounded(this.#flusher.stop(timeoutMs), CLOSE_GRACE_MS);
    this.#metrics.close();
    try {
      await bounded(this.#store.close(), CLOSE_GRACE_MS);
    } finally {
      await this.#transport.close?.();
    }
  }

  /** Resolves when `work` settles (rejects with its error), or after `ms`, whichever comes first. */
  #within(work: Promise<unknown>, ms: number): Promise<void> {
    if (!Number.isFinite(ms)) return work.then(() => undefined);
    return new Promise<void>((resolve, reject) => {
      const cancel = this.#options.clock.setTimer(resolve, Math.max(0, ms));
      work.then(
        () => {
          cancel();
          resolve();
        },
        (error: unknown) => {
          cancel();
          reject(error);
        },
      );
    });
  }

  /** Checked after every outcome while a drain waits: the store's stats (one entry per endpoint) come last. */
  #idle(): boolean {
    return (
      this.#flusher.inFlight === 0 &&
      this.#flusher.settling === 0 &&
      this.#appending.size === 0 &&
      this.#batch.length === 0 &&
      this.#store.stats().pending === 0
    );
  }

  #checkWaiters(): void {
    for (const waiter of [...this.#waiters]) waiter.check();
  }

  /**
   * Hands this tick's enqueues to the store without waiting for earlier appends, so a batch is encoded
   * while the previous one is being synced.
   */
  readonly #appendBatch = (): void => {
    const batch = this.#batch;
    if (batch.length === 0) return;
    const newIds = !this.#batchHasOwnIds;
    this.#batch = [];
    this.#batchHasOwnIds = false;
    const events = new Array<NewEvent>(batch.length);
    for (let i = 0; i < batch.length; i++) events[i] = (batch[i] as QueuedEvent).event;
    let appended: Promise<void>;
    try {
      // Ids made by prepareMessage() are fresh ULIDs nobody has seen yet: the store may skip its duplicate check.
      appended = this.#store.append(events, { newIds });
    } catch (error) {
      appended = Promise.reject(error);
    }
    const settled: Promise<void> = appended.then(
      () => {
        this.#appending.delete(settled);
        this.#flusher.poke();
        for (const entry of batch) entry.resolve({ id: entry.event.id });
        this.#checkWaiters();
      },
      async (error: unknown) => {
        // The enqueues of one tick went to the store together; when together they do not fit, each
        // caller still gets its own verdict: they are appended one by one, in order.
        if (error instanceof OutboxFullError && batch.length > 1) await this.#appendOneByOne(batch, newIds);
        else for (const entry of batch) entry.reject(error);
        this.#appending.delete(settled);
        this.#checkWaiters();
      },
    );
    this.#appending.add(settled);
  };

  async #appendOneByOne(batch: readonly QueuedEvent[], newIds: boolean): Promise<void> {
    for (const entry of batch) {
      try {
        await this.#store.append([entry.event], { newIds });
        this.#flusher.poke();
        entry.resolve({ id: entry.event.id });
      } catch (error) {
        entry.reject(error);
      }
    }
  }

  #emitSafely<K extends 'delivered' | 'retry' | 'dead' | 'superseded' | 'endpointGone' | 'circuit'>(name: K, event: OutboxEventMap[K][0]): void {
    try {
      (this.emit as (name: K, event: OutboxEventMap[K][0]) => boolean)(name, event);
    } catch (error) {
      // A throwing listener is the app's bug: surface it like any listener error, outside our bookkeeping.
      process.nextTick(() => {
        throw error;
      });
    }
  }

  /**
   * The `endpointLimits` function's answer for `url`, checked; the defaults (and an `'error'`) when it threw
   * or answered what is not limits: delivery goes on either way.
   */
  #limitsOf(url: string): EndpointLimits | undefined {
    try {
      return checkEndpointLimits(this.#options.endpointLimits?.(url));
    } catch (error) {
      const cause = error instanceof InvalidOptionError ? error : new InvalidOptionError('endpointLimits', 'the function threw (see cause)', { cause: error });
      this.#fault(cause);
      return undefined;
    }
  }

  #fault(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(err);
  }
}
