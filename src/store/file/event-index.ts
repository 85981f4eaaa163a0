/**
 * The in-memory index of a `FileStore`: one compact slot per pending or dead event in typed arrays
 * (where its records are on disk, its schedule and counters), the id -> slot map, and one due-time heap
 * per endpoint. Payloads and histories stay on disk.
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
  heap: SlotHeap;
  pending: number;
  dead: number;
}

function grow<T extends Int32Array | Uint32Array | Float64Array | Uint8Array>(array: T, capacity: number): T {
  const next = new (array.constructor as new (n: number) => T)(capacity);
  next.set(array);
  return next;
}

export class EventIndex {
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
  seq = new Float64Array(1024);

  readonly ids = new Map<string, number>();
  /** Slot -> id (the same strings as the map's keys). */
  readonly idOf: (string | undefined)[] = [];
  readonly endpoints: EndpointEntry[] = [];
  readonly #endpointByUrl = new Map<string, number>();
  #free: number[] = [];
  #used = 0;
  #seq = 0;
  pending = 0;
  claimed = 0;
  dead = 0;
  #oldest: number | undefined;
  #oldestValid = true;

  /** Allocates a slot for a new pending event; the caller fills its locations. Not yet in a heap. */
  add(id: string, url: string, createdAt: number, nextAttemptAt: number): number {
    const slot = this.#free.pop() ?? this.#allocate();
    this.ids.set(id, slot);
    this.idOf[slot] = id;
    this.status[slot] = PENDING;
    this.stSeg[slot] = 0;
    this.next[slot] = nextAttemptAt;
    this.created[slot] = createdAt;
    this.attempts[slot] = 0;
    this.seq[slot] = ++this.#seq;
    const endpoint = this.#endpointOf(url);
    this.endpoint[slot] = endpoint;
    (this.endpoints[endpoint] as EndpointEntry).pending++;
    this.pending++;
    this.#noteCreated(createdAt);
    return slot;
  }

  /** Frees a slot (delivered or purged). The slot must not be in a heap. */
  remove(id: string, slot: number): void {
    const entry = this.endpoints[this.endpoint[slot] as number] as EndpointEntry;
    const status = this.status[slot];
    if (status === DEAD) {
      entry.dead--;
      this.dead--;
    } else {
      entry.pending--;
      this.pending--;
      if (status === CLAIMED) this.claimed--;
      if (this.created[slot] === this.#oldest) this.#oldestValid = false;
    }
    this.status[slot] = FREE;
    this.ids.delete(id);
    this.idOf[slot] = undefined;
    this.#free.push(slot);
  }

  /** Marks a claimed or pending (not in a heap) slot dead. */
  markDead(slot: number, deadAt: number): void {
    const entry = this.endpoints[this.endpoint[slot] as number] as EndpointEntry;
    if (this.status[slot] === CLAIMED) this.claimed--;
    if (this.created[slot] === this.#oldest) this.#oldestValid = false;
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
    this.seq[slot] = ++this.#seq;
    entry.dead--;
    entry.pending++;
    this.dead--;
    this.pending++;
    this.#noteCreated(createdAt);
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

  /** Forgets the cached oldest creation time (after recovery rewrote creation times). */
  resetOldest(): void {
    this.#oldestValid = false;
  }

  /** Creation time of the oldest pending event (recomputed lazily after the oldest one leaves). */
  oldestPendingAt(): number | undefined {
    if (!this.#oldestValid) {
      let oldest: number | undefined;
      for (let slot = 0; slot < this.#used; slot++) {
        const status = this.status[slot];
        if (status !== PENDING && status !== CLAIMED) continue;
        const created = this.created[slot] as number;
        if (oldest === undefined || created < oldest) oldest = created;
      }
      this.#oldest = oldest;
      this.#oldestValid = true;
    }
    return this.pending === 0 ? undefined : this.#oldest;
  }

  /** Dead slots, oldest `deadAt` first. */
  deadSlots(): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#used; slot++) if (this.status[slot] === DEAD) slots.push(slot);
    return slots.sort((a, b) => (this.next[a] as number) - (this.next[b] as number) || (this.seq[a] as number) - (this.seq[b] as number));
  }

  /** Bytes held by the typed arrays and heaps (the id map comes on top). */
  arrayBytes(): number {
    let bytes = this.status.length * (1 + 4 * 8 + 8 * 3);
    for (const entry of this.endpoints) bytes += entry.heap.items.byteLength;
    return bytes;
  }

  #before(a: number, b: number): boolean {
    const na = this.next[a] as number;
    const nb = this.next[b] as number;
    return na < nb || (na === nb && (this.seq[a] as number) < (this.seq[b] as number));
  }

  #pop(heap: SlotHeap): number {
    const items = heap.items;
    const top = items[0] as number;
    const last = items[--heap.size] as number;
    if (heap.size > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.size) break;
        const right = left + 1;
        const child = right < heap.size && this.#before(items[right] as number, items[left] as number) ? right : left;
        const c = items[child] as number;
        if (!this.#before(c, last)) break;
        items[i] = c;
        i = child;
      }
      items[i] = last;
    }
    return top;
  }

  #noteCreated(createdAt: number): void {
    if (this.#oldestValid && (this.#oldest === undefined || this.pending === 1 || createdAt < this.#oldest)) this.#oldest = createdAt;
  }

  #endpointOf(url: string): number {
    let index = this.#endpointByUrl.get(url);
    if (index === undefined) {
      index = this.endpoints.length;
      this.endpoints.push({ url, heap: new SlotHeap(), pending: 0, dead: 0 });
      this.#endpointByUrl.set(url, index);
    }
    return index;
  }

  #allocate(): number {
    if (this.#used === this.status.length) {
      const capacity = this.status.length * 2;
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
    }
    return this.#used++;
  }
}
