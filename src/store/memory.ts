import { OutboxClosedError, OutboxFullError } from '../errors.js';
import { OldestPending } from './oldest-pending.js';
import { OrderingKeys } from './ordering-keys.js';
import { takeDue } from './take-due.js';
import type {
  ClaimRequest,
  ClaimResult,
  DeadLetter,
  DeadLetterQuery,
  EndpointStoreStats,
  FoundEvent,
  NewEvent,
  OutboxStore,
  Outcome,
  StoredEvent,
  StoreStats,
} from './store.js';
import { assertNewEvents, assertPositiveInteger, copyEvent, deadLetterMatches, eventSize, withAttempt } from './validate.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Reject appends (`ERR_OUTBOX_FULL`) once pending and dead events would exceed this many bytes
   * (body, url, id and headers).
   * @default undefined (no limit)
   */
  maxBytes?: number;
  /**
   * Starts with these events (as returned by {@link MemoryStore.snapshot}); used by stores that persist
   * the memory store's state elsewhere, such as `LowdbStore`.
   * @default undefined (empty)
   */
  snapshot?: MemoryStoreSnapshot;
  /**
   * Ids of the snapshot's pending events to start claimed (a store that persists this one elsewhere and
   * rebuilds it keeps the leases it handed out).
   * @default undefined (none)
   */
  claimed?: ReadonlySet<string>;
}

/**
 * The pending events and dead letters of a {@link MemoryStore}, in order; claims are not part of it.
 * `order`: where an event with an ordering key stands among those of its key (absent: its place here).
 */
export interface MemoryStoreSnapshot {
  pending: (StoredEvent & { order?: number })[];
  dead: (DeadLetter & { order?: number })[];
}

interface PendingEntry extends StoredEvent {
  seq: number;
  /** Append order, kept through death and replay: an ordering key's events go by it. */
  order: number;
  size: number;
}

interface DeadEntry extends DeadLetter {
  seq: number;
  order: number;
  size: number;
}

/**
 * An `OutboxStore` that keeps everything in process memory: fast, and lost when the process exits.
 * For tests and for callers that accept losing pending webhooks on a crash.
 */
export class MemoryStore implements OutboxStore {
  #pending = new Map<string, PendingEntry>();
  /** Pending entries by arrival number, for {@link OldestPending} (which knows an entry by its number's two halves). */
  readonly #bySeq = new Map<number, PendingEntry>();
  readonly #oldest = new OldestPending({
    live: (high, low) => this.#bySeq.has(high * 2 ** 32 + low),
    createdAt: (high, low) => (this.#bySeq.get(high * 2 ** 32 + low) as PendingEntry).createdAt,
  });
  /** Unclaimed pending entries of each endpoint with any, soonest due first: a claim does not walk the backlog. */
  readonly #due = new Map<string, DueHeap>();
  readonly #keys = new OrderingKeys<PendingEntry>(
    (a, b) => a.order < b.order,
    (entry) => entry.supersede === true,
    (a, b) => a.url === b.url,
  );
  /** Pending entries out of the due heaps because their ordering key holds them back. */
  readonly #parked = new Set<PendingEntry>();
  #claimed = new Set<string>();
  #dead = new Map<string, DeadEntry>();
  #endpoints = new Map<string, EndpointStoreStats>();
  #delivered = 0;
  #bytes = 0;
  #seq = 0;
  #closed = false;
  readonly #maxBytes: number | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    assertPositiveInteger('maxBytes', options.maxBytes);
    this.#maxBytes = options.maxBytes;
    const pending = options.snapshot?.pending ?? [];
    const dead = options.snapshot?.dead ?? [];
    // New events come after every order the snapshot names.
    let last = pending.length + dead.length;
    for (const event of [pending, dead].flat()) last = Math.max(last, event.order ?? 0);
    for (const { order, ...event } of pending) {
      const seq = ++this.#seq;
      const entry: PendingEntry = { ...copyEvent(event), seq, order: order ?? seq, size: eventSize(event) };
      if (options.claimed?.has(entry.id) === true) {
        this.#claimed.add(entry.id);
        this.#track(entry);
        if (entry.orderingKey !== undefined) this.#keys.busy(entry.orderingKey, entry);
      } else {
        this.#addPending(entry);
      }
      this.#bytes += entry.size;
      this.#endpoint(entry.url).pending++;
    }
    for (const { order, ...letter } of dead) {
      const seq = ++this.#seq;
      const entry: DeadEntry = { ...copyEvent(letter), seq, order: order ?? seq, size: eventSize(letter) };
      this.#dead.set(entry.id, entry);
      this.#bytes += entry.size;
      this.#endpoint(entry.url).dead++;
    }
    this.#seq = Math.max(this.#seq, last);
  }

  /** A copy of the pending events (claimed ones included, as pending) and dead letters. */
  snapshot(): MemoryStoreSnapshot {
    return {
      pending: [...this.#pending.values()].map((entry) => withOrder(toStored(entry), entry.order)),
      dead: [...this.#dead.values()].map(({ seq: _seq, size: _size, order, ...letter }) => withOrder(copyEvent(letter), order)),
    };
  }

  /** Nothing to open; kept for the port. */
  async open(): Promise<void> {
    this.#assertOpen();
  }

  /** Accepts a batch; ids already pending or dead are skipped. */
  async append(events: readonly NewEvent[]): Promise<void> {
    this.#assertOpen();
    assertNewEvents(events);
    const fresh: PendingEntry[] = [];
    const seen = new Set<string>();
    let bytes = 0;
    for (const event of events) {
      if (this.#pending.has(event.id) || this.#dead.has(event.id) || seen.has(event.id)) continue;
      seen.add(event.id);
      const size = eventSize(event);
      bytes += size;
      const entry: PendingEntry = {
        id: event.id,
        url: event.url,
        headers: { ...event.headers },
        body: new Uint8Array(event.body),
        createdAt: event.createdAt,
        nextAttemptAt: event.nextAttemptAt,
        attempts: 0,
        history: [],
        seq: 0,
        order: 0,
        size,
      };
      if (event.orderingKey !== undefined) entry.orderingKey = event.orderingKey;
      if (event.supersede === true) entry.supersede = true;
      fresh.push(entry);
    }
    if (this.#maxBytes !== undefined && this.#bytes + bytes > this.#maxBytes) {
      throw new OutboxFullError(`The memory store is full (${this.#bytes} of ${this.#maxBytes} bytes used)`);
    }
    for (const entry of fresh) {
      entry.seq = ++this.#seq;
      entry.order = entry.seq;
      this.#addPending(entry);
      this.#endpoint(entry.url).pending++;
    }
    this.#bytes += bytes;
  }

  /** Leases due events, oldest due first. */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    this.#assertOpen();
    const heaps: DueHeap[] = [];
    for (const [url, heap] of request.endpoint === undefined ? this.#due : [[request.endpoint, this.#due.get(request.endpoint)] as const]) {
      if (heap !== undefined && request.excludeEndpoints?.has(url) !== true) heaps.push(heap);
    }
    const events: StoredEvent[] = [];
    const first = takeDue(heaps, {
      full: () => !(events.length < request.limit),
      before: (a, b) => dueBefore(a.peek() as PendingEntry, b.peek() as PendingEntry),
      due: (heap) => (heap.peek() as PendingEntry).nextAttemptAt <= request.now,
      take: (heap) => {
        const entry = heap.pop();
        if (entry.orderingKey !== undefined && !this.#keys.take(entry.orderingKey, entry)) {
          this.#parked.add(entry);
        } else {
          this.#claimed.add(entry.id);
          const event = toStored(entry);
          const key = entry.orderingKey;
          const by = key === undefined ? undefined : this.#keys.supersededBy(key, entry);
          events.push(event);
          if (by !== undefined && key !== undefined) {
            event.supersededBy = by.id;
            // The key's next ones that `by` supersedes too go with it (set aside, due, to an allowed endpoint).
            const may = (next: PendingEntry): boolean =>
              events.length < request.limit &&
              this.#parked.has(next) &&
              next.nextAttemptAt <= request.now &&
              (request.endpoint === undefined || next.url === request.endpoint) &&
              request.excludeEndpoints?.has(next.url) !== true;
            for (let next = this.#keys.takeSuperseded(key, by, may); next !== undefined; next = this.#keys.takeSuperseded(key, by, may)) {
              this.#parked.delete(next);
              this.#claimed.add(next.id);
              const more = toStored(next);
              more.supersededBy = by.id;
              events.push(more);
            }
          }
        }
        if (heap.peek() !== undefined) return true;
        this.#due.delete(entry.url);
        return false;
      },
    });
    const nextDueAt = first?.peek()?.nextAttemptAt;
    return { events, nextDueAt };
  }

  /** Applies outcomes of claimed events; outcomes for ids that are not claimed are ignored. */
  async settle(outcomes: readonly Outcome[]): Promise<void> {
    this.#assertOpen();
    for (const outcome of outcomes) {
      const entry = this.#pending.get(outcome.id);
      if (entry === undefined || !this.#claimed.has(outcome.id)) continue;
      this.#claimed.delete(outcome.id);
      switch (outcome.type) {
        case 'release':
          this.#ended(entry, true);
          break;
        case 'retry':
          entry.attempts += outcome.countsAsAttempt ? 1 : 0;
          entry.history = withAttempt(entry.history, outcome.attempt);
          entry.nextAttemptAt = outcome.nextAttemptAt;
          this.#ended(entry, true);
          break;
        case 'delivered':
          this.#remove(entry);
          this.#ended(entry, false);
          this.#delivered++;
          break;
        case 'superseded':
          this.#remove(entry);
          this.#ended(entry, false);
          break;
        case 'dead': {
          this.#remove(entry);
          this.#ended(entry, false);
          const dead: DeadEntry = {
            ...entry,
            attempts: entry.attempts + (outcome.attempt === undefined ? 0 : 1),
            history: withAttempt(entry.history, outcome.attempt),
            reason: outcome.reason,
            deadAt: outcome.at,
            seq: ++this.#seq,
          };
          this.#dead.set(dead.id, dead);
          this.#bytes += dead.size;
          this.#endpoint(dead.url).dead++;
          break;
        }
      }
    }
  }

  /** Dead letters, oldest first. */
  async deadLetters(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    this.#assertOpen();
    return this.#selectDead(query).map(({ seq: _seq, size: _size, order: _order, ...letter }) => copyEvent(letter));
  }

  /** The event with this id, pending, claimed or dead. */
  async get(id: string): Promise<FoundEvent | undefined> {
    this.#assertOpen();
    const pending = this.#pending.get(id);
    if (pending !== undefined) {
      const { seq: _seq, size: _size, order: _order, ...event } = pending;
      return { ...copyEvent(event), state: this.#claimed.has(id) ? 'claimed' : 'pending' };
    }
    const dead = this.#dead.get(id);
    if (dead === undefined) return undefined;
    const { seq: _seq, size: _size, order: _order, ...letter } = dead;
    return { ...copyEvent(letter), state: 'dead' };
  }

  /** The ids of the dead letters a query selects, oldest first. */
  async deadLetterIds(query: DeadLetterQuery): Promise<string[]> {
    this.#assertOpen();
    return this.#selectDead(query).map((entry) => entry.id);
  }

  #selectDead(query: DeadLetterQuery): DeadEntry[] {
    const wanted = query.ids === undefined ? undefined : new Set(query.ids);
    const result: DeadEntry[] = [];
    for (const entry of [...this.#dead.values()].sort((a, b) => a.deadAt - b.deadAt || a.seq - b.seq)) {
      if (query.limit !== undefined && result.length >= query.limit) break;
      if ((wanted === undefined || wanted.has(entry.id)) && deadLetterMatches(query, entry.url, entry.deadAt)) result.push(entry);
    }
    return result;
  }

  /** Makes dead letters pending again, due at `now`, with attempts and the age basis reset; to `url` when given. */
  async replay(ids?: readonly string[], now: number = Date.now(), url?: string): Promise<number> {
    this.#assertOpen();
    let count = 0;
    for (const id of ids ?? [...this.#dead.keys()]) {
      const entry = this.#dead.get(id);
      if (entry === undefined) continue;
      this.#dead.delete(id);
      const from = this.#endpoint(entry.url);
      from.dead--;
      this.#dropEndpointIfEmpty(entry.url, from);
      const { reason: _reason, deadAt: _deadAt, ...rest } = entry;
      const pending: PendingEntry = { ...rest, url: url ?? entry.url, attempts: 0, createdAt: now, nextAttemptAt: now, seq: ++this.#seq };
      pending.size = eventSize(pending);
      this.#bytes += pending.size - entry.size;
      this.#addPending(pending);
      this.#endpoint(pending.url).pending++;
      count++;
    }
    return count;
  }

  /**
   * Sends every pending (not claimed) and dead event of `from` to `to`: pending ones due at once with
   * attempts reset, dead ones stay dead.
   */
  async moveEndpoint(from: string, to: string, now: number = Date.now()): Promise<number> {
    this.#assertOpen();
    if (from === to) return 0;
    let moved = 0;
    const heap = this.#due.get(from);
    this.#due.delete(from);
    // Those their ordering key holds back move too, and stay set aside.
    const parked = [...this.#parked].filter((entry) => entry.url === from);
    for (const entry of [...parked, ...(heap?.takeAll() ?? [])]) {
      this.#retarget(entry, to, 'pending');
      entry.attempts = 0;
      entry.nextAttemptAt = Math.min(entry.nextAttemptAt, now);
      if (!this.#parked.has(entry)) this.#pushDue(entry);
      moved++;
    }
    for (const entry of this.#dead.values()) {
      if (entry.url !== from) continue;
      this.#retarget(entry, to, 'dead');
      moved++;
    }
    return moved;
  }

  /** Points an entry at another URL, with its endpoint counters and size. */
  #retarget(entry: PendingEntry | DeadEntry, to: string, counter: 'pending' | 'dead'): void {
    const from = this.#endpoint(entry.url);
    from[counter]--;
    this.#dropEndpointIfEmpty(entry.url, from);
    this.#endpoint(to)[counter]++;
    const size = eventSize({ ...entry, url: to });
    this.#bytes += size - entry.size;
    entry.size = size;
    entry.url = to;
  }

  /** Deletes dead letters. */
  async purge(ids?: readonly string[]): Promise<number> {
    this.#assertOpen();
    let count = 0;
    for (const id of ids ?? [...this.#dead.keys()]) {
      const entry = this.#dead.get(id);
      if (entry === undefined) continue;
      this.#dead.delete(id);
      this.#bytes -= entry.size;
      const endpoint = this.#endpoint(entry.url);
      endpoint.dead--;
      this.#dropEndpointIfEmpty(entry.url, endpoint);
      count++;
    }
    return count;
  }

  /** Counters. */
  stats(): StoreStats {
    const oldestPendingAt = this.#oldest.oldest();
    const endpoints: Record<string, EndpointStoreStats> = {};
    for (const [url, counters] of this.#endpoints) endpoints[url] = { ...counters };
    return {
      pending: this.#pending.size,
      claimed: this.#claimed.size,
      delivered: this.#delivered,
      dead: this.#dead.size,
      corrupt: 0,
      oldestPendingAt,
      bytesOnDisk: 0,
      endpoints,
    };
  }

  /** Closes the store; later calls reject with `ERR_OUTBOX_CLOSED`. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  #addPending(entry: PendingEntry): void {
    this.#track(entry);
    if (entry.orderingKey === undefined || this.#keys.join(entry.orderingKey, entry)) this.#pushDue(entry);
    else this.#parked.add(entry);
  }

  #track(entry: PendingEntry): void {
    this.#pending.set(entry.id, entry);
    this.#bySeq.set(entry.seq, entry);
    this.#oldest.push(Math.floor(entry.seq / 2 ** 32), entry.seq >>> 0, entry.createdAt, this.#pending.size);
  }

  /**
   * The claim of `entry` ended: `again` when it is pending again (retry, release), else it is gone. With an
   * ordering key, the key's next goes back into its due heap if it was set aside, and `entry` waits if an
   * earlier event of its key (a replayed one) came meanwhile.
   */
  #ended(entry: PendingEntry, again: boolean): void {
    const key = entry.orderingKey;
    if (key === undefined) {
      if (again) this.#pushDue(entry);
      return;
    }
    const next = this.#keys.finished(key, entry, again);
    if (again && next !== entry) this.#parked.add(entry);
    if (next !== undefined && (next === entry || this.#parked.delete(next))) this.#pushDue(next);
  }

  #pushDue(entry: PendingEntry): void {
    let heap = this.#due.get(entry.url);
    if (heap === undefined) {
      heap = new DueHeap();
      this.#due.set(entry.url, heap);
    }
    heap.push(entry);
  }

  #remove(entry: PendingEntry): void {
    this.#pending.delete(entry.id);
    this.#bySeq.delete(entry.seq);
    this.#bytes -= entry.size;
    const endpoint = this.#endpoint(entry.url);
    endpoint.pending--;
    this.#dropEndpointIfEmpty(entry.url, endpoint);
  }

  #endpoint(url: string): EndpointStoreStats {
    let counters = this.#endpoints.get(url);
    if (counters === undefined) {
      counters = { pending: 0, dead: 0 };
      this.#endpoints.set(url, counters);
    }
    return counters;
  }

  #dropEndpointIfEmpty(url: string, counters: EndpointStoreStats): void {
    if (counters.pending === 0 && counters.dead === 0) this.#endpoints.delete(url);
  }

  #assertOpen(): void {
    if (this.#closed) throw new OutboxClosedError('The store is closed');
  }
}

/** Whether `a` is due before `b` (then the older arrival first). */
function dueBefore(a: PendingEntry, b: PendingEntry): boolean {
  return a.nextAttemptAt < b.nextAttemptAt || (a.nextAttemptAt === b.nextAttemptAt && a.seq < b.seq);
}

/** A binary min-heap of pending entries by {@link dueBefore}. */
class DueHeap {
  readonly #items: PendingEntry[] = [];

  peek(): PendingEntry | undefined {
    return this.#items[0];
  }

  push(entry: PendingEntry): void {
    const items = this.#items;
    let i = items.length;
    items.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!dueBefore(entry, items[parent] as PendingEntry)) break;
      items[i] = items[parent] as PendingEntry;
      i = parent;
    }
    items[i] = entry;
  }

  /** Empties the heap; returns what it held, in no order. */
  takeAll(): PendingEntry[] {
    return this.#items.splice(0);
  }

  /** Removes and returns the first entry; the heap must not be empty. */
  pop(): PendingEntry {
    const items = this.#items;
    const top = items[0] as PendingEntry;
    const last = items.pop() as PendingEntry;
    const size = items.length;
    if (size === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && dueBefore(items[child + 1] as PendingEntry, items[child] as PendingEntry)) child++;
      if (!dueBefore(items[child] as PendingEntry, last)) break;
      items[i] = items[child] as PendingEntry;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function toStored(entry: PendingEntry): StoredEvent {
  const { seq: _seq, size: _size, order: _order, ...event } = entry;
  return copyEvent(event);
}

/** `event` as a snapshot holds it: with its `order` when it has an ordering key (the only events it matters for). */
function withOrder<T extends StoredEvent>(event: T, order: number): T & { order?: number } {
  return event.orderingKey === undefined ? event : { ...event, order };
}
