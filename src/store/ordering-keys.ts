/**
 * The rule of ordering keys, shared by the in-memory indexes: of the pending events of one key, only the
 * earliest appended may be claimed, and only while none of that key is claimed. The stores keep every
 * pending event in their due-time heaps as before and ask here when they take one out whether it may
 * go; one that may not is set aside (parked) until {@link OrderingKeys.finished} names it the key's next.
 * Items are compared by `before`, the order they were appended in (a replayed one keeps its place).
 *
 * It also keeps, per key, the latest-appended pending item that `supersedes` (claimed or waiting): an
 * item taken while a later one of those is pending is superseded ({@link supersededBy}). When that one
 * leaves, the latest of the rest is found again among the waiting (the only pending ones then).
 */
export class OrderingKeys<T> {
  readonly #keys = new Map<string, KeyState<T>>();
  readonly #before: (a: T, b: T) => boolean;
  readonly #supersedes: (item: T) => boolean;
  readonly #sameUrl: (a: T, b: T) => boolean;

  /**
   * `before` orders items as appended; `supersedes` tells the items appended with `supersede: true`;
   * `sameUrl` whether two items go to the same endpoint URL now (after moves and replays): a superseding
   * item supersedes only items to its own URL (a key may fan out to several receivers).
   */
  constructor(before: (a: T, b: T) => boolean, supersedes: (item: T) => boolean = () => false, sameUrl: (a: T, b: T) => boolean = () => true) {
    this.#before = before;
    this.#supersedes = supersedes;
    this.#sameUrl = sameUrl;
  }

  /**
   * `item` of `key` is pending and not claimed: appended, replayed or found at open (not back from a
   * claim: that is {@link finished}). Returns whether it may go now; if not, the store sets it aside.
   */
  join(key: string, item: T): boolean {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { waiting: [], claimed: 0, latest: undefined };
      this.#keys.set(key, state);
    }
    this.#push(state.waiting, item);
    this.#noteSuperseder(state, item);
    return state.claimed === 0 && state.waiting[0] === item;
  }

  /** `item` of `key`, not among those known here, is claimed (a store rebuilt with its leases). */
  busy(key: string, item: T): void {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { waiting: [], claimed: 0, latest: undefined };
      this.#keys.set(key, state);
    }
    state.claimed++;
    this.#noteSuperseder(state, item);
  }

  /**
   * The latest pending item of `key` that supersedes, when it was appended after `item` (which its
   * store just took): then `item` is not to be sent.
   */
  supersededBy(key: string, item: T): T | undefined {
    const latest = this.#keys.get(key)?.latest;
    // Only the key's latest superseder counts, and only for items to its URL: an item to another URL is sent
    // (a superseder of its own URL before that latest one is not looked for: sending is the safe side).
    return latest !== undefined && this.#before(item, latest) && this.#sameUrl(item, latest) ? latest : undefined;
  }

  /**
   * Claims `item` of `key` if it may go now (none of its key is claimed and it is the earliest waiting);
   * returns whether it did. One that may not is for the store to set aside.
   */
  take(key: string, item: T): boolean {
    const state = this.#keys.get(key);
    if (state === undefined || state.claimed > 0 || state.waiting[0] !== item) return false;
    this.#pop(state.waiting);
    state.claimed = 1;
    return true;
  }

  /**
   * Right after {@link take} of an item that `by` supersedes: claims the key's next waiting item too when
   * `by` also supersedes it and `may` lets it go (its store's own conditions), so that a backlog of
   * superseded items goes in one claim rather than one per claim. Returns it, or `undefined`.
   */
  takeSuperseded(key: string, by: T, may: (item: T) => boolean): T | undefined {
    const state = this.#keys.get(key);
    const next = state?.waiting[0];
    if (state === undefined || next === undefined || !this.#before(next, by) || !this.#sameUrl(next, by) || !may(next)) return undefined;
    this.#pop(state.waiting);
    state.claimed++;
    return next;
  }

  /**
   * The claim of `item` of `key` ended: `again` when it is pending again (a retry or a release), else it
   * is gone (delivered, dead, dropped). Returns the key's next, which the store must put back where it
   * can be claimed if it set it aside.
   */
  finished(key: string, item: T, again: boolean): T | undefined {
    const state = this.#keys.get(key);
    if (state === undefined) return undefined;
    state.claimed = Math.max(0, state.claimed - 1);
    if (again) this.#push(state.waiting, item);
    else if (state.latest === item) {
      // Rare (a superseding item left). It was claimed alone (superseded items are taken only before
      // it), so the rest are all waiting and the latest is among them.
      state.latest = undefined;
      for (const other of state.waiting) this.#noteSuperseder(state, other);
    }
    // Superseded items of the key still claimed: its next waits for them all.
    if (state.claimed > 0) return undefined;
    const next = state.waiting[0];
    if (next === undefined) this.#keys.delete(key);
    return next;
  }

  #noteSuperseder(state: KeyState<T>, item: T): void {
    if (this.#supersedes(item) && (state.latest === undefined || this.#before(state.latest, item))) state.latest = item;
  }

  #push(heap: T[], item: T): void {
    let i = heap.length;
    heap.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(item, heap[parent] as T)) break;
      heap[i] = heap[parent] as T;
      i = parent;
    }
    heap[i] = item;
  }

  #pop(heap: T[]): void {
    const last = heap.pop() as T;
    const size = heap.length;
    if (size === 0) return;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && this.#before(heap[child + 1] as T, heap[child] as T)) child++;
      if (!this.#before(heap[child] as T, last)) break;
      heap[i] = heap[child] as T;
      i = child;
    }
    heap[i] = last;
  }
}

interface KeyState<T> {
  /** Pending, unclaimed items of the key: a binary heap, earliest appended first. */
  waiting: T[];
  /** How many items of the key are claimed: one, or one and the superseded ones after it. */
  claimed: number;
  /** The latest-appended pending (claimed or waiting) item of the key that supersedes. */
  latest: T | undefined;
}
