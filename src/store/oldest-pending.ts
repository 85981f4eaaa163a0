import { grow } from './grow.js';

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
  #handles = new Uint32Array(1024);
  #tags = new Uint32Array(1024);
  #head = 0;
  #tail = 0;
  #lastKey = -Infinity;
  #heapKeys = new Float64Array(16);
  #heapHandles = new Uint32Array(16);
  #heapTags = new Uint32Array(16);
  #heapSize = 0;
  /** Entries examined so far (a measure of the work done, read by tests). */
  visits = 0;

  constructor(lookup: PendingLookup) {
    this.#lookup = lookup;
  }

  /** Forgets everything; room for `capacity` queue entries. */
  clear(capacity = 1024): void {
    this.#handles = new Uint32Array(Math.max(16, capacity));
    this.#tags = new Uint32Array(Math.max(16, capacity));
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
      if (this.#tail === this.#handles.length) this.#makeRoom();
      this.#handles[this.#tail] = handle;
      this.#tags[this.#tail++] = tag;
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
      if (lookup.live(this.#handles[this.#head] as number, this.#tags[this.#head] as number)) break;
      this.#head++;
    }
    while (this.#heapSize > 0) {
      this.visits++;
      if (lookup.live(this.#heapHandles[0] as number, this.#heapTags[0] as number)) break;
      this.#heapPop();
    }
    const queued =
      this.#head < this.#tail ? lookup.createdAt(this.#handles[this.#head] as number, this.#tags[this.#head] as number) : undefined;
    const heaped = this.#heapSize > 0 ? (this.#heapKeys[0] as number) : undefined;
    if (queued === undefined) return heaped;
    return heaped === undefined || queued <= heaped ? queued : heaped;
  }

  /** Drops every dead entry (they outnumber the live ones by half: amortised O(1) per push). */
  #compact(): void {
    const lookup = this.#lookup;
    let to = 0;
    for (let i = this.#head; i < this.#tail; i++) {
      this.visits++;
      const handle = this.#handles[i] as number;
      const tag = this.#tags[i] as number;
      if (!lookup.live(handle, tag)) continue;
      this.#handles[to] = handle;
      this.#tags[to++] = tag;
    }
    this.#head = 0;
    this.#tail = to;
    let kept = 0;
    for (let i = 0; i < this.#heapSize; i++) {
      this.visits++;
      const handle = this.#heapHandles[i] as number;
      const tag = this.#heapTags[i] as number;
      if (!lookup.live(handle, tag)) continue;
      this.#heapKeys[kept] = this.#heapKeys[i] as number;
      this.#heapHandles[kept] = handle;
      this.#heapTags[kept++] = tag;
    }
    this.#heapSize = kept;
    for (let i = (kept >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  #makeRoom(): void {
    const used = this.#tail - this.#head;
    if (this.#head > 0 && used * 2 <= this.#handles.length) {
      this.#handles.copyWithin(0, this.#head, this.#tail);
      this.#tags.copyWithin(0, this.#head, this.#tail);
    } else {
      const capacity = this.#handles.length * 2;
      this.#handles = grow(this.#handles.subarray(this.#head, this.#tail), capacity);
      this.#tags = grow(this.#tags.subarray(this.#head, this.#tail), capacity);
    }
    this.#head = 0;
    this.#tail = used;
  }

  #heapPush(key: number, handle: number, tag: number): void {
    if (this.#heapSize === this.#heapKeys.length) {
      const capacity = this.#heapKeys.length * 2;
      this.#heapKeys = grow(this.#heapKeys, capacity);
      this.#heapHandles = grow(this.#heapHandles, capacity);
      this.#heapTags = grow(this.#heapTags, capacity);
    }
    let i = this.#heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.#heapKeys[parent] as number) <= key) break;
      this.#move(parent, i);
      i = parent;
    }
    this.#heapKeys[i] = key;
    this.#heapHandles[i] = handle;
    this.#heapTags[i] = tag;
  }

  #heapPop(): void {
    const last = --this.#heapSize;
    if (last === 0) return;
    this.#move(last, 0);
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const keys = this.#heapKeys;
    const key = keys[start] as number;
    const handle = this.#heapHandles[start] as number;
    const tag = this.#heapTags[start] as number;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.#heapSize) break;
      const right = left + 1;
      const child = right < this.#heapSize && (keys[right] as number) < (keys[left] as number) ? right : left;
      if ((keys[child] as number) >= key) break;
      this.#move(child, i);
      i = child;
    }
    keys[i] = key;
    this.#heapHandles[i] = handle;
    this.#heapTags[i] = tag;
  }

  #move(from: number, to: number): void {
    this.#heapKeys[to] = this.#heapKeys[from] as number;
    this.#heapHandles[to] = this.#heapHandles[from] as number;
    this.#heapTags[to] = this.#heapTags[from] as number;
  }
}
