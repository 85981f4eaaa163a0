/**
 * The `OutboxStore` port: where accepted events live until they are delivered or given up on.
 *
 * Contract (every implementation passes `test/store/contract.ts`):
 * - `append()` resolves only once every event of the batch is durable to the store's own promise
 *   (fsync for `FileStore` by default). If it rejects, the caller treats the batch as not accepted; an
 *   event of a rejected batch may still reappear after a crash mid-write (an accepted event never
 *   disappears; a rejected one may come back). It rejects with `ERR_OUTBOX_FULL` when accepting the batch would
 *   exceed the store's byte limit, and `ERR_STORE_IO` on an I/O failure. Ids are unique: appending an id
 *   that is already pending or dead is a no-op for that event (the first copy wins).
 * - `claim()` hands out due events (`nextAttemptAt <= now`) that are not already claimed, oldest due
 *   first, at most `limit`, skipping `excludeEndpoints`. A claim is an in-memory lease of this process
 *   (a shared store such as Postgres makes it a lease with an expiry); it is not persisted, so after a
 *   crash every claimed event is pending again. Of the pending events with the same `orderingKey`, only
 *   the one appended first is due, and only while no event of that key is claimed: a key's events go one
 *   at a time, in append order. A dead letter does not hold its key up; replayed, it takes its original
 *   place again (before later events of its key that are still pending). When a key's next event is
 *   claimed while a later-appended event of its key with `supersede: true` is pending (claimed or not),
 *   and the latest such event goes to the same URL as it (a superseder never removes an event to another
 *   URL), it is handed out with `supersededBy` set (the id of that latest event) instead of to be sent;
 *   the key's waiting events right after it that the same event supersedes may come in the same claim
 *   (marked too, within `limit`), and the key's next is then held back until all of them ended.
 *   Marking is optional: a store that never marks anything is correct (every event is then sent).
 * - `settle()` records outcomes for claimed events and resolves once they would survive the process being
 *   killed (a store may defer their fsync: losing an outcome repeats work, it never loses an event). `delivered`
 *   removes the event; `retry` keeps it pending with a new attempt count and due time; `dead` moves it to
 *   the dead letters; `release` returns it unchanged (nothing is written); `superseded` removes it like
 *   `delivered` (without counting it as delivered). Only an event handed out with `supersededBy` is
 *   settled `superseded`.
 * - Dead letters are kept until `purge()`; `replay()` makes them pending again with attempts reset, and
 *   with a `url` sends them there from now on (the event keeps its id, headers and body; a new URL
 *   survives a restart).
 * - `stats()` is synchronous and cheap (counters kept in memory).
 * - After `close()` every method rejects with `ERR_OUTBOX_CLOSED`; `close()` itself is idempotent.
 */
export interface OutboxStore {
  /** Opens (or creates) the store: takes locks, recovers, builds indexes. Called once by `Outbox.open()`. */
  open(): Promise<void>;
  /** Durably accepts a batch of new events. See the contract above. */
  append(events: readonly NewEvent[], options?: AppendOptions): Promise<void>;
  /**
   * Optional: appends inside the caller's own database transaction (`transaction` is the store's kind of
   * connection, for example a pg client after `BEGIN`): the events exist once it commits and never if it
   * rolls back. Resolves once they are written in it. Without it, `Outbox.enqueue(message, { transaction })`
   * rejects.
   */
  appendIn?(transaction: unknown, events: readonly NewEvent[]): Promise<void>;
  /**
   * Optional, for a store that others write to too (other processes, transactions that commit later): the
   * outbox registers `onChange` once after `open()`, and the store calls it when events may have appeared or
   * changed outside this instance. The outbox then claims again and re-reads `stats()` for `drain()`.
   */
  watch?(onChange: () => void): void;
  /**
   * Optional, with {@link watch}: whether any event is pending now (claimed or not, by anyone), read from
   * the store itself. `drain()` asks it before resolving, since a shared store's `stats()` may be a poll
   * behind (a transaction that committed since).
   */
  hasPending?(): Promise<boolean>;
  /** Leases up to `limit` due events. */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Records the outcome of claimed events (see the contract above for how durable). */
  settle(outcomes: readonly Outcome[]): Promise<void>;
  /** Lists dead letters, oldest first, with their payload and attempt history. */
  deadLetters(query?: DeadLetterQuery): Promise<DeadLetter[]>;
  /**
   * Optional: the ids `deadLetters(query)` would list, without reading payloads. The outbox replays and
   * purges a query's selection by these ids (without it, it lists the letters first).
   */
  deadLetterIds?(query: DeadLetterQuery): Promise<string[]>;
  /**
   * Makes dead letters pending again (all of them when `ids` is omitted), to `url` when given (an absolute
   * http(s) URL the caller checked; only passed to a store with {@link moveEndpoint}, which must honour it);
   * resolves with how many.
   */
  replay(ids?: readonly string[], now?: number, url?: string): Promise<number>;
  /**
   * Sends every pending (not claimed) and dead event of endpoint URL `from` to `to` from now on (durably,
   * like a replay's URL): pending ones due at once with their attempts reset, dead ones stay dead.
   * Events claimed at the time stay at `from`. Resolves with how many moved. Optional: a store without it
   * cannot move endpoints (`Outbox.moveEndpoint()` then rejects).
   */
  moveEndpoint?(from: string, to: string, now?: number): Promise<number>;
  /**
   * Optional: the event with this id, with its payload and where it stands (pending, claimed or dead), or
   * `undefined` when the store does not hold it (delivered, purged, or never appended). Without it,
   * `Outbox.find()` rejects.
   */
  get?(id: string): Promise<FoundEvent | undefined>;
  /** Deletes dead letters for good (all of them when `ids` is omitted); resolves with how many. */
  purge(ids?: readonly string[]): Promise<number>;
  /** Counters, kept in memory. */
  stats(): StoreStats;
  /** Makes everything written so far durable and releases locks and handles. Idempotent. */
  close(): Promise<void>;
}

/** Hints for `append()`; a store may ignore every one of them. */
export interface AppendOptions {
  /**
   * The caller made every id of this batch itself, distinct and never handed out before, so none can be
   * pending, dead or in another `append()` (`Outbox.enqueue()` sets it for a batch of ids it generated). A
   * store may skip its duplicate check for the batch; doing the check anyway is always correct.
   */
  newIds?: boolean;
}

/** One summarised delivery attempt, as kept in an event's history. Never contains secrets. */
export interface AttemptRecord {
  /** When the attempt started (ms since epoch). */
  at: number;
  /** How long it took (ms). */
  durationMs: number;
  /** The HTTP status, when the receiver answered. */
  status?: number;
  /** Error code or short description when there was no 2xx (e.g. `ECONNREFUSED`, `ERR_TIMEOUT`, `HTTP 503`). */
  error?: string;
}

/** An event as accepted by `append()`: already validated, serialised and given an id. */
export interface NewEvent {
  /** The event id, sent as `webhook-id`. Unique within the store. */
  id: string;
  /** Absolute target URL. Events are grouped into endpoints by this exact string. */
  url: string;
  /** Request headers to send (lower-case names), not including the per-attempt signature headers. */
  headers: Record<string, string>;
  /** The exact body bytes. */
  body: Uint8Array;
  /** When it was accepted (ms since epoch); `maxAgeMs` counts from here. */
  createdAt: number;
  /** When it may first be attempted; usually `createdAt`. */
  nextAttemptAt: number;
  /**
   * Events with the same ordering key are handed out one at a time, in the order they were appended: the
   * next only once the claim of the one before ended in delivery or death (see {@link OutboxStore.claim}).
   */
  orderingKey?: string;
  /**
   * Latest state wins (only with an `orderingKey`): while this event is pending, an earlier-appended event
   * of its key is not sent when its turn comes; `claim()` hands it out with {@link StoredEvent.supersededBy}
   * set and the caller settles it as `superseded`. A store that does not know the flag must still keep it
   * (it never marks anything then: every event is sent, which is correct, only slower).
   */
  supersede?: boolean;
}

/** A pending event with its retry state. */
export interface StoredEvent extends NewEvent {
  /** Attempts made so far (0 for a fresh event). */
  attempts: number;
  /** The last attempts (at most {@link MAX_HISTORY}), oldest first. */
  history: AttemptRecord[];
  /**
   * Set only on an event `claim()` hands out: the id of a later-appended pending event of its key with
   * `supersede: true`. The event must not be sent; the caller settles it as `superseded`. Never stored.
   */
  supersededBy?: string;
}

/** How many attempts an event's history keeps. */
export const MAX_HISTORY = 10;

/** Arguments of {@link OutboxStore.claim}. */
export interface ClaimRequest {
  /** Maximum number of events to return. */
  limit: number;
  /** Current time (ms since epoch); only events with `nextAttemptAt <= now` are due. */
  now: number;
  /** Endpoint URLs whose events must not be returned (for example, their circuit is open). */
  excludeEndpoints?: ReadonlySet<string>;
  /** Only return events of this endpoint URL. */
  endpoint?: string;
}

/** What {@link OutboxStore.claim} returns. */
export interface ClaimResult {
  events: StoredEvent[];
  /**
   * The earliest `nextAttemptAt` among pending, unclaimed events that match the request's endpoint filters
   * and were not returned; `undefined` when there are none. Lets the flusher sleep until then.
   */
  nextDueAt: number | undefined;
}

/** The outcome of one claimed event. */
export type Outcome =
  | { id: string; type: 'delivered'; attempt: AttemptRecord }
  | { id: string; type: 'retry'; attempt: AttemptRecord; nextAttemptAt: number; countsAsAttempt: boolean }
  | { id: string; type: 'dead'; attempt?: AttemptRecord; reason: DeadReason; at: number }
  | { id: string; type: 'release' }
  | { id: string; type: 'superseded'; by?: string };

/**
 * Why an event was given up on: a permanent answer, its age or attempts used up, a request that could not be
 * made, or (unsent) its endpoint answered another event with 410 Gone.
 */
export type DeadReason = 'http-status' | 'max-age' | 'max-attempts' | 'invalid' | 'endpoint-gone';

/** A dead letter: the full request and why it was given up on. */
export interface DeadLetter extends StoredEvent {
  reason: DeadReason;
  /** When it was moved to the dead letters (ms since epoch). */
  deadAt: number;
}

/**
 * What {@link OutboxStore.get} found: the event, and whether it is pending, claimed or dead (then why and
 * when). `heldElsewhere`: claimed by another instance sharing the store (another process's flusher).
 */
export type FoundEvent = (StoredEvent & { state: 'pending' | 'claimed'; heldElsewhere?: boolean }) | (DeadLetter & { state: 'dead' });

/** Arguments of {@link OutboxStore.deadLetters}. */
export interface DeadLetterQuery {
  /** Only these ids. */
  ids?: readonly string[];
  /** Only dead letters that go to this endpoint URL (exactly as in `stats().endpoints`). */
  endpoint?: string;
  /** Only those that died at or after this time (ms since epoch). */
  since?: number;
  /** Only those that died before this time (ms since epoch). */
  until?: number;
  /** At most this many (default: all). */
  limit?: number;
}

/** Per-endpoint counters. */
export interface EndpointStoreStats {
  pending: number;
  dead: number;
}

/** Store counters, kept in memory and cheap to read. */
export interface StoreStats {
  /** Events waiting to be delivered, including claimed ones. */
  pending: number;
  /** Events currently claimed. */
  claimed: number;
  /** Events delivered since the store was opened. */
  delivered: number;
  /** Dead letters kept. */
  dead: number;
  /** Records skipped on recovery because their checksum or framing was bad. */
  corrupt: number;
  /** `createdAt` of the oldest pending event, or `undefined`. */
  oldestPendingAt: number | undefined;
  /** Bytes the store occupies on disk (0 for memory stores). */
  bytesOnDisk: number;
  /** Counters per endpoint URL. */
  endpoints: Record<string, EndpointStoreStats>;
}
