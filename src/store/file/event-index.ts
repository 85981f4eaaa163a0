import { Float64Chunks, SparseChunks, Uint32Chunks, Uint8Chunks } from '../chunked-array.js';
import { OldestPending } from '../oldest-pending.js';
import { OrderingKeys } from '../ordering-keys.js';
import { takeDue } from '../take-due.js';
import { hashBytes } from './format.js';

const EMPTY = Buffer.alloc(0);

/**
 * The in-memory index of a `FileStore`: one compact slot per pending or dead event in chunked typed arrays
 * (where its records are on disk, its schedule and counters), a hash set of event ids (32-bit hashes of
 * their bytes in open-addressing tables: no id strings kept for pending events), the ids of claimed
 * and dead events (they are looked up by id), and one due-time heap per endpoint. Payloads and
 * histories stay on disk. Events with an ordering key also have their key here, and the key's order
 * (`OrderingKeys`: earliest event record first) decides which of them a claim may take.
 */

/** How many tables the id hash set is split into, and the shift that picks one from a hash. */
const TABLE_SHIFT = 26;
const TABLES = 2 ** (32 - TABLE_SHIFT);

export const FREE = 0;
export const PENDING = 1;
export const CLAIMED = 2;
export const DEAD = 3;

/** Where a record lives: segment id, byte offset of its frame, frame length. */
export interface Location {
  seg: number;
  off: number;
  len: number;
}

class SlotHeap {
  items = new Uint32Chunks();
  size = 0;
}

/** One endpoint URL with its pending heap and counters. */
export interface EndpointEntry {
  url: string;
  urlBytes: Buffer;
  heap: SlotHeap;
  pending: number;
  dead: number;
}

export class EventIndex {
  /** `seqLimit`: the arrival number at which arrival numbers are compacted (a parameter only for tests). */
  constructor(seqLimit = 0xffffffff) {
    this.#seqLimit = seqLimit;
  }

  status = new Uint8Chunks(1024);
  evSeg = new Uint32Chunks(1024);
  evOff = new Uint32Chunks(1024);
  evLen = new Uint32Chunks(1024);
  /** Where the slot's latest state record is (0: none): only retried, dead or replayed events have one. */
  stSeg = new SparseChunks(Uint32Array);
  stOff = new SparseChunks(Uint32Array);
  stLen = new SparseChunks(Uint32Array);
  /** Due time for pending slots; `deadAt` for dead ones. Set it with {@link setNext} or {@link setTimes}. */
  next = new Float64Chunks(1024);
  /**
   * Creation time, kept only where it differs from `next` (NaN: the same): a backlog that was never tried
   * stores one time per event, not two. Read it with {@link createdAt}; `next` changes through {@link setNext}.
   */
  readonly #created = new SparseChunks(Float64Array, NaN);
  attempts = new SparseChunks(Uint32Array);
  endpoint = new Uint32Chunks(1024);
  /** Order of arrival (append or replay), the tie-breaker between equal due times. */
  seq = new Uint32Chunks(1024);
  /** Hash of the event id's bytes. */
  hash = new Uint32Chunks(1024);

  /** Ids of claimed and dead slots (the only ones looked up by id), both ways. */
  readonly names = new Map<string, number>();
  readonly #nameOf = new Map<number, string>();
  /** By index (the `endpoint` column); an index whose last event is gone is reused for the next new URL. */
  readonly endpoints: EndpointEntry[] = [];
  readonly #freeEndpoints: number[] = [];
  /** The endpoints whose heap is not empty: a claim looks at these only. */
  readonly #scheduled = new Set<EndpointEntry>();
  readonly #endpointByUrl = new Map<string, number>();
  readonly #endpointByHash = new Map<number, number[]>();
  /**
   * The id hash set: {@link TABLES} open-addressing tables (linear probing) of slot + 1, chosen by the hash's
   * top bits and probed from its low bits; 0 is empty. Each grows on its own, so growing moves a 64th of the
   * ids (one table for all ids paused the event loop ~60 ms at 734k ids on our VM). Built after recovery.
   */
  readonly #tables: Int32Array[] = [];
  readonly #tableCounts = new Int32Array(TABLES);
  /** During recovery: the slots of each segment's events, in file order (slots are not reused then). */
  #ranges: Map<number, { first: number; end: number }> | undefined = new Map();
  #current: { first: number; end: number } | undefined;
  #free: number[] = [];
  #used = 0;
  #seq = 0;
  readonly #seqLimit: number;
  pending = 0;
  claimed = 0;
  dead = 0;
  /** The ordering key of each live slot that has one. */
  readonly #keyOf = new Map<number, string>();
  /** The id of each live slot whose event supersedes (`supersede: true`): few, and their ids are needed to report them. */
  readonly #superseders = new Map<number, string>();
  readonly #keys = new OrderingKeys<number>(
    (a, b) => this.evSeg.get(a) < this.evSeg.get(b) || (this.evSeg.get(a) === this.evSeg.get(b) && this.evOff.get(a) < this.evOff.get(b)),
    (slot) => this.#superseders.has(slot),
    (a, b) => this.endpoint.get(a) === this.endpoint.get(b),
  );
  /** Keyed pending slots out of their endpoint's heap while their key holds them back. */
  readonly #parked = new Set<number>();
  readonly #oldest = new OldestPending({
    live: (slot, seq) => this.seq.get(slot) === seq && (this.status.get(slot) === PENDING || this.status.get(slot) === CLAIMED),
    createdAt: (slot) => this.createdAt(slot),
  });

  /**
   * Allocates a slot for a new pending event whose id hashes to `hash`; the caller fills its locations.
   * Not yet in a heap.
   */
  add(hash: number, endpoint: number, createdAt: number, nextAttemptAt: number): number {
    const seq = this.#nextSeq();
    const reused = this.#ranges === undefined ? this.#free.pop() : undefined;
    const slot = reused ?? this.#allocate();
    this.stSeg.set(slot, 0);
    this.attempts.set(slot, 0);
    this.status.set(slot, PENDING);
    this.hash.set(slot, hash);
    this.setTimes(slot, createdAt, nextAttemptAt);
    this.seq.set(slot, seq);
    this.endpoint.set(slot, endpoint);
    (this.endpoints[endpoint] as EndpointEntry).pending++;
    this.pending++;
    this.#track(slot);
    if (this.#tables.length > 0) this.#insertHash(slot);
    return slot;
  }

  /** Recovery: the events of segment `seg` are about to be added, in file order. */
  beginSegment(seg: number): void {
    this.#ranges?.set(seg, { first: this.#used, end: Infinity });
    if (this.#current !== undefined) this.#current.end = this.#used;
    this.#current = this.#ranges?.get(seg);
  }

  /** Recovery: the slot of the live event whose record is at (`seg`, `off`), if any. */
  recoveredSlot(seg: number, off: number): number | undefined {
    const range = this.#ranges?.get(seg);
    if (range === undefined) return undefined;
    const end = Math.min(range.end, this.#used);
    let lo = range.first;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.evOff.get(mid) < off) lo = mid + 1;
      else hi = mid;
    }
    return lo < end && this.evOff.get(lo) === off && this.status.get(lo) !== FREE ? lo : undefined;
  }

  /** Ends recovery: builds the id hash set and the heaps; from now on freed slots are reused. */
  finishRecovery(): void {
    this.#ranges = undefined;
    this.#current = undefined;
    let size = 16;
    while (size * 7 * TABLES < (this.pending + this.dead) * 10) size *= 2;
    for (let t = 0; t < TABLES; t++) this.#tables.push(new Int32Array(size));
    const counts = this.endpoints.map(() => 0);
    for (let slot = 0; slot < this.#used; slot++) {
      const status = this.status.get(slot);
      if (status === FREE) {
        this.#free.push(slot);
        continue;
      }
      this.#insertHash(slot);
      if (status === PENDING) counts[this.endpoint.get(slot)] = (counts[this.endpoint.get(slot)] as number) + 1;
    }
    this.endpoints.forEach((entry, i) => {
      entry.heap.items = new Uint32Chunks(counts[i] ?? 0);
      entry.heap.size = 0;
    });
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.status.get(slot) !== PENDING) continue;
      const key = this.#keyOf.get(slot);
      if (key !== undefined) {
        // Slots are in journal order here, so the first of each key is its earliest.
        if (!this.#keys.join(key, slot)) {
          this.#parked.add(slot);
          continue;
        }
      }
      const heap = (this.endpoints[this.endpoint.get(slot)] as EndpointEntry).heap;
      heap.items.set(heap.size++, slot);
    }
    this.endpoints.forEach((entry, index) => {
      for (let i = (entry.heap.size >> 1) - 1; i >= 0; i--) this.#siftDown(entry.heap, i, entry.heap.items.get(i));
      if (entry.heap.size > 0) this.#scheduled.add(entry);
      if (entry.pending === 0 && entry.dead === 0) this.#freeEndpoint(index, entry);
    });
    this.#retrack(this.pending);
  }

  /** Live slots (pending, claimed or dead) whose id hashes to `hash`: the candidates for an id. */
  slotsWithHash(hash: number): number[] {
    const found: number[] = [];
    const table = this.#tables[hash >>> TABLE_SHIFT];
    if (table === undefined) return found;
    const mask = table.length - 1;
    for (let i = hash & mask; table[i] !== 0; i = (i + 1) & mask) {
      const slot = (table[i] as number) - 1;
      if (this.hash.get(slot) === hash) found.push(slot);
    }
    return found;
  }

  /** A slot's creation time. */
  createdAt(slot: number): number {
    const created = this.#created.get(slot);
    return Number.isNaN(created) ? this.next.get(slot) : created;
  }

  /** Sets a slot's due time (`deadAt` when dead); its creation time stays what it was. */
  setNext(slot: number, next: number): void {
    const before = this.next.get(slot);
    if (next === before) return;
    if (Number.isNaN(this.#created.get(slot))) this.#created.set(slot, before);
    this.next.set(slot, next);
  }

  /** Sets a slot's creation and due times. */
  setTimes(slot: number, createdAt: number, next: number): void {
    this.next.set(slot, next);
    this.#created.set(slot, createdAt === next ? NaN : createdAt);
  }

  /** Chunks allocated for retry state and separate creation times: 0 while no event was retried. */
  sparseChunks(): number {
    return this.stSeg.chunks + this.stOff.chunks + this.stLen.chunks + this.attempts.chunks + this.#created.chunks;
  }

  /** The id of a claimed or dead slot. */
  nameOf(slot: number): string | undefined {
    return this.#nameOf.get(slot);
  }

  /** Remembers the id of a slot that is being claimed or is dead. */
  setName(slot: number, id: string): void {
    this.names.set(id, slot);
    this.#nameOf.set(slot, id);
  }

  /** Forgets the id of a slot that went back to pending. */
  clearName(slot: number): void {
    const id = this.#nameOf.get(slot);
    if (id === undefined) return;
    this.#nameOf.delete(slot);
    if (this.names.get(id) === slot) this.names.delete(id);
  }

  /** The endpoint index for a URL, created when new. */
  endpointOf(url: string): number {
    return this.#endpointByUrl.get(url) ?? this.#newEndpoint(url, Buffer.from(url));
  }

  /** The endpoint index for the URL in `bytes[start, end)`, without making a string unless it is new. */
  endpointOfBytes(bytes: Buffer, start: number, end: number): number {
    const hash = hashBytes(bytes, start, end);
    for (const index of this.#endpointByHash.get(hash) ?? []) {
      const urlBytes = (this.endpoints[index] as EndpointEntry).urlBytes;
      if (urlBytes.length === end - start && bytes.compare(urlBytes, 0, urlBytes.length, start, end) === 0) return index;
    }
    return this.endpointOf(bytes.toString('utf8', start, end));
  }

  /** Gives a new slot its ordering key (before it is first scheduled); `supersedeId`: it supersedes, and has this id. */
  setKey(slot: number, key: string, supersedeId?: string): void {
    this.#keyOf.set(slot, key);
    if (supersedeId !== undefined) this.#superseders.set(slot, supersedeId);
  }

  /** Whether a slot's event supersedes earlier ones of its key. */
  supersedes(slot: number): boolean {
    return this.#superseders.has(slot);
  }

  /** A slot's ordering key, if it has one. */
  keyOf(slot: number): string | undefined {
    return this.#keyOf.get(slot);
  }

  /** Frees a slot (delivered or purged). The slot must not be in a heap. */
  remove(slot: number): void {
    const index = this.endpoint.get(slot);
    const entry = this.endpoints[index] as EndpointEntry;
    const status = this.status.get(slot);
    if (status === CLAIMED) this.#claimEnded(slot, false);
    this.#keyOf.delete(slot);
    this.#superseders.delete(slot);
    if (status === DEAD) {
      entry.dead--;
      this.dead--;
    } else {
      entry.pending--;
      this.pending--;
      if (status === CLAIMED) this.claimed--;
    }
    if (this.#tables.length > 0) this.#deleteHash(slot);
    this.clearName(slot);
    this.status.set(slot, FREE);
    if (this.#ranges === undefined) {
      this.#free.push(slot);
      if (entry.pending === 0 && entry.dead === 0) this.#freeEndpoint(index, entry);
    }
  }

  /** Marks a claimed or pending (not in a heap; not yet scheduled if keyed: recovery) slot dead. */
  markDead(slot: number, deadAt: number): void {
    const entry = this.endpoints[this.endpoint.get(slot)] as EndpointEntry;
    if (this.status.get(slot) === CLAIMED) {
      this.claimed--;
      this.#claimEnded(slot, false);
    }
    this.status.set(slot, DEAD);
    this.setNext(slot, deadAt);
    entry.pending--;
    entry.dead++;
    this.pending--;
    this.dead++;
  }

  /** Makes a dead slot pending again (not yet in a heap). */
  revive(slot: number, createdAt: number, nextAttemptAt: number): void {
    const entry = this.endpoints[this.endpoint.get(slot)] as EndpointEntry;
    this.status.set(slot, PENDING);
    this.setTimes(slot, createdAt, nextAttemptAt);
    this.attempts.set(slot, 0);
    this.seq.set(slot, this.#nextSeq());
    entry.dead--;
    entry.pending++;
    this.dead--;
    this.pending++;
    this.#track(slot);
  }

  /**
   * Moves a slot that is in no heap (dead, or pending during recovery) to endpoint `index`; its old
   * endpoint is forgotten once empty (outside recovery, like {@link remove}).
   */
  moveTo(slot: number, index: number): void {
    const from = this.endpoint.get(slot);
    if (from === index) return;
    const old = this.endpoints[from] as EndpointEntry;
    const next = this.endpoints[index] as EndpointEntry;
    if (this.status.get(slot) === DEAD) {
      old.dead--;
      next.dead++;
    } else {
      old.pending--;
      next.pending++;
    }
    this.endpoint.set(slot, index);
    if (this.#ranges === undefined && old.pending === 0 && old.dead === 0) this.#freeEndpoint(from, old);
  }

  /** The index of the endpoint of `url`, if it has events. */
  findEndpoint(url: string): number | undefined {
    return this.#endpointByUrl.get(url);
  }

  /** The pending (claimed included) and dead slots of endpoint `index`, in slot order. */
  slotsOf(index: number): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#used; slot++) if (this.status.get(slot) !== FREE && this.endpoint.get(slot) === index) slots.push(slot);
    return slots;
  }

  /**
   * Takes `slots` out of endpoint `index`'s heap, and those set aside by their key out of that set (they
   * stay pending, claimable by nobody, and are not brought back when their key frees, until {@link putBack}).
   */
  unschedule(index: number, slots: ReadonlySet<number>): void {
    for (const slot of slots) this.#parked.delete(slot);
    const entry = this.endpoints[index] as EndpointEntry;
    const { heap } = entry;
    const kept: number[] = [];
    for (let i = 0; i < heap.size; i++) {
      const slot = heap.items.get(i);
      if (!slots.has(slot)) kept.push(slot);
    }
    if (kept.length === heap.size) return;
    heap.size = 0;
    this.#scheduled.delete(entry);
    for (const slot of kept) this.#push(slot);
  }

  /** Puts a pending slot that {@link unschedule} took out back into its endpoint's heap (its key decides at the claim). */
  putBack(slot: number): void {
    this.#push(slot);
  }

  /**
   * Puts a new, replayed or claimed slot into its endpoint's heap as pending (after append, replay, retry or
   * release). A keyed slot that its key holds back is set aside instead, until its key's earlier events
   * are done.
   */
  schedule(slot: number): void {
    const claimed = this.status.get(slot) === CLAIMED;
    if (claimed) this.claimed--;
    this.status.set(slot, PENDING);
    const key = this.#keyOf.get(slot);
    if (key !== undefined && (claimed ? this.#claimEnded(slot, true) !== slot : !this.#keys.join(key, slot))) {
      if (!claimed) this.#parked.add(slot);
      return;
    }
    this.#push(slot);
  }

  /**
   * The claim of a keyed `slot` ended (`again`: pending again). The key's next, if set aside, goes back into
   * its heap; `slot`, pending again but not its key's next, is set aside. Returns the key's next.
   */
  #claimEnded(slot: number, again: boolean): number | undefined {
    const key = this.#keyOf.get(slot);
    if (key === undefined) return undefined;
    const next = this.#keys.finished(key, slot, again);
    if (again && next !== slot) this.#parked.add(slot);
    if (next !== undefined && next !== slot && this.#parked.delete(next)) this.#push(next);
    return next;
  }

  #push(slot: number): void {
    const entry = this.endpoints[this.endpoint.get(slot)] as EndpointEntry;
    const { heap } = entry;
    if (heap.size === 0) this.#scheduled.add(entry);
    heap.items.reserve(heap.size + 1);
    let i = heap.size++;
    const items = heap.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items.get(parent);
      if (!this.#before(slot, p)) break;
      items.set(i, p);
      i = parent;
    }
    items.set(i, slot);
  }

  /**
   * Claims up to `limit` due slots, oldest due first across the allowed endpoints; also returns the
   * earliest due time left among them, and the claimed slots that a later pending event of their key
   * supersedes (with that event's id).
   */
  claim(
    limit: number,
    now: number,
    allowed: (url: string) => boolean,
  ): { slots: number[]; nextDueAt: number | undefined; superseded: Map<number, string> | undefined } {
    let superseded: Map<number, string> | undefined;
    const candidates: EndpointEntry[] = [];
    for (const entry of this.#scheduled) if (allowed(entry.url)) candidates.push(entry);
    const slots: number[] = [];
    const first = takeDue(candidates, {
      full: () => !(slots.length < limit),
      before: (a, b) => this.#before(a.heap.items.get(0), b.heap.items.get(0)),
      due: (entry) => this.next.get(entry.heap.items.get(0)) <= now,
      take: (entry) => {
        const slot = this.#pop(entry);
        const key = this.#keyOf.get(slot);
        if (key !== undefined && !this.#keys.take(key, slot)) {
          this.#parked.add(slot);
          return entry.heap.size > 0;
        }
        this.status.set(slot, CLAIMED);
        this.claimed++;
        slots.push(slot);
        const by = key === undefined ? undefined : this.#keys.supersededBy(key, slot);
        if (by !== undefined && key !== undefined) {
          const id = this.#superseders.get(by) as string;
          const marked = (superseded ??= new Map());
          marked.set(slot, id);
          // The key's next ones that `by` supersedes too go with it (set aside, due, to an allowed endpoint).
          const may = (next: number): boolean =>
            slots.length < limit &&
            this.#parked.has(next) &&
            this.next.get(next) <= now &&
            allowed((this.endpoints[this.endpoint.get(next)] as EndpointEntry).url);
          for (let next = this.#keys.takeSuperseded(key, by, may); next !== undefined; next = this.#keys.takeSuperseded(key, by, may)) {
            this.#parked.delete(next);
            this.status.set(next, CLAIMED);
            this.claimed++;
            slots.push(next);
            marked.set(next, id);
          }
        }
        return entry.heap.size > 0;
      },
    });
    return { slots, nextDueAt: first === undefined ? undefined : this.next.get(first.heap.items.get(0)), superseded };
  }

  /** Creation time of the oldest pending event (claimed ones included); O(1) amortised. */
  oldestPendingAt(): number | undefined {
    return this.#oldest.oldest();
  }

  /** Entries examined so far to answer {@link oldestPendingAt} (a measure of its cost, for tests). */
  get oldestVisits(): number {
    return this.#oldest.visits;
  }

  /** Dead slots, oldest `deadAt` first. */
  deadSlots(): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#used; slot++) if (this.status.get(slot) === DEAD) slots.push(slot);
    return slots.sort((a, b) => this.next.get(a) - this.next.get(b) || this.seq.get(a) - this.seq.get(b));
  }

  #before(a: number, b: number): boolean {
    const na = this.next.get(a);
    const nb = this.next.get(b);
    return na < nb || (na === nb && this.seq.get(a) < this.seq.get(b));
  }

  #pop(entry: EndpointEntry): number {
    const { heap } = entry;
    const top = heap.items.get(0);
    const last = heap.items.get(--heap.size);
    if (heap.size > 0) this.#siftDown(heap, 0, last);
    else this.#scheduled.delete(entry);
    return top;
  }

  /** Moves `slot`, placed at `i`, down to where it belongs. */
  #siftDown(heap: SlotHeap, start: number, slot: number): void {
    const items = heap.items;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.size) break;
      const right = left + 1;
      const child = right < heap.size && this.#before(items.get(right), items.get(left)) ? right : left;
      const c = items.get(child);
      if (!this.#before(c, slot)) break;
      items.set(i, c);
      i = child;
    }
    items.set(i, slot);
  }

  #insertHash(slot: number): void {
    const hash = this.hash.get(slot);
    const t = hash >>> TABLE_SHIFT;
    let table = this.#tables[t] as Int32Array;
    const count = (this.#tableCounts[t] as number) + 1;
    if (count * 10 > table.length * 7) table = this.#rehash(t, table.length * 2);
    const mask = table.length - 1;
    let i = hash & mask;
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = slot + 1;
    this.#tableCounts[t] = count;
  }

  /** Removes a slot from the table, shifting later entries of its probe run back (no deletion markers). */
  #deleteHash(slot: number): void {
    const hash = this.hash.get(slot);
    const t = hash >>> TABLE_SHIFT;
    const table = this.#tables[t] as Int32Array;
    const mask = table.length - 1;
    let i = hash & mask;
    while (table[i] !== 0 && table[i] !== slot + 1) i = (i + 1) & mask;
    if (table[i] === 0) return;
    for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const home = this.hash.get((table[j] as number) - 1) & mask;
      // Entry j may move to the hole at i when its home is not in the cyclic range (i, j].
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
        table[i] = table[j] as number;
        i = j;
      }
    }
    table[i] = 0;
    this.#tableCounts[t] = (this.#tableCounts[t] as number) - 1;
  }

  /** Table `t` rebuilt with `size` entries. */
  #rehash(t: number, size: number): Int32Array {
    const old = this.#tables[t] as Int32Array;
    const table = new Int32Array(size);
    const mask = size - 1;
    for (const entry of old) {
      if (entry === 0) continue;
      let i = this.hash.get(entry - 1) & mask;
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = entry;
    }
    this.#tables[t] = table;
    return table;
  }

  /**
   * The next arrival number. Kept in 32 bits: after 4 billion arrivals the live slots are renumbered in
   * their current order (once, O(n log n)), which keeps every heap valid.
   */
  #nextSeq(): number {
    if (this.#seq >= this.#seqLimit) {
      const live: number[] = [];
      for (let slot = 0; slot < this.#used; slot++) if (this.status.get(slot) !== FREE) live.push(slot);
      live.sort((a, b) => this.seq.get(a) - this.seq.get(b));
      live.forEach((slot, i) => this.seq.set(slot, i + 1));
      this.#seq = live.length;
      this.#retrack(this.pending);
    }
    return ++this.#seq;
  }

  /** Tracks a slot that just became pending (not during recovery: creation times may still change then). */
  #track(slot: number): void {
    if (this.#ranges === undefined) this.#oldest.push(slot, this.seq.get(slot), this.createdAt(slot), this.pending);
  }

  /** Tracks every pending slot afresh, in slot order (after recovery or renumbering arrivals). */
  #retrack(capacity: number): void {
    this.#oldest.clear(capacity);
    for (let slot = 0; slot < this.#used; slot++) {
      const status = this.status.get(slot);
      if (status === PENDING || status === CLAIMED) this.#oldest.push(slot, this.seq.get(slot), this.createdAt(slot), this.pending);
    }
  }

  #newEndpoint(url: string, urlBytes: Buffer): number {
    const index = this.#freeEndpoints.pop() ?? this.endpoints.length;
    this.endpoints[index] = { url, urlBytes, heap: new SlotHeap(), pending: 0, dead: 0 };
    this.#endpointByUrl.set(url, index);
    const hash = hashBytes(urlBytes, 0, urlBytes.length);
    this.#endpointByHash.set(hash, [...(this.#endpointByHash.get(hash) ?? []), index]);
    return index;
  }

  /**
   * An endpoint without events (none pending, claimed or dead) is forgotten and its index reused, so
   * memory does not grow with every URL ever enqueued to (per-event callback URLs).
   */
  #freeEndpoint(index: number, entry: EndpointEntry): void {
    this.#endpointByUrl.delete(entry.url);
    const hash = hashBytes(entry.urlBytes, 0, entry.urlBytes.length);
    const others = (this.#endpointByHash.get(hash) ?? []).filter((other) => other !== index);
    if (others.length > 0) this.#endpointByHash.set(hash, others);
    else this.#endpointByHash.delete(hash);
    this.endpoints[index] = { url: '', urlBytes: EMPTY, heap: new SlotHeap(), pending: 0, dead: 0 };
    this.#freeEndpoints.push(index);
  }

  #allocate(): number {
    if (this.#used === this.status.capacity) {
      const columns = [this.status, this.evSeg, this.evOff, this.evLen, this.next, this.endpoint, this.seq, this.hash];
      for (const column of columns) column.reserve(this.#used + 1);
    }
    return this.#used++;
  }
}
