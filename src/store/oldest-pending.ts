import { Float64Chunks, Uint32Chunks } from './chunked-array.js';

/** How a store tells whether a tracked event is still pending, and its creation time. */
export interface PendingLookup {
  /** Whether the event pushed as (`handle`, `tag`) is still pending (claimed counts as pending). */
  live(handle: number, tag: number): boolean;
  /** The creation time of the live event (`handle`, `tag`). */
  createdAt(handle: number, tag: number): number;
}

/**
 * The smallest creation time among pending events, exact and O(1) amortised to read, for `stats()`.
 *
 * Events are pushed once when they become pending (append or replay) as a (handle, tag) pair that the
 * store can later check for liveness, so removals cost nothing here (lazy deletion). Creation times
 * mostly grow with arrival: those go to a queue in arrival order whose first live entry is the oldest;
 * the few that arrive older than the queue's newest go to a small min-heap keyed by creation time.
 * A queue entry is 8 bytes; dead entries are dropped from the front when read, and all of them once
 * they outnumber the live ones by half.
 */
export class OldestPending {
  readonly #lookup: PendingLookup;
  #handles = new Uint32Chunks(1024);
  #tags = new Uint32Chunks(1024);
  #head = 0;
  #tail = 0;
  #lastKey = -Infinity;
  #heapKeys = new Float64Chunks();
  #heapHandles = new Uint32Chunks();
  #heapTags = new Uint32Chunks();
  #heapSize = 0;
  /** Entries examined so far (a measure of the work done, read by tests). */
  visits = 0;

  constructor(lookup: PendingLookup) {
    this.#lookup = lookup;
  }

  /** Forgets everything; room for `capacity` queue entries. */
  clear(capacity = 1024): void {
    this.#handles = new Uint32Chunks(capacity);
    this.#tags = new Uint32Chunks(capacity);
    this.#head = 0;
    this.#tail = 0;
    this.#lastKey = -Infinity;
    this.#heapSize = 0;
  }

  /** Tracks an event that just became pending; `pending` is how many events are pending now. */
  push(handle: number, tag: number, createdAt: number, pending: number): void {
    if (this.#tail - this.#head + this.#heapSize > pending * 1.5 + 1024) this.#compact();
    if (this.#head === this.#tail) this.#lastKey = -Infinity;
    if (createdAt >= this.#lastKey) {
      if (this.#tail === this.#handles.capacity) this.#makeRoom();
      this.#handles.set(this.#tail, handle);
      this.#tags.set(this.#tail++, tag);
      this.#lastKey = createdAt;
    } else {
      this.#heapPush(createdAt, handle, tag);
    }
  }

  /** The smallest creation time among live tracked events, or `undefined`. */
  oldest(): number | undefined {
    const lookup = this.#lookup;
    while (this.#head < this.#tail) {
      this.visits++;
      if (lookup.live(this.#handles.get(this.#head), this.#tags.get(this.#head))) break;
      this.#head++;
    }
    while (this.#heapSize > 0) {
      this.visits++;
      if (lookup.live(this.#heapHandles.get(0), this.#heapTags.get(0))) break;
      this.#heapPop();
    }
    const queued =
      this.#head < this.#tail ? lookup.createdAt(this.#handles.get(this.#head), this.#tags.get(this.#head)) : undefined;
    const heaped = this.#heapSize > 0 ? this.#heapKeys.get(0) : undefined;
    if (queued === undefined) return heaped;
    return heaped === undefined || queued <= heaped ? queued : heaped;
  }

  /** Drops every dead entry (they outnumber the live ones by half: amortised O(1) per push). */
  #compact(): void {
    const lookup = this.#lookup;
    let to = 0;
    for (let i = this.#head; i < this.#tail; i++) {
      this.visits++;
      const handle = this.#handles.get(i);
      const tag = this.#tags.get(i);
      if (!lookup.live(handle, tag)) continue;
      this.#handles.set(to, handle);
      this.#tags.set(to++, tag);
    }
    this.#head = 0;
    this.#tail = to;
    let kept = 0;
    for (let i = 0; i < this.#heapSize; i++) {
      this.visits++;
      const handle = this.#heapHandles.get(i);
      const tag = this.#heapTags.get(i);
      if (!lookup.live(handle, tag)) continue;
      this.#heapKeys.set(kept, this.#heapKeys.get(i));
      this.#heapHandles.set(kept, handle);
      this.#heapTags.set(kept++, tag);
    }
    this.#heapSize = kept;
    for (let i = (kept >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  #makeRoom(): void {
    const used = this.#tail - this.#head;
    if (this.#head > 0 && used * 2 <= this.#handles.capacity) {
      this.#handles.copyWithin(0, this.#head, this.#tail);
      this.#tags.copyWithin(0, this.#head, this.#tail);
      this.#head = 0;
      this.#tail = used;
    } else {
      this.#handles.reserve(this.#tail + 1);
      this.#tags.reserve(this.#tail + 1);
    }
  }

  #heapPush(key: number, handle: number, tag: number): void {
    this.#heapKeys.reserve(this.#heapSize + 1);
    this.#heapHandles.reserve(this.#heapSize + 1);
    this.#heapTags.reserve(this.#heapSize + 1);
    let i = this.#heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#heapKeys.get(parent) <= key) break;
      this.#move(parent, i);
      i = parent;
    }
    this.#heapKeys.set(i, key);
    this.#heapHandles.set(i, handle);
    this.#heapTags.set(i, tag);
  }

  #heapPop(): void {
    const last = --this.#heapSize;
    if (last === 0) return;
    this.#move(last, 0);
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const keys = this.#heapKeys;
    const key = keys.get(start);
    const handle = this.#heapHandles.get(start);
    const tag = this.#heapTags.get(start);
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.#heapSize) break;
      const right = left + 1;
      const child = right < this.#heapSize && keys.get(right) < keys.get(left) ? right : left;
      if (keys.get(child) >= key) break;
      this.#move(child, i);
      i = child;
    }
    keys.set(i, key);
    this.#heapHandles.set(i, handle);
    this.#heapTags.set(i, tag);
  }

  #move(from: number, to: number): void {
    this.#heapKeys.set(to, this.#heapKeys.get(from));
    this.#heapHandles.set(to, this.#heapHandles.get(from));
    this.#heapTags.set(to, this.#heapTags.get(from));
  }
}
