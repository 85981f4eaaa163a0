/**
 * The claim of the in-memory indexes: takes items earliest due first from several queues that are each
 * in due order already (one per endpoint). The queues sit in a binary heap by their first item, so a claim
 * costs O(queues + taken x log queues) instead of O(taken x queues), which with thousands of endpoints
 * was the whole cost of a delivery.
 */

/** How {@link takeDue} reads and takes the first item of a queue. */
export interface DueQueues<Q> {
  /** Whether `a`'s first item is due before `b`'s. */
  before(a: Q, b: Q): boolean;
  /** Whether the queue's first item is due now. */
  due(queue: Q): boolean;
  /** Takes the queue's first item (or sets it aside: an ordering key's event that may not go yet); returns whether the queue has more. */
  take(queue: Q): boolean;
  /** Whether enough items were taken. */
  full(): boolean;
}

/**
 * Takes due items from `queues` (the array is reordered) until `full()` and returns the queue whose first
 * item is the earliest left, if any.
 */
export function takeDue<Q>(queues: Q[], ops: DueQueues<Q>): Q | undefined {
  for (let i = (queues.length >> 1) - 1; i >= 0; i--) siftDown(queues, i, ops);
  while (!ops.full() && queues.length > 0 && ops.due(queues[0] as Q)) {
    if (!ops.take(queues[0] as Q)) {
      const last = queues.pop() as Q;
      if (queues.length === 0) break;
      queues[0] = last;
    }
    siftDown(queues, 0, ops);
  }
  return queues[0];
}

function siftDown<Q>(heap: Q[], at: number, ops: DueQueues<Q>): void {
  const item = heap[at] as Q;
  const n = heap.length;
  let i = at;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && ops.before(heap[child + 1] as Q, heap[child] as Q)) child++;
    if (!ops.before(heap[child] as Q, item)) break;
    heap[i] = heap[child] as Q;
    i = child;
  }
  heap[i] = item;
}
