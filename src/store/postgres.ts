import { createHash, randomUUID } from 'node:crypto';
import { InvalidMessageError, InvalidOptionError, OutboxClosedError, StoreIoError, WebhookOutboxError } from '../errors.js';
import type {
  AppendOptions,
  AttemptRecord,
  ClaimRequest,
  ClaimResult,
  DeadLetter,
  DeadLetterQuery,
  DeadReason,
  EndpointStoreStats,
  FoundEvent,
  NewEvent,
  OutboxStore,
  Outcome,
  StoredEvent,
  StoreStats,
} from './store.js';
import { assertNewEvents, assertPositiveInteger, withAttempt } from './validate.js';

/**
 * A statement as node-postgres' `query(config)` takes it. `name`: a prepared statement of that name on the
 * connection (parsed once per connection; see `preparedStatements`).
 */
export interface PostgresQuery {
  text: string;
  values?: unknown[];
  name?: string;
}

/** A connection as {@link PostgresStore} uses it: node-postgres' `query(config)`. */
export interface PostgresQueryable {
  query(query: PostgresQuery): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
}

/** What {@link PostgresStore} needs of a pool: a `pg.Pool` (node-postgres 8) has it. */
export interface PostgresPool extends PostgresQueryable {
  /** A client of its own, for the store's transactions; released with the error that broke it, if one did. */
  connect(): Promise<PostgresQueryable & { release(error?: Error | boolean): void }>;
}

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** Where the store's statements go: a `pg.Pool` (node-postgres 8). Yours to end. */
  pool: PostgresPool;
  /**
   * The table (created with its indexes by `open()` when missing), optionally `schema.table`: lower-case
   * letters, digits and `_`. Every outbox sharing a table shares its events.
   * @default 'webhook_outbox'
   */
  table?: string;
  /**
   * How long a claim holds an event before another flusher may take it (the holder died): renewed at every
   * poll while held, so it only matters after a crash. At least 3 x `pollIntervalMs`.
   * @default 60_000
   */
  leaseMs?: number;
  /**
   * How often the store looks for events written by other processes or by transactions that committed
   * (then the outbox claims them), renews its leases and refreshes `stats()`.
   * @default 500
   */
  pollIntervalMs?: number;
  /**
   * Sends the store's statements as named prepared statements, which each connection parses once (and
   * PostgreSQL may plan once): about a third less database CPU per event. Set false behind a pooler that
   * does not keep prepared statements across transactions (PgBouncer before 1.21, or with
   * `max_prepared_statements = 0`, in transaction mode): it answers "prepared statement ... does not exist"
   * (or "already exists"). The store also stops preparing at the first such answer and runs the statement again, but a
   * transactional `enqueue()` that meets it fails (your transaction with it).
   * @default true
   */
  preparedStatements?: boolean;
}

/** What {@link PostgresStore.inspect} reports about a table, without creating, locking or leasing anything. */
export interface PostgresStoreInspection {
  /**
   * Counters of the whole table; `claimed` counts the events any flusher holds a live lease on, `delivered`
   * nothing (it is per open), `bytesOnDisk` the table with its indexes.
   */
  stats: StoreStats;
  /** Dead letters, oldest first. */
  deadLetters: DeadLetter[];
  /** The event `find` named, when the table holds it. */
  found?: FoundEvent | undefined;
}

/** Options of {@link PostgresStore.inspect}. */
export interface PostgresInspectOptions {
  /**
   * The table, as for {@link PostgresStoreOptions.table}. It must exist: `inspect()` never creates it.
   * @default 'webhook_outbox'
   */
  table?: string;
  /**
   * Which dead letters to read (`{ limit: 0 }`: none).
   * @default {} (all of them)
   */
  deadLetters?: DeadLetterQuery;
  /** An event id to look up (`found`). */
  find?: string;
}

const TABLE_NAME = /^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/;
const REASONS: readonly DeadReason[] = ['http-status', 'max-age', 'max-attempts', 'invalid', 'endpoint-gone'];

/** A claimed event as this store remembers it until its outcome: what `settle()` needs to write. */
interface Held {
  attempts: number;
  history: AttemptRecord[];
  url: string;
  createdAt: number;
  orderingKey: string | undefined;
  /**
   * Set when a write of its outcome failed: its lease is no longer renewed, so it runs out by this time
   * (ms, this process's clock) unless an outcome is written before; then the hold is forgotten.
   */
  lapsesAt?: number;
}

/**
 * Above this many pending events of excluded endpoints (their circuit is open), a claim looks endpoint by
 * endpoint instead of walking the due-time index past all of them.
 */
const EXCLUDED_SCAN_LIMIT = 1_000;
/** The first and the last delay of the quick looks after a transactional enqueue (each three times the one before). */
const LOOK_FIRST_MS = 2;
const LOOK_LAST_MS = 486;
/** Fewest rows for which the store runs ANALYZE itself (see `#analyzeWhenStale`). */
const ANALYZE_MIN_ROWS = 1_000;
/** How many times more rows than the planner believes the table has make its statistics stale. */
const STALE_RATIO = 10;

/**
 * An `OutboxStore` in a PostgreSQL table, shared by every outbox that opens it: flushers on many machines
 * claim with `FOR UPDATE SKIP LOCKED` and leases with an expiry (in the database's clock), so a flusher that
 * dies gives its events back after `leaseMs`. `Outbox.enqueue(message, { transaction })` writes an event in
 * your own transaction: it exists if and only if that transaction commits (the transactional outbox).
 * Durable as PostgreSQL's commit is (`synchronous_commit`).
 */
export class PostgresStore implements OutboxStore {
  readonly #pool: PostgresPool;
  readonly #leaseMs: number;
  readonly #pollIntervalMs: number;
  readonly #sql: ReturnType<typeof statements>;
  readonly #table: string;
  /** Names of the prepared statements, by text; undefined when statements are not prepared. */
  #names: Map<string, string> | undefined;
  /** This instance's name on its leases. */
  readonly #owner = randomUUID();
  readonly #held = new Map<string, Held>();
  /** Keys whose heads are to be re-judged once their locks are free (a transaction enqueueing to one is open). */
  readonly #headsDue = new Set<string>();
  /** Claims and settles under way, which close() waits for. */
  readonly #calls = new Set<Promise<unknown>>();
  #endpoints = new Map<string, EndpointStoreStats>();
  #oldestPendingAt: number | undefined;
  #bytes = 0;
  #delivered = 0;
  /** Appends counted while a stats refresh was reading (the refresh may not have seen them): per URL. */
  #appendedDuringRefresh: Map<string, number> | undefined;
  #nextRefreshAt = 0;
  /** Rows (pending and dead) at the last count. */
  #rows = 0;
  /** No ANALYZE before the table holds this many rows (ten times those at the last one this store tried). */
  #analyzeAbove = 0;
  /** The store's ANALYZE under way, if any. */
  #analyzing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The next quick look after a transactional enqueue (see `#lookSoon`); `again`: another came since. */
  #soon: { timer: NodeJS.Timeout; again: boolean } | undefined;
  #onChange: (() => void) | undefined;
  #ticking: Promise<void> | undefined;
  #opened = false;
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'expected { pool, table?, leaseMs?, pollIntervalMs?, preparedStatements? }');
    for (const key of Object.keys(options)) {
      if (!['pool', 'table', 'leaseMs', 'pollIntervalMs', 'preparedStatements'].includes(key)) throw new InvalidOptionError(key, 'unknown option of PostgresStore');
    }
    if (typeof options.pool?.query !== 'function' || typeof options.pool.connect !== 'function') {
      throw new InvalidOptionError('pool', 'expected a pg.Pool (node-postgres): query(config) and connect()');
    }
    if (options.preparedStatements !== undefined && typeof options.preparedStatements !== 'boolean') {
      throw new InvalidOptionError('preparedStatements', `expected true or false, got ${typeof options.preparedStatements}`);
    }
    this.#names = options.preparedStatements === false ? undefined : new Map();
    const table = options.table ?? 'webhook_outbox';
    if (typeof table !== 'string' || !TABLE_NAME.test(table)) {
      throw new InvalidOptionError('table', 'expected a table name (lower-case letters, digits and _, at most 63), optionally schema.table');
    }
    assertPositiveInteger('leaseMs', options.leaseMs);
    assertPositiveInteger('pollIntervalMs', options.pollIntervalMs);
    this.#pool = options.pool;
    this.#table = table;
    this.#leaseMs = options.leaseMs ?? 60_000;
    this.#pollIntervalMs = options.pollIntervalMs ?? 500;
    if (this.#pollIntervalMs > 2_147_483_647) throw new InvalidOptionError('pollIntervalMs', 'must be at most 2147483647 (a timer)');
    // Leases are renewed at every poll: a few polls must fit in one.
    if (this.#pollIntervalMs * 3 > this.#leaseMs) throw new InvalidOptionError('leaseMs', `must be at least 3 x pollIntervalMs (${3 * this.#pollIntervalMs}), got ${this.#leaseMs}`);
    this.#sql = statements(table);
  }

  /**
   * Reads a table that outboxes use, for `webhook-outbox status`, `show` and `dead list`: counters, dead
   * letters (those `options.deadLetters` selects, all by default) and the event `options.find`, with
   * plain reads only. Unlike `open()` it creates nothing (no DDL, so no lock that would queue behind the
   * app's open transactions, and no privilege beyond `SELECT`), holds no lease and repairs nothing.
   * Rejects with `ERR_INVALID_OPTION` (option `table`) when the table does not exist or is not an outbox
   * table, `ERR_STORE_IO` when the database fails.
   */
  static async inspect(pool: PostgresPool, options: PostgresInspectOptions = {}): Promise<PostgresStoreInspection> {
    // Each statement runs once: nothing to gain from preparing them, and it works behind any pooler.
    const store = new PostgresStore({ pool, preparedStatements: false, ...(options.table === undefined ? {} : { table: options.table }) });
    try {
      const row = (await store.#run(store.#sql.verify, [store.#sql.table])).rows[0];
      if (row === undefined) throw new InvalidOptionError('table', `there is no table "${store.#table}" in this database (an outbox creates it when it opens)`);
      if (row.kind !== 'r' || row.ours !== true) throw new InvalidOptionError('table', `"${store.#table}" is not a webhook-outbox table (of this version)`);
      await store.#count();
      const stats = store.stats();
      stats.claimed = Number((await store.#run(store.#sql.leased)).rows[0]?.n ?? 0);
      const deadLetters = await store.deadLetters(options.deadLetters);
      const found = options.find === undefined ? undefined : await store.get(options.find);
      return { stats, deadLetters, found };
    } finally {
      await store.close();
    }
  }

  /** Creates the table and its indexes when missing (once, however many processes open it at once), reads the counters. */
  async open(): Promise<void> {
    this.#assertOpen();
    if (this.#opened) return;
    // A relation of that name that is not an outbox table (another outbox's index, say) is named as such,
    // before CREATE ... IF NOT EXISTS skips it and an index on it fails with a confusing error. A complete
    // outbox table gets no DDL at all: CREATE INDEX IF NOT EXISTS locks the table (SHARE) before it finds
    // the index there, so it would wait for every open transaction that wrote to it (an app's that enqueued)
    // while every insert and claim waited behind it.
    if (!(await this.#verify(false))) {
      await this.#run(this.#sql.create);
      await this.#verify(true);
    }
    await this.#refresh(true);
    this.#opened = true;
    this.#timer = setInterval(() => void this.#tick(), this.#pollIntervalMs);
    this.#timer.unref();
  }

  /**
   * `CREATE ... IF NOT EXISTS` skips a name that is taken: checks that the table is an outbox table and
   * has every index, so a name clash fails open() instead of leaving a table without its index. Resolves
   * whether the table exists with every index (before the create: whether it is needed).
   */
  async #verify(created: boolean): Promise<boolean> {
    const row = (await this.#run(this.#sql.verify, [this.#sql.table])).rows[0];
    if (row === undefined && !created) return false;
    if (row?.kind !== 'r' || row.ours !== true) {
      throw new InvalidOptionError('table', `"${this.#table}" exists and is not a webhook-outbox table (of this version); choose another name`);
    }
    const has = new Set(row.indexes as string[] | null);
    const missing = this.#sql.indexes.filter((index) => !has.has(index));
    // Before the create, an outbox table may lack an index the create is about to add.
    if (missing.length > 0 && created) {
      throw new InvalidOptionError('table', `the index ${missing.join(', ')} of "${this.#table}" could not be made: another relation has that name; choose another table name`);
    }
    return missing.length === 0;
  }

  /** Calls `onChange` after every poll: events may have come from another process or a committed transaction. */
  watch(onChange: () => void): void {
    this.#onChange = onChange;
  }

  /**
   * Whether any event of the table is pending now (held or not, by any flusher): asked by `drain()` before
   * it resolves, since `stats()` may be a poll behind (a transaction that committed since, say).
   */
  async hasPending(): Promise<boolean> {
    this.#assertOpen();
    const { rows } = await this.#run(this.#sql.hasPending);
    return rows[0]?.any === true;
  }

  /** Inserts the batch in one statement; ids already in the table are skipped. Durable once PostgreSQL committed it. */
  async append(events: readonly NewEvent[], _options?: AppendOptions): Promise<void> {
    await this.#insert(undefined, events);
  }

  /**
   * Inserts the batch with `transaction`, a client of yours inside `BEGIN`: the events exist once it
   * commits, and never if it rolls back. Resolves once the insert ran (not committed yet).
   */
  async appendIn(transaction: unknown, events: readonly NewEvent[]): Promise<void> {
    if (typeof (transaction as PostgresQueryable | null)?.query !== 'function') {
      throw new InvalidOptionError('transaction', 'expected the client of your open transaction (pool.connect(), then BEGIN)');
    }
    await this.#insert(transaction as PostgresQueryable, events);
    this.#lookSoon();
  }

  /**
   * The app commits its transaction soon after the enqueue, mostly within milliseconds: the outbox is told
   * to look again after 2 ms, then after delays growing threefold up to 486 ms (about 0.7 s in all; from 2
   * ms again after another transactional enqueue), not left to the next poll. A commit 5 ms after the
   * enqueue reached the receiver 390-490 ms later with the default poll, 12-25 ms (median) with these.
   */
  #lookSoon(): void {
    if (this.#soon !== undefined) this.#soon.again = true;
    else this.#look(LOOK_FIRST_MS);
  }

  #look(delay: number): void {
    const soon = {
      again: false,
      timer: setTimeout(() => {
        this.#soon = undefined;
        if (this.#closed) return;
        this.#onChange?.();
        if (soon.again) this.#look(LOOK_FIRST_MS);
        else if (delay < LOOK_LAST_MS) this.#look(delay * 3);
      }, delay),
    };
    soon.timer.unref();
    this.#soon = soon;
  }

  /**
   * In the caller's transaction, which its client must be inside: the insert runs only in the transaction
   * the statement before it ran in (outside BEGIN, each statement is one of its own).
   */
  async #insertIn(on: PostgresQueryable, events: readonly NewEvent[], keys: readonly string[]): Promise<Record<string, unknown>[]> {
    const first = (await this.#run(this.#sql.xid, undefined, on)).rows[0];
    const xid = first?.xid as string;
    // A key's first pending event is judged on what is committed when the statement runs: an older
    // snapshot (repeatable read, serializable) would judge on what was true before.
    if (keys.length > 0 && first?.isolation !== 'read committed') {
      throw new InvalidOptionError('transaction', `events with an orderingKey need a READ COMMITTED transaction (PostgreSQL's default), not ${String(first?.isolation)}; nothing was written`);
    }
    const { rows } = await this.#run(this.#sql.insertIn, [...columnsOf(events), xid], on);
    if (rows.length < events.length && (await this.#run(this.#sql.xid, undefined, on)).rows[0]?.xid !== xid) {
      throw new InvalidOptionError('transaction', 'this client is not inside a transaction: run BEGIN on it first (nothing was written)');
    }
    // Never waits: the keys whose locks are free are judged in the caller's transaction (and held until it
    // ends, so whoever changes them meanwhile judges them again afterwards); the others at a later poll.
    if (keys.length > 0) await this.#headsWhenFree(keys, on);
    return rows;
  }

  /**
   * Inserts the events, on `transaction` (the caller's) or on the pool, in one statement. Events with an
   * ordering key go in parked; their keys' heads are judged right after (see {@link PostgresStore.#heads}).
   */
  async #insert(transaction: PostgresQueryable | undefined, events: readonly NewEvent[]): Promise<void> {
    this.#assertOpen();
    assertNewEvents(events);
    for (const event of events) assertStorable(event);
    if (events.length === 0) return;
    const keys = [...new Set(events.flatMap((event) => (event.orderingKey === undefined ? [] : [event.orderingKey])))];
    let rows: Record<string, unknown>[];
    if (transaction !== undefined) rows = await this.#insertIn(transaction, events, keys);
    else {
      rows = (await this.#run(this.#sql.insert, columnsOf(events))).rows;
      if (keys.length > 0) await this.#headsWhenFree(keys);
    }
    // Counted now; a transaction that rolls back is corrected by the next refresh.
    for (const row of rows) {
      this.#counted(row.url as string, 'pending', 1, true);
      this.#older(row.created_at as number);
    }
  }

  /** Leases up to `limit` due events no one holds (or whose holder's lease ran out), earliest due first. */
  claim(request: ClaimRequest): Promise<ClaimResult> {
    return this.#call(() => this.#claim(request));
  }

  async #call<T>(work: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    const call = work();
    this.#calls.add(call);
    try {
      return await call;
    } finally {
      this.#calls.delete(call);
    }
  }

  async #claim(request: ClaimRequest): Promise<ClaimResult> {
    const excluded = request.excludeEndpoints === undefined ? [] : [...request.excludeEndpoints];
    // As the other stores: no limit for Infinity, nothing for 0 or NaN.
    const limit = request.limit === Infinity ? null : Number.isFinite(request.limit) ? Math.max(0, Math.floor(request.limit)) : 0;
    const urls = this.#perEndpoint(request, excluded);
    // Every endpoint known to have events is excluded: the statement would find nothing (and cost a plan).
    if (urls?.length === 0) return { events: [], nextDueAt: undefined };
    const answer =
      urls === undefined
        ? await this.#run(this.#sql.claim, [request.now, limit, request.endpoint ?? null, excluded, this.#leaseMs, this.#owner])
        : await this.#run(this.#sql.claimEach, [request.now, limit, urls, this.#leaseMs, this.#owner]);
    // One row per claimed event, or one row of nulls; each carries the next due time of what was not claimed.
    const nextDueAt = (answer.rows[0]?.next_due as number | null | undefined) ?? undefined;
    const rows = answer.rows.filter((row) => row.id !== null);
    rows.sort(bySeq);
    rows.sort((a, b) => (a.next_attempt_at as number) - (b.next_attempt_at as number));
    const events = rows.map((row) => this.#hold(row));
    try {
      // close() came while the claim ran: its leases go back at once instead of running out.
      if (this.#closed) throw new OutboxClosedError('The store is closed');
      // (Events this takes with a superseded one may include the one nextDueAt names: the flusher then
      // claims once for nothing.)
      if (rows.some((row) => row.ordering_key !== null)) await this.#markSuperseded(rows, events, request, excluded);
      return { events, nextDueAt };
    } catch (error) {
      // The caller never sees these events: hand their leases back (or let them run out), never keep them.
      const ids = events.map((event) => event.id);
      for (const id of ids) this.#held.delete(id);
      await this.#run(this.#sql.release, [ids, this.#owner]).catch(() => undefined);
      throw error;
    }
  }

  /**
   * The endpoints to claim from one by one when walking the due-time index would pass a large backlog of
   * excluded endpoints (a circuit open during an outage): those with pending events in the last counts,
   * but the excluded. `undefined`: one walk of the index is cheaper. An endpoint the counts do not know yet
   * (another process's first event to it) waits for the next refresh.
   */
  #perEndpoint(request: ClaimRequest, excluded: readonly string[]): string[] | undefined {
    if (request.endpoint !== undefined || excluded.length === 0) return undefined;
    let skipped = 0;
    for (const url of excluded) skipped += this.#endpoints.get(url)?.pending ?? 0;
    if (skipped <= EXCLUDED_SCAN_LIMIT) return undefined;
    const skip = new Set(excluded);
    return [...this.#endpoints].filter(([url, counters]) => counters.pending > 0 && !skip.has(url)).map(([url]) => url);
  }

  #hold(row: Record<string, unknown>): StoredEvent {
    const event = toStored(row);
    this.#held.set(event.id, { attempts: event.attempts, history: event.history, url: event.url, createdAt: event.createdAt, orderingKey: event.orderingKey });
    return event;
  }

  /**
   * Of each key's pending events only the first appended (its head) is claimable; the others are parked,
   * so a claim never walks a key's backlog. Run after anything that changes which events of a key are
   * pending, holding the keys' transaction-scoped advisory locks, taken with try-locks only: nothing ever
   * waits for a key (a transaction of the app holding one may stay open long). A change made while
   * another holds the lock is judged again by its maker once the lock is free ({@link #headsDue}, at every
   * poll), and every count of the table repairs a key left with no head.
   */
  async #heads(on: PostgresQueryable, keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.#run(this.#sql.heads, [keys], on);
  }

  /** Runs `work` in a transaction on a client of the pool; again, from the start, when it lost a deadlock. */
  async #transaction<T>(work: (client: PostgresQueryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: PostgresQueryable & { release(error?: Error | boolean): void };
      try {
        client = await this.#pool.connect();
      } catch (error) {
        throw this.#fault(error);
      }
      let broken: Error | undefined;
      try {
        // Whatever the database's default: heads() judges on what is committed once the key locks are held.
        await this.#run('BEGIN ISOLATION LEVEL READ COMMITTED', undefined, client);
        const result = await work(client);
        await this.#run('COMMIT', undefined, client);
        return result;
      } catch (error) {
        await client.query({ text: 'ROLLBACK' }).catch((rollback: unknown) => {
          broken = rollback instanceof Error ? rollback : new Error(String(rollback));
        });
        const cause = error instanceof StoreIoError ? error.cause : error;
        if (attempt < RERUNS && (rerunnable(cause) || forgotten(cause))) continue;
        throw error;
      } finally {
        client.release(broken);
      }
    }
  }

  /**
   * Latest state wins: a claimed event of a key whose latest pending superseding event (appended later,
   * same URL) exists is marked with that event's id, and the key's waiting events right after it that the
   * same event supersedes are claimed with it, marked too (within the limit), so a backlog goes at once.
   */
  async #markSuperseded(rows: Record<string, unknown>[], events: StoredEvent[], request: ClaimRequest, excluded: string[]): Promise<void> {
    const keys = [...new Set(rows.filter((row) => row.ordering_key !== null).map((row) => row.ordering_key as string))];
    const latest = new Map<string, Record<string, unknown>>();
    for (const row of (await this.#run(this.#sql.superseders, [keys])).rows) latest.set(row.ordering_key as string, row);
    for (const [i, row] of rows.entries()) {
      const by = latest.get(row.ordering_key as string);
      if (by === undefined || Number(by.seq) <= Number(row.seq) || by.url !== row.url) continue;
      (events[i] as StoredEvent).supersededBy = by.id as string;
      const room = Number.isFinite(request.limit) ? request.limit - events.length : Infinity;
      if (room <= 0 || (request.endpoint !== undefined && by.url !== request.endpoint) || excluded.includes(by.url as string)) continue;
      // The key's events between the two, in order, up to the first that is not to be taken now.
      const between = (await this.#run(this.#sql.between, [row.ordering_key, row.seq, by.seq, room === Infinity ? null : room])).rows;
      const take: unknown[] = [];
      for (const next of between) {
        if (take.length >= room || next.url !== by.url || next.claimed === true || (next.next_attempt_at as number) > request.now) break;
        take.push(next.seq);
      }
      if (take.length === 0) continue;
      const taken = (await this.#run(this.#sql.lease, [take, this.#leaseMs, this.#owner])).rows.sort(bySeq);
      for (const more of taken) {
        const event = this.#hold(more);
        event.supersededBy = by.id as string;
        events.push(event);
      }
    }
  }

  /** Writes the outcomes of events this instance holds; other ids are ignored. */
  settle(outcomes: readonly Outcome[]): Promise<void> {
    return this.#call(() => this.#settle(outcomes));
  }

  async #settle(outcomes: readonly Outcome[]): Promise<void> {
    const ids: string[] = [];
    const kinds: string[] = [];
    const attempts: (number | null)[] = [];
    const histories: (string | null)[] = [];
    const next: (number | null)[] = [];
    const reasons: (string | null)[] = [];
    const deadAt: (number | null)[] = [];
    const settled: [Held, Outcome][] = [];
    for (const outcome of outcomes) {
      const held = this.#held.get(outcome.id);
      if (held === undefined || ids.includes(outcome.id)) continue;
      ids.push(outcome.id);
      settled.push([held, outcome]);
      kinds.push(outcome.type === 'delivered' || outcome.type === 'superseded' ? 'delete' : outcome.type);
      if (outcome.type === 'retry') {
        attempts.push(held.attempts + (outcome.countsAsAttempt ? 1 : 0));
        histories.push(JSON.stringify(withAttempt(held.history, outcome.attempt)));
        next.push(outcome.nextAttemptAt);
      } else if (outcome.type === 'dead') {
        attempts.push(held.attempts + (outcome.attempt === undefined ? 0 : 1));
        histories.push(JSON.stringify(withAttempt(held.history, outcome.attempt)));
        next.push(null);
      } else {
        attempts.push(null);
        histories.push(null);
        next.push(null);
      }
      reasons.push(outcome.type === 'dead' ? outcome.reason : null);
      deadAt.push(outcome.type === 'dead' ? outcome.at : null);
    }
    if (ids.length === 0) return;
    // Forgotten before the write: once it commits, a claim of this instance may take an event again (a retry
    // due at once), and must not find its new hold undone when this statement's answer comes in after.
    for (const id of ids) this.#held.delete(id);
    const values = [ids, kinds, attempts, histories, next, reasons, deadAt, this.#owner];
    // An event that leaves its key's pending events makes the next one the head.
    const keys = [...new Set(settled.flatMap(([held, outcome]) => (held.orderingKey === undefined || outcome.type === 'retry' || outcome.type === 'release' ? [] : [held.orderingKey])))];
    let rows: Record<string, unknown>[];
    try {
      rows = (await this.#run(this.#sql.settle, values)).rows;
    } catch (error) {
      // Nothing was written (or the answer was lost): the events are still leased to this instance, and an
      // outcome written in time still counts. But the caller may never write one (its release of the event
      // failed too, in the same outage): the lease is not renewed any more and runs out, and the event
      // goes to whichever flusher claims it next. Renewed, it would stay held by no one's request for good.
      const lapsesAt = Date.now() + this.#leaseMs;
      for (const [held, outcome] of settled) this.#held.set(outcome.id, { ...held, lapsesAt: held.lapsesAt ?? lapsesAt });
      throw error;
    }
    const written = new Set(rows.flatMap((row) => (row.id === null ? [] : [row.id as string])));
    let oldestLeft = false;
    for (const [held, outcome] of settled) {
      // Not written: another flusher took the event after this lease ran out; its outcome will count.
      if (!written.has(outcome.id) || outcome.type === 'retry' || outcome.type === 'release') continue;
      this.#counted(held.url, 'pending', -1);
      if (outcome.type === 'delivered') this.#delivered++;
      if (outcome.type === 'dead') this.#counted(held.url, 'dead', 1);
      if (this.#oldestPendingAt !== undefined && held.createdAt <= this.#oldestPendingAt) oldestLeft = true;
    }
    // The statement also read the oldest pending creation time it left (the first entry of an index).
    if (oldestLeft) this.#oldestPendingAt = (rows.find((row) => row.id === null)?.oldest as number | null | undefined) ?? undefined;
    // The next of each key whose event left becomes its head; never waiting for a key that a transaction
    // enqueueing to it holds (that could be open for long): such a key is done at a later poll.
    if (keys.length > 0) await this.#headsWhenFree(keys);
  }

  /**
   * Re-judges the heads of the keys whose locks are free now (try-locks: never waits); the others are
   * remembered and tried again at every poll.
   */
  async #headsWhenFree(keys: readonly string[], transaction?: PostgresQueryable): Promise<void> {
    for (const key of keys) this.#headsDue.add(key);
    const judge = async (client: PostgresQueryable, chunk: readonly string[]): Promise<void> => {
      const locked = (await this.#run(this.#sql.tryLockKeys, [chunk], client)).rows.filter((row) => row.locked === true).map((row) => row.key as string);
      await this.#heads(client, locked);
      for (const key of locked) this.#headsDue.delete(key);
    };
    if (transaction !== undefined) {
      // The caller's: only its own keys (its transaction holds their locks until it ends).
      await judge(transaction, keys);
      return;
    }
    // At most KEY_CHUNK locks per transaction: PostgreSQL's lock table is shared and small.
    const due = [...this.#headsDue];
    for (let from = 0; from < due.length; from += KEY_CHUNK) {
      try {
        await this.#transaction((client) => judge(client, due.slice(from, from + KEY_CHUNK)));
      } catch {
        // Tried again at the next poll (the keys stay due); what called this is written.
      }
    }
  }

  #older(createdAt: number): void {
    if (this.#oldestPendingAt === undefined || createdAt < this.#oldestPendingAt) this.#oldestPendingAt = createdAt;
  }

  /** Dead letters, oldest first, with payload and history. */
  async deadLetters(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    this.#assertOpen();
    if (unstorable(query.endpoint)) return [];
    const { rows } = await this.#run(this.#sql.deadLetters(true), deadFilter(query));
    return rows.map((row) => toDead(row));
  }

  /** The ids `deadLetters(query)` would list. */
  async deadLetterIds(query: DeadLetterQuery): Promise<string[]> {
    this.#assertOpen();
    if (unstorable(query.endpoint)) return [];
    const { rows } = await this.#run(this.#sql.deadLetters(false), deadFilter(query));
    return rows.map((row) => row.id as string);
  }

  /** The event with this id: `claimed` while any flusher's lease on it runs. */
  async get(id: string): Promise<FoundEvent | undefined> {
    this.#assertOpen();
    if (unstorable(id)) return undefined;
    const { rows } = await this.#run(this.#sql.get, [id]);
    const row = rows[0];
    if (row === undefined) return undefined;
    if (row.dead_at !== null) return { ...toDead(row), state: 'dead' };
    if (row.claimed !== true) return { ...toStored(row), state: 'pending' };
    return { ...toStored(row), state: 'claimed', heldElsewhere: !this.#held.has(id) };
  }

  /** Makes dead letters pending again, due at `now`, attempts reset and age restarted; to `url` when given. */
  async replay(ids?: readonly string[], now: number = Date.now(), url?: string): Promise<number> {
    this.#assertOpen();
    // A replayed event with a key goes in parked, and takes its place among its key's pending events
    // again (before later ones) when its key's head is judged, right after.
    const { rows } = await this.#run(this.#sql.replay, [storableIds(ids), now, url ?? null]);
    const keys = [...new Set(rows.flatMap((row) => (row.ordering_key === null ? [] : [row.ordering_key as string])))];
    if (keys.length > 0) await this.#headsWhenFree(keys);
    for (const row of rows) {
      this.#counted(row.old_url as string, 'dead', -1);
      this.#counted(row.url as string, 'pending', 1);
      this.#older(now);
    }
    return rows.length;
  }

  /** Sends every pending event but those this instance holds (another's: their next attempt), and every dead letter, of `from` to `to`. */
  async moveEndpoint(from: string, to: string, now: number = Date.now()): Promise<number> {
    this.#assertOpen();
    if (from === to || unstorable(from)) return 0;
    const { rows } = await this.#run(this.#sql.move, [from, to, now, this.#owner]);
    for (const row of rows) {
      const counter = row.dead === true ? 'dead' : 'pending';
      this.#counted(from, counter, -1);
      this.#counted(to, counter, 1);
    }
    return rows.length;
  }

  /** Deletes dead letters for good. */
  async purge(ids?: readonly string[]): Promise<number> {
    this.#assertOpen();
    const { rows } = await this.#run(this.#sql.purge, [storableIds(ids)]);
    for (const row of rows) this.#counted(row.url as string, 'dead', -1);
    return rows.length;
  }

  /**
   * Counters of the whole table (every process's events), read at the last poll and moved by this
   * instance's own writes since; `delivered` counts this instance's deliveries.
   */
  stats(): StoreStats {
    const endpoints: Record<string, EndpointStoreStats> = {};
    let pending = 0;
    let dead = 0;
    for (const [url, counters] of this.#endpoints) {
      endpoints[url] = { ...counters };
      pending += counters.pending;
      dead += counters.dead;
    }
    return {
      pending,
      claimed: this.#held.size,
      delivered: this.#delivered,
      dead,
      corrupt: 0,
      oldestPendingAt: this.#oldestPendingAt,
      bytesOnDisk: this.#bytes,
      endpoints,
    };
  }

  /** Stops polling and hands back the leases it holds; the pool stays open (it is yours). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    clearTimeout(this.#soon?.timer);
    this.#soon = undefined;
    await this.#ticking;
    // A claim or an outcome under way ends first (a claim hands its leases back itself).
    await Promise.allSettled(this.#calls);
    try {
      if (this.#held.size > 0 && this.#opened) {
        const ids = [...this.#held.keys()];
        this.#held.clear();
        await this.#run(this.#sql.release, [ids, this.#owner]);
      }
    } finally {
      // Last (the leases go back first): the app may end its pool once close() resolved.
      await this.#analyzing;
    }
  }

  /** One poll: renew leases, refresh the counters when due, then tell the outbox. */
  async #tick(): Promise<void> {
    if (this.#ticking !== undefined || this.#closed) return;
    const tick = (async () => {
      try {
        const renewed: string[] = [];
        const now = Date.now();
        for (const [id, held] of this.#held) {
          if (held.lapsesAt === undefined) renewed.push(id);
          else if (now >= held.lapsesAt) this.#held.delete(id);
        }
        if (renewed.length > 0) await this.#run(this.#sql.renew, [renewed, this.#leaseMs, this.#owner]);
        if (this.#headsDue.size > 0) await this.#headsWhenFree([]);
        await this.#refresh(false);
      } catch {
        // A poll that failed (the database is restarting) is tried again at the next; the outbox's own
        // calls report the fault.
      }
      if (!this.#closed) this.#onChange?.();
    })();
    this.#ticking = tick;
    await tick;
    this.#ticking = undefined;
  }

  /**
   * Reads the counters of the whole table; on a large table at most a twentieth of the time, so a
   * million-row backlog is not counted twice a second.
   */
  async #refresh(force: boolean): Promise<void> {
    const started = Date.now();
    if (!force && started < this.#nextRefreshAt) return;
    this.#appendedDuringRefresh = new Map();
    try {
      await this.#count();
      // A safety net: a key whose pending events are all parked would never be claimed again. No path
      // should leave one (each change to a key's pending events re-judges its first under its lock); if
      // one did, it is found here and repaired.
      const headless = (await this.#run(this.#sql.headless)).rows.map((row) => row.ordering_key as string);
      if (headless.length > 0) await this.#headsWhenFree(headless);
    } finally {
      this.#appendedDuringRefresh = undefined;
      this.#nextRefreshAt = Date.now() + Math.max(this.#pollIntervalMs, 20 * (Date.now() - started));
    }
    this.#analyzeWhenStale();
  }

  /** Reads the counters of the whole table (one statement, reads only). */
  async #count(): Promise<void> {
    const { rows } = await this.#run(this.#sql.counts);
    const endpoints = new Map<string, EndpointStoreStats>();
    let oldest: number | undefined;
    let bytes = 0;
    for (const row of rows) {
      bytes = Number(row.bytes);
      if (row.url === null) continue;
      endpoints.set(row.url as string, { pending: Number(row.pending), dead: Number(row.dead) });
      const first = row.oldest as number | null;
      if (first !== null && (oldest === undefined || first < oldest)) oldest = first;
    }
    // Appends that raced the count are counted again: the figure may run over until the next refresh, never under.
    for (const [url, n] of this.#appendedDuringRefresh ?? []) {
      const counters = endpoints.get(url) ?? { pending: 0, dead: 0 };
      counters.pending += n;
      endpoints.set(url, counters);
    }
    this.#endpoints = endpoints;
    this.#oldestPendingAt = oldest;
    this.#bytes = bytes;
    this.#rows = 0;
    for (const counters of endpoints.values()) this.#rows += counters.pending + counters.dead;
  }

  /**
   * Runs ANALYZE when the planner believes the table a tenth of its size or less (never analyzed, or last
   * analyzed nearly empty, before a burst: autovacuum gets to it within a minute or so). Meanwhile it
   * takes the rows with no dead letter for a few (a column's share of NULLs unknown) and claims read and
   * sort every due event instead of walking the index: 18 ms a claim at 100,000 pending, against 5 ms.
   * It never waits for a lock (`SKIP_LOCKED`: a VACUUM or another ANALYZE running, it is skipped); without
   * the privilege to analyze, PostgreSQL skips it with a warning. Either way the next try waits for ten
   * times as many rows.
   */
  #analyzeWhenStale(): void {
    const rows = this.#rows;
    if (rows < ANALYZE_MIN_ROWS || rows < this.#analyzeAbove || this.#closed) return;
    // Not tried again before ten times the rows, whatever happens (a failure, skipped for a lock).
    this.#analyzeAbove = rows * STALE_RATIO;
    // Not in the polls' way (an ANALYZE of a large table takes a while); close() waits for it, after
    // handing back its leases.
    this.#analyzing = (async () => {
      try {
        const planned = Number((await this.#run(this.#sql.planned, [this.#sql.table])).rows[0]?.n ?? -1);
        if (planned * STALE_RATIO < rows) await this.#run(this.#sql.analyze);
      } catch {
        // The planner keeps its figures; the claims are slower, not wrong.
      }
    })();
  }

  #counted(url: string, counter: 'pending' | 'dead', delta: number, appended = false): void {
    let counters = this.#endpoints.get(url);
    if (counters === undefined) {
      counters = { pending: 0, dead: 0 };
      this.#endpoints.set(url, counters);
    }
    counters[counter] = Math.max(0, counters[counter] + delta);
    if (counters.pending === 0 && counters.dead === 0) this.#endpoints.delete(url);
    if (appended && this.#appendedDuringRefresh !== undefined) this.#appendedDuringRefresh.set(url, (this.#appendedDuringRefresh.get(url) ?? 0) + delta);
  }

  /** One statement; on the pool (its own transaction), one that lost a deadlock is run again. */
  async #run(text: string, values?: unknown[], on: PostgresQueryable = this.#pool): Promise<{ rows: Record<string, unknown>[] }> {
    // Statements with parameters are prepared (a few texts per table, so a few per connection); the others
    // (DDL of several statements, BEGIN, COMMIT) go as simple queries.
    const query: PostgresQuery = values === undefined ? { text } : { text, values };
    if (values !== undefined && this.#names !== undefined) query.name = this.#names.get(text) ?? this.#nameOf(text);
    for (let attempt = 1; ; attempt++) {
      try {
        return await on.query(query);
      } catch (error) {
        if (query.name !== undefined && forgotten(error)) {
          // A pooler that does not keep prepared statements: this store stops preparing. Nothing ran.
          this.#names = undefined;
          delete query.name;
          if (on === this.#pool) continue;
        }
        if (on === this.#pool && attempt < RERUNS && rerunnable(error)) continue;
        throw this.#fault(error);
      }
    }
  }

  /** A prepared statement's name: the same for the same text in every store and process. */
  #nameOf(text: string): string {
    const name = `webhook_outbox_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
    this.#names?.set(text, name);
    return name;
  }

  #fault(error: unknown): WebhookOutboxError {
    if (error instanceof WebhookOutboxError) return error;
    const detail = error instanceof Error ? error.message : String(error);
    return new StoreIoError(`PostgreSQL (table ${this.#table}): ${detail}`, { cause: error });
  }

  #assertOpen(): void {
    if (this.#closed) throw new OutboxClosedError('The store is closed');
  }
}

/** PostgreSQL's text cannot hold U+0000: such an event is refused before anything is written. */
function assertStorable(event: NewEvent): void {
  const strings: [string, string][] = [['id', event.id], ['url', event.url], ['orderingKey', event.orderingKey ?? '']];
  for (const [name, value] of Object.entries(event.headers)) strings.push([`headers.${name}`, `${name}${value}`]);
  for (const [field, value] of strings) {
    if (value.includes('\u0000')) throw new InvalidMessageError(field, 'must not contain U+0000 (PostgreSQL text cannot hold it)');
  }
}

function bySeq(a: Record<string, unknown>, b: Record<string, unknown>): number {
  return Number(a.seq) - Number(b.seq);
}

/** Statements and the store's transactions that lose a deadlock (or a serialization failure) run again, up to this many times in all. */
const RERUNS = 3;

/**
 * "prepared statement ... does not exist" (26000) or "... already exists" (42P05): the server session is not
 * the one this connection prepared its statements on (a pooler's, shared with other clients). Nothing ran.
 */
function forgotten(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '26000' || code === '42P05';
}

function rerunnable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** The most ordering keys one of the store's transactions locks (one advisory lock each). */
const KEY_CHUNK = 500;

/** The insert statements' parameters: one array per column. */
function columnsOf(events: readonly NewEvent[]): unknown[] {
  const id: string[] = [];
  const url: string[] = [];
  const headers: string[] = [];
  const body: Buffer[] = [];
  const key: (string | null)[] = [];
  const supersede: boolean[] = [];
  const created: number[] = [];
  const next: number[] = [];
  for (const event of events) {
    id.push(event.id);
    url.push(event.url);
    headers.push(JSON.stringify(event.headers));
    body.push(Buffer.from(event.body.buffer, event.body.byteOffset, event.body.byteLength));
    key.push(event.orderingKey ?? null);
    supersede.push(event.supersede === true);
    created.push(event.createdAt);
    next.push(event.nextAttemptAt);
  }
  return [id, url, headers, body, key, supersede, created, next];
}

/** PostgreSQL text cannot hold U+0000: no event has such an id or URL (a lookup of one finds nothing). */
function unstorable(value: string | undefined): boolean {
  return value?.includes('\u0000') === true;
}

/** `null` (all), or the ids that can be in the table. */
function storableIds(ids: readonly string[] | undefined): string[] | null {
  return ids === undefined ? null : ids.filter((id) => !unstorable(id));
}

function deadFilter(query: DeadLetterQuery): unknown[] {
  const limit = query.limit === undefined || !Number.isFinite(query.limit) ? null : query.limit;
  return [storableIds(query.ids), query.endpoint ?? null, query.since ?? null, query.until ?? null, limit];
}

function toStored(row: Record<string, unknown>): StoredEvent {
  const event: StoredEvent = {
    id: row.id as string,
    url: row.url as string,
    headers: row.headers as Record<string, string>,
    body: new Uint8Array(row.body as Buffer),
    createdAt: row.created_at as number,
    nextAttemptAt: row.next_attempt_at as number,
    attempts: row.attempts as number,
    history: row.history as AttemptRecord[],
  };
  if (row.ordering_key !== null) event.orderingKey = row.ordering_key as string;
  if (row.supersede === true) event.supersede = true;
  return event;
}

function toDead(row: Record<string, unknown>): DeadLetter {
  return { ...toStored(row), reason: REASONS[row.dead_reason as number] as DeadReason, deadAt: row.dead_at as number };
}

/**
 * The statements, for one table. Times are milliseconds since the epoch as the outbox's clock gives them
 * (`double precision` holds them exactly), except leases, which run on the database's clock: one clock for
 * every machine that shares the table.
 */
function statements(table: string) {
  // Quoted (a reserved word such as "order" is a fine name); the indexes' and the sequence's names are made
  // from the table's, shortened with a hash when the table's takes most of PostgreSQL's 63 bytes.
  const [schema, relation] = table.includes('.') ? (table.split('.') as [string, string]) : [undefined, table];
  const t = schema === undefined ? `"${relation}"` : `"${schema}"."${relation}"`;
  const base = relation.length <= 50 ? relation : `${relation.slice(0, 41)}_${createHash('sha256').update(relation).digest('hex').slice(0, 8)}`;
  const suffixes = ['due', 'url_due', 'key', 'heads', 'supersede', 'held', 'dead', 'url', 'created'];
  const name = (suffix: string): string => `"${base}_${suffix}"`;
  const sequence = schema === undefined ? name('dead_seq') : `"${schema}".${name('dead_seq')}`;
  const columns = 't.seq, t.id, t.url, t.headers, t.body, t.ordering_key, t.supersede, t.created_at, t.next_attempt_at, t.attempts, t.history, t.dead_reason, t.dead_at';
  // Pending, not parked (a key's events after its first are), no lease running, and, for a key's first,
  // none of its key held (a replayed dead letter takes its place again, but waits for the one out now).
  const claimable = `o.dead_at IS NULL AND NOT o.parked AND (o.leased_until IS NULL OR o.leased_until <= clock_timestamp())
    AND (o.ordering_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM ${t} p WHERE p.ordering_key = o.ordering_key AND p.seq <> o.seq
        AND p.leased_until IS NOT NULL AND p.leased_until > clock_timestamp()))`;
  // Claims, leases and outcomes commit without waiting for the WAL's flush (synchronous_commit off for
  // their transaction only): a database crash may lose the last few hundred ms of them, which repeats
  // deliveries, never loses an event. Appends, replays, moves and purges wait for it.
  const relaxed = `relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS off)`;
  const reasonIndex = `array_position(ARRAY[${REASONS.map((reason) => `'${reason}'`).join(', ')}]::text[], o.reason) - 1`;
  return {
    table: t,
    indexes: suffixes.map((suffix) => `${base}_${suffix}`),
    verify: `SELECT c.relkind::text AS kind,
        EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'parked' AND NOT a.attisdropped) AS ours,
        (SELECT array_agg(ic.relname::text) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid) AS indexes
      FROM pg_class c WHERE c.oid = to_regclass($1)`,
    headless: `SELECT ordering_key FROM ${t} WHERE dead_at IS NULL AND ordering_key IS NOT NULL
      GROUP BY ordering_key HAVING bool_and(parked)`,
    // One implicit transaction (a multi-statement simple query): the advisory lock makes concurrent opens wait.
    create: `SELECT pg_advisory_xact_lock(hashtext('webhook-outbox:${table}'));
      CREATE TABLE IF NOT EXISTS ${t} (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        url text NOT NULL,
        headers json NOT NULL,
        body bytea NOT NULL,
        ordering_key text,
        supersede boolean NOT NULL DEFAULT false,
        parked boolean NOT NULL DEFAULT false,
        created_at double precision NOT NULL,
        next_attempt_at double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        history json NOT NULL DEFAULT '[]',
        lease_owner uuid,
        leased_until timestamptz,
        dead_reason smallint,
        dead_at double precision,
        dead_seq bigint
      );
      CREATE SEQUENCE IF NOT EXISTS ${sequence};
      CREATE INDEX IF NOT EXISTS ${name('due')} ON ${t} (next_attempt_at, seq) WHERE dead_at IS NULL AND NOT parked;
      CREATE INDEX IF NOT EXISTS ${name('url_due')} ON ${t} (url, next_attempt_at, seq) WHERE dead_at IS NULL AND NOT parked;
      CREATE INDEX IF NOT EXISTS ${name('key')} ON ${t} (ordering_key, seq) WHERE dead_at IS NULL AND ordering_key IS NOT NULL;
      CREATE INDEX IF NOT EXISTS ${name('heads')} ON ${t} (ordering_key) WHERE dead_at IS NULL AND NOT parked AND ordering_key IS NOT NULL;
      CREATE INDEX IF NOT EXISTS ${name('supersede')} ON ${t} (ordering_key, seq) WHERE dead_at IS NULL AND supersede;
      CREATE INDEX IF NOT EXISTS ${name('held')} ON ${t} (ordering_key) WHERE leased_until IS NOT NULL AND ordering_key IS NOT NULL;
      CREATE INDEX IF NOT EXISTS ${name('dead')} ON ${t} (dead_at, dead_seq) WHERE dead_at IS NOT NULL;
      CREATE INDEX IF NOT EXISTS ${name('url')} ON ${t} (url);
      CREATE INDEX IF NOT EXISTS ${name('created')} ON ${t} (created_at) WHERE dead_at IS NULL;`,
    // Events with a key go in parked; heads() then unparks each key's first.
    insert: `INSERT INTO ${t} (id, url, headers, body, ordering_key, supersede, created_at, next_attempt_at, parked)
      SELECT i.*, i.key IS NOT NULL FROM unnest($1::text[], $2::text[], $3::json[], $4::bytea[], $5::text[], $6::boolean[], $7::float8[], $8::float8[])
        AS i(id, url, headers, body, key, supersede, created_at, next_attempt_at)
      ON CONFLICT (id) DO NOTHING RETURNING url, created_at`,
    // The same, only in transaction $9 (the caller's, when its client is inside one).
    insertIn: `INSERT INTO ${t} (id, url, headers, body, ordering_key, supersede, created_at, next_attempt_at, parked)
      SELECT i.*, i.key IS NOT NULL FROM unnest($1::text[], $2::text[], $3::json[], $4::bytea[], $5::text[], $6::boolean[], $7::float8[], $8::float8[])
        AS i(id, url, headers, body, key, supersede, created_at, next_attempt_at)
      WHERE txid_current()::text = $9
      ON CONFLICT (id) DO NOTHING RETURNING url, created_at`,
    xid: `SELECT txid_current()::text AS xid, current_setting('transaction_isolation') AS isolation`,
    // One lock per key (a 64-bit hash of table and key), only ever tried: nothing waits for one.
    tryLockKeys: `SELECT k AS key, pg_try_advisory_xact_lock(hashtextextended('${table}:' || k, 0)) AS locked FROM unnest($1::text[]) AS k`,
    // Each key's first pending event unparked, every other parked; only rows that change are written.
    heads: `WITH h AS (
        SELECT k.key, (SELECT p.seq FROM ${t} p WHERE p.ordering_key = k.key AND p.dead_at IS NULL ORDER BY p.seq LIMIT 1) AS seq
        FROM unnest($1::text[]) AS k(key)),
      fix AS (
        SELECT t.seq FROM ${t} t JOIN h ON t.seq = h.seq WHERE t.parked
        UNION ALL
        SELECT t.seq FROM ${t} t JOIN h ON t.ordering_key = h.key
        WHERE t.dead_at IS NULL AND NOT t.parked AND t.ordering_key IS NOT NULL AND t.seq IS DISTINCT FROM h.seq)
      UPDATE ${t} t SET parked = NOT t.parked FROM fix WHERE t.seq = fix.seq`,
    // A key's events go one at a time: an event with a key is due only when no earlier one of its key is
    // pending (held or not). SKIP LOCKED: two flushers claiming at once never wait for, or get, the same row.
    claim: `WITH ${relaxed}, c AS (
        UPDATE ${t} SET lease_owner = $6, leased_until = clock_timestamp() + $5 * interval '1 millisecond'
        WHERE seq IN (
          SELECT o.seq FROM ${t} o
          WHERE ${claimable} AND o.next_attempt_at <= $1
            AND ($3::text IS NULL OR o.url = $3) AND NOT (o.url = ANY($4::text[]))
          ORDER BY o.next_attempt_at, o.seq
          LIMIT $2
          FOR UPDATE SKIP LOCKED)
        RETURNING ${columns.replaceAll('t.', '')})
      SELECT c.*, n.next AS next_due FROM (
        SELECT min(o.next_attempt_at) AS next FROM ${t} o
        WHERE ${claimable} AND ($3::text IS NULL OR o.url = $3) AND NOT (o.url = ANY($4::text[]))
          AND o.seq NOT IN (SELECT seq FROM c)) n
      CROSS JOIN relaxed LEFT JOIN c ON true`,
    // The same, endpoint by endpoint (the index by URL and due time), for a claim that excludes a large backlog.
    claimEach: `WITH ${relaxed}, c AS (
        UPDATE ${t} SET lease_owner = $5, leased_until = clock_timestamp() + $4 * interval '1 millisecond'
        WHERE seq IN (
          SELECT d.seq FROM unnest($3::text[]) AS u(url) CROSS JOIN LATERAL (
            SELECT o.seq, o.next_attempt_at FROM ${t} o
            WHERE o.url = u.url AND ${claimable} AND o.next_attempt_at <= $1
            ORDER BY o.next_attempt_at, o.seq LIMIT $2 FOR UPDATE SKIP LOCKED) d
          ORDER BY d.next_attempt_at, d.seq LIMIT $2)
        RETURNING ${columns.replaceAll('t.', '')})
      SELECT c.*, n.next AS next_due FROM (
        SELECT min(d.next) AS next FROM unnest($3::text[]) AS u(url) CROSS JOIN LATERAL (
          SELECT o.next_attempt_at AS next FROM ${t} o
          WHERE o.url = u.url AND ${claimable} AND o.seq NOT IN (SELECT seq FROM c)
          ORDER BY o.next_attempt_at LIMIT 1) d) n
      CROSS JOIN relaxed LEFT JOIN c ON true`,
    superseders: `SELECT s.* FROM unnest($1::text[]) AS k(key) CROSS JOIN LATERAL (
        SELECT ordering_key, id, url, seq FROM ${t} p
        WHERE p.ordering_key = k.key AND p.dead_at IS NULL AND p.supersede ORDER BY p.seq DESC LIMIT 1) s`,
    between: `SELECT seq, url, next_attempt_at, leased_until > clock_timestamp() AS claimed FROM ${t}
      WHERE ordering_key = $1 AND dead_at IS NULL AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4`,
    lease: `WITH ${relaxed} UPDATE ${t} SET lease_owner = $3, leased_until = clock_timestamp() + $2 * interval '1 millisecond'
      WHERE (SELECT off FROM relaxed) IS NOT NULL AND seq IN (SELECT seq FROM ${t}
        WHERE seq = ANY($1::bigint[]) AND dead_at IS NULL AND (leased_until IS NULL OR leased_until <= clock_timestamp())
        FOR UPDATE SKIP LOCKED)
      RETURNING ${columns.replaceAll('t.', '')}`,
    leased: `SELECT count(*) AS n FROM ${t} WHERE dead_at IS NULL AND leased_until > clock_timestamp()`,
    hasPending: `SELECT EXISTS (SELECT 1 FROM ${t} WHERE dead_at IS NULL) AS any`,
    // Only rows this instance still leases are written; the rest went to another flusher meanwhile.
    settle: `WITH ${relaxed}, o AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::json[], $5::float8[], $6::text[], $7::float8[])
          AS o(id, kind, attempts, history, next, reason, dead_at)),
      removed AS (
        DELETE FROM ${t} t USING o WHERE t.id = o.id AND o.kind = 'delete' AND t.lease_owner = $8 RETURNING t.id),
      changed AS (
        UPDATE ${t} t SET lease_owner = NULL, leased_until = NULL,
          attempts = COALESCE(o.attempts, t.attempts), history = COALESCE(o.history, t.history),
          next_attempt_at = COALESCE(o.next, t.next_attempt_at),
          dead_reason = CASE WHEN o.kind = 'dead' THEN ${reasonIndex} END,
          dead_at = o.dead_at,
          dead_seq = CASE WHEN o.kind = 'dead' THEN nextval('${sequence}') END
        FROM o WHERE t.id = o.id AND o.kind <> 'delete' AND t.lease_owner = $8 RETURNING t.id, o.kind)
      SELECT id, NULL::float8 AS oldest FROM removed UNION ALL SELECT id, NULL FROM changed
      UNION ALL SELECT NULL, min(created_at) FROM ${t}
        WHERE (SELECT off FROM relaxed) IS NOT NULL AND dead_at IS NULL AND id NOT IN (SELECT id FROM removed UNION ALL SELECT id FROM changed WHERE kind = 'dead')`,
    release: `WITH ${relaxed} UPDATE ${t} SET lease_owner = NULL, leased_until = NULL
      WHERE (SELECT off FROM relaxed) IS NOT NULL AND id = ANY($1::text[]) AND lease_owner = $2`,
    // Never waits for a row: one whose outcome is being written is skipped (that ends its lease anyway), so a
    // renewal and a settle of the same rows cannot deadlock.
    renew: `WITH ${relaxed} UPDATE ${t} SET leased_until = clock_timestamp() + $2 * interval '1 millisecond'
      WHERE (SELECT off FROM relaxed) IS NOT NULL AND seq IN (SELECT seq FROM ${t} WHERE id = ANY($1::text[]) AND lease_owner = $3 FOR UPDATE SKIP LOCKED)`,
    deadLetters: (payload: boolean) => `SELECT ${payload ? columns : 't.id'} FROM ${t} t
      WHERE t.dead_at IS NOT NULL AND ($1::text[] IS NULL OR t.id = ANY($1)) AND ($2::text IS NULL OR t.url = $2)
        AND ($3::float8 IS NULL OR t.dead_at >= $3) AND ($4::float8 IS NULL OR t.dead_at < $4)
      ORDER BY t.dead_at, t.dead_seq LIMIT $5`,
    get: `SELECT ${columns}, (t.lease_owner IS NOT NULL AND t.leased_until > clock_timestamp()) AS claimed FROM ${t} t WHERE t.id = $1`,
    replay: `UPDATE ${t} t SET dead_at = NULL, dead_reason = NULL, dead_seq = NULL, attempts = 0, parked = t.ordering_key IS NOT NULL,
        created_at = $2, next_attempt_at = $2, url = COALESCE($3, t.url)
      FROM ${t} old WHERE old.seq = t.seq AND t.dead_at IS NOT NULL AND ($1::text[] IS NULL OR t.id = ANY($1))
      RETURNING t.url, old.url AS old_url, t.ordering_key`,
    // Events another outbox holds move too (it cannot be waited for): their attempt under way still goes
    // to the old URL, their next to the new one. This instance's stay (the outbox moves them after their
    // outcome). Skips rows another statement has locked (a flusher writing their outcome): waiting for
    // them, while it waits for rows this one locked, would deadlock. The outbox moves what is left again.
    move: `UPDATE ${t} SET url = $2,
        attempts = CASE WHEN dead_at IS NULL THEN 0 ELSE attempts END,
        next_attempt_at = CASE WHEN dead_at IS NULL THEN LEAST(next_attempt_at, $3) ELSE next_attempt_at END
      WHERE seq IN (SELECT seq FROM ${t}
        WHERE url = $1 AND (dead_at IS NOT NULL OR lease_owner IS DISTINCT FROM $4 OR leased_until <= clock_timestamp())
        FOR UPDATE SKIP LOCKED)
      RETURNING dead_at IS NOT NULL AS dead`,
    purge: `DELETE FROM ${t} WHERE dead_at IS NOT NULL AND ($1::text[] IS NULL OR id = ANY($1)) RETURNING url`,
    counts: `SELECT url, count(*) FILTER (WHERE dead_at IS NULL) AS pending, count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead,
        min(created_at) FILTER (WHERE dead_at IS NULL) AS oldest, pg_total_relation_size('${t}') AS bytes
      FROM ${t} GROUP BY url
      UNION ALL SELECT NULL, 0, 0, NULL, pg_total_relation_size('${t}')`,
    // What the planner believes the table holds (-1: never analyzed).
    planned: `SELECT reltuples AS n FROM pg_class WHERE oid = to_regclass($1)`,
    // Never waits for a lock (a VACUUM, CREATE INDEX CONCURRENTLY, another ANALYZE running): skipped then.
    analyze: `ANALYZE (SKIP_LOCKED) ${t}`,
  };
}
