import { grow } from '../grow.js';
import { OldestPending } from '../oldest-pending.js';
import { hashBytes } from './format.js';

/**
 * The in-memory index of a `FileStore`: one compact slot per pending or dead event in typed arrays
 * (where its records are on disk, its schedule and counters), a hash set of event ids (32-bit hashes of
 * their bytes in an open-addressing table: no id strings kept for pending events), the ids of claimed
 * and dead events (they are looked up by id), and one due-time heap per endpoint. Payloads and
 * histories stay on disk.
 */

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
  items = new Int32Array(16);
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

  status = new Uint8Array(1024);
  evSeg = new Uint32Array(1024);
  evOff = new Uint32Array(1024);
  evLen = new Uint32Array(1024);
  stSeg = new Uint32Array(1024);
  stOff = new Uint32Array(1024);
  stLen = new Uint32Array(1024);
  /** Due time for pending slots; `deadAt` for dead ones. */
  next = new Float64Array(1024);
  created = new Float64Array(1024);
  attempts = new Uint32Array(1024);
  endpoint = new Uint32Array(1024);
  /** Order of arrival (append or replay), the tie-breaker between equal due times. */
  seq = new Uint32Array(1024);
  /** Hash of the event id's bytes. */
  hash = new Uint32Array(1024);

  /** Ids of claimed and dead slots (the only ones looked up by id), both ways. */
  readonly names = new Map<string, number>();
  readonly #nameOf = new Map<number, string>();
  readonly endpoints: EndpointEntry[] = [];
  readonly #endpointByUrl = new Map<string, number>();
  readonly #endpointByHash = new Map<number, number[]>();
  /** Open-addressing table (linear probing) of slot + 1 by id hash; 0 is empty. Built after recovery. */
  #table = new Int32Array(0);
  #tableCount = 0;
  #hashed = false;
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
  readonly #oldest = new OldestPending({
    live: (slot, seq) => this.seq[slot] === seq && (this.status[slot] === PENDING || this.status[slot] === CLAIMED),
    createdAt: (slot) => this.created[slot] as number,
  });

  /**
   * Allocates a slot for a new pending event whose id hashes to `hash`; the caller fills its locations.
   * Not yet in a heap.
   */
  add(hash: number, endpoint: number, createdAt: number, nextAttemptAt: number): number {
    const seq = this.#nextSeq();
    const reused = this.#ranges === undefined ? this.#free.pop() : undefined;
    const slot = reused ?? this.#allocate();
    if (reused !== undefined) {
      // A slot never used before is still zero: not writing it leaves those pages untouched (and out of
      // the RSS) while no event has retry state.
      this.stSeg[slot] = 0;
      this.attempts[slot] = 0;
    }
    this.status[slot] = PENDING;
    this.hash[slot] = hash;
    this.next[slot] = nextAttemptAt;
    this.created[slot] = createdAt;
    this.seq[slot] = seq;
    this.endpoint[slot] = endpoint;
    (this.endpoints[endpoint] as EndpointEntry).pending++;
    this.pending++;
    this.#track(slot);
    if (this.#hashed) this.#insertHash(slot);
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
      if ((this.evOff[mid] as number) < off) lo = mid + 1;
      else hi = mid;
    }
    return lo < end && this.evOff[lo] === off && this.status[lo] !== FREE ? lo : undefined;
  }

  /** Ends recovery: builds the id hash set and the heaps; from now on freed slots are reused. */
  finishRecovery(): void {
    this.#ranges = undefined;
    this.#current = undefined;
    let size = 1024;
    while (size * 7 < (this.pending + this.dead) * 10) size *= 2;
    this.#table = new Int32Array(size);
    this.#hashed = true;
    const counts = this.endpoints.map(() => 0);
    for (let slot = 0; slot < this.#used; slot++) {
      const status = this.status[slot];
      if (status === FREE) {
        this.#free.push(slot);
        continue;
      }
      this.#insertHash(slot);
      if (status === PENDING) counts[this.endpoint[slot] as number] = (counts[this.endpoint[slot] as number] as number) + 1;
    }
    this.endpoints.forEach((entry, i) => {
      entry.heap.items = new Int32Array(Math.max(16, counts[i] as number));
      entry.heap.size = 0;
    });
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.status[slot] !== PENDING) continue;
      const heap = (this.endpoints[this.endpoint[slot] as number] as EndpointEntry).heap;
      heap.items[heap.size++] = slot;
    }
    for (const entry of this.endpoints) for (let i = (entry.heap.size >> 1) - 1; i >= 0; i--) this.#siftDown(entry.heap, i, entry.heap.items[i] as number);
    this.#retrack(this.pending);
  }

  /** Live slots (pending, claimed or dead) whose id hashes to `hash`: the candidates for an id. */
  slotsWithHash(hash: number): number[] {
    const found: number[] = [];
    const table = this.#table;
    if (table.length === 0) return found;
    const mask = table.length - 1;
    for (let i = hash & mask; table[i] !== 0; i = (i + 1) & mask) {
      const slot = (table[i] as number) - 1;
      if (this.hash[slot] === hash) found.push(slot);
    }
    return found;
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

  /** Frees a slot (delivered or purged). The slot must not be in a heap. */
  remove(slot: number): void {
    const entry = this.endpoints[this.endpoint[slot] as number] as EndpointEntry;
    const status = this.status[slot];
    if (status === DEAD) {
      entry.dead--;
      this.dead--;
    } else {
      entry.pending--;
      this.pending--;
      if (status === CLAIMED) this.claimed--;
    }
    if (this.#hashed) this.#deleteHash(slot);
    this.clearName(slot);
    this.status[slot] = FREE;
    if (this.#ranges === undefined) this.#free.push(slot);
  }

  /** Marks a claimed or pending (not in a heap) slot dead. */
  markDead(slot: number, deadAt: number): void {
    const entry = this.endpoints[this.endpoint[slot] as number] as EndpointEntry;
    if (this.status[slot] === CLAIMED) this.claimed--;
    this.status[slot] = DEAD;
    this.next[slot] = deadAt;
    entry.pending--;
    entry.dead++;
    this.pending--;
    this.dead++;
  }

  /** Makes a dead slot pending again (not yet in a heap). */
  revive(slot: number, createdAt: number, nextAttemptAt: number): void {
    const entry = this.endpoints[this.endpoint[slot] as number] as EndpointEntry;
    this.status[slot] = PENDING;
    this.next[slot] = nextAttemptAt;
    this.created[slot] = createdAt;
    this.attempts[slot] = 0;
    this.seq[slot] = this.#nextSeq();
    entry.dead--;
    entry.pending++;
    this.dead--;
    this.pending++;
    this.#track(slot);
  }

  /** Puts a pending slot into its endpoint's heap (after append, retry, release or recovery). */
  schedule(slot: number): void {
    if (this.status[slot] === CLAIMED) this.claimed--;
    this.status[slot] = PENDING;
    const heap = (this.endpoints[this.endpoint[slot] as number] as EndpointEntry).heap;
    if (heap.size === heap.items.length) heap.items = grow(heap.items, heap.items.length * 2);
    let i = heap.size++;
    const items = heap.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as number;
      if (!this.#before(slot, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = slot;
  }

  /**
   * Claims up to `limit` due slots, oldest due first across the allowed endpoints; also returns the
   * earliest due time left among them.
   */
  claim(limit: number, now: number, allowed: (url: string) => boolean): { slots: number[]; nextDueAt: number | undefined } {
    const candidates = this.endpoints.filter((entry) => entry.heap.size > 0 && allowed(entry.url));
    const slots: number[] = [];
    while (slots.length < limit) {
      let best: EndpointEntry | undefined;
      for (const entry of candidates) {
        if (entry.heap.size === 0) continue;
        if (best === undefined || this.#before(entry.heap.items[0] as number, best.heap.items[0] as number)) best = entry;
      }
      if (best === undefined || (this.next[best.heap.items[0] as number] as number) > now) break;
      const slot = this.#pop(best.heap);
      this.status[slot] = CLAIMED;
      this.claimed++;
      slots.push(slot);
    }
    let nextDueAt: number | undefined;
    for (const entry of candidates) {
      if (entry.heap.size === 0) continue;
      const due = this.next[entry.heap.items[0] as number] as number;
      if (nextDueAt === undefined || due < nextDueAt) nextDueAt = due;
    }
    return { slots, nextDueAt };
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
    for (let slot = 0; slot < this.#used; slot++) if (this.status[slot] === DEAD) slots.push(slot);
    return slots.sort((a, b) => (this.next[a] as number) - (this.next[b] as number) || (this.seq[a] as number) - (this.seq[b] as number));
  }

  #before(a: number, b: number): boolean {
    const na = this.next[a] as number;
    const nb = this.next[b] as number;
    return na < nb || (na === nb && (this.seq[a] as number) < (this.seq[b] as number));
  }

  #pop(heap: SlotHeap): number {
    const top = heap.items[0] as number;
    const last = heap.items[--heap.size] as number;
    if (heap.size > 0) this.#siftDown(heap, 0, last);
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
      const child = right < heap.size && this.#before(items[right] as number, items[left] as number) ? right : left;
      const c = items[child] as number;
      if (!this.#before(c, slot)) break;
      items[i] = c;
      i = child;
    }
    items[i] = slot;
  }

  #insertHash(slot: number): void {
    if ((this.#tableCount + 1) * 10 > this.#table.length * 7) this.#rehash(Math.max(1024, this.#table.length * 2));
    const table = this.#table;
    const mask = table.length - 1;
    let i = (this.hash[slot] as number) & mask;
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = slot + 1;
    this.#tableCount++;
  }

  /** Removes a slot from the table, shifting later entries of its probe run back (no deletion markers). */
  #deleteHash(slot: number): void {
    const table = this.#table;
    const mask = table.length - 1;
    let i = (this.hash[slot] as number) & mask;
    while (table[i] !== 0 && table[i] !== slot + 1) i = (i + 1) & mask;
    if (table[i] === 0) return;
    for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const home = (this.hash[(table[j] as number) - 1] as number) & mask;
      // Entry j may move to the hole at i when its home is not in the cyclic range (i, j].
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
        table[i] = table[j] as number;
        i = j;
      }
    }
    table[i] = 0;
    this.#tableCount--;
  }

  #rehash(size: number): void {
    const old = this.#table;
    this.#table = new Int32Array(size);
    this.#tableCount = 0;
    for (const entry of old) if (entry !== 0) this.#insertHash(entry - 1);
  }

  /**
   * The next arrival number. Kept in 32 bits: after 4 billion arrivals the live slots are renumbered in
   * their current order (once, O(n log n)), which keeps every heap valid.
   */
  #nextSeq(): number {
    if (this.#seq >= this.#seqLimit) {
      const live: number[] = [];
      for (let slot = 0; slot < this.#used; slot++) if (this.status[slot] !== FREE) live.push(slot);
      live.sort((a, b) => (this.seq[a] as number) - (this.seq[b] as number));
      live.forEach((slot, i) => (this.seq[slot] = i + 1));
      this.#seq = live.length;
      this.#retrack(this.pending);
    }
    return ++this.#seq;
  }

  /** Tracks a slot that just became pending (not during recovery: creation times may still change then). */
  #track(slot: number): void {
    if (this.#ranges === undefined) this.#oldest.push(slot, this.seq[slot] as number, this.created[slot] as number, this.pending);
  }

  /** Tracks every pending slot afresh, in slot order (after recovery or renumbering arrivals). */
  #retrack(capacity: number): void {
    this.#oldest.clear(capacity);
    for (let slot = 0; slot < this.#used; slot++) {
      const status = this.status[slot];
      if (status === PENDING || status === CLAIMED) this.#oldest.push(slot, this.seq[slot] as number, this.created[slot] as number, this.pending);
    }
  }

  #newEndpoint(url: string, urlBytes: Buffer): number {
    const index = this.endpoints.length;
    this.endpoints.push({ url, urlBytes, heap: new SlotHeap(), pending: 0, dead: 0 });
    this.#endpointByUrl.set(url, index);
    const hash = hashBytes(urlBytes, 0, urlBytes.length);
    this.#endpointByHash.set(hash, [...(this.#endpointByHash.get(hash) ?? []), index]);
    return index;
  }

  /** Makes room for at least `capacity` slots at once (recovery sizes the index from the journal's size). */
  reserve(capacity: number): void {
    if (capacity <= this.status.length) return;
    this.status = grow(this.status, capacity);
    this.evSeg = grow(this.evSeg, capacity);
    this.evOff = grow(this.evOff, capacity);
    this.evLen = grow(this.evLen, capacity);
    this.stSeg = grow(this.stSeg, capacity);
    this.stOff = grow(this.stOff, capacity);
    this.stLen = grow(this.stLen, capacity);
    this.next = grow(this.next, capacity);
    this.created = grow(this.created, capacity);
    this.attempts = grow(this.attempts, capacity);
    this.endpoint = grow(this.endpoint, capacity);
    this.seq = grow(this.seq, capacity);
    this.hash = grow(this.hash, capacity);
  }

  /** Slots handed out so far (live or free). */
  get used(): number {
    return this.#used;
  }

  #allocate(): number {
    // Doubling: half as many copies as growing by half (3-6% more enqueues/s while a backlog grows,
    // docs/12), and the unused tail is never touched, so it is not resident.
    if (this.#used === this.status.length) this.reserve(this.status.length * 2);
    return this.#used++;
  }
}
