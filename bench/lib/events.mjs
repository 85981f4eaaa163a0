/**
 * The benchmark's payload: 1 KiB bodies, the same bytes for every producer and every peer.
 */

/** Exactly 1024 bytes of ASCII JSON, sent as-is. */
const EMPTY = JSON.stringify({ type: 'bench.event', data: '' });
export const BODY_1K = JSON.stringify({ type: 'bench.event', data: 'x'.repeat(1024 - EMPTY.length) });
if (Buffer.byteLength(BODY_1K) !== 1024) throw new Error(`BODY_1K is ${Buffer.byteLength(BODY_1K)} bytes`);

const BODY_1K_BYTES = new TextEncoder().encode(BODY_1K);

/** An address nothing listens on, for producer-only outboxes that never send. */
export const NOWHERE_URL = 'http://127.0.0.1:9/hook';

let sequence = 0;

/** A store-level event (`NewEvent`) with a unique id and the 1 KiB body. */
export function newEvent(url = NOWHERE_URL, now = Date.now()) {
  sequence += 1;
  return {
    id: `bench_${process.pid}_${sequence}`,
    url,
    headers: { 'content-type': 'application/json' },
    body: BODY_1K_BYTES,
    createdAt: now,
    nextAttemptAt: now,
  };
}

/** `count` store-level events. */
export function newEvents(count, url = NOWHERE_URL) {
  const now = Date.now();
  return Array.from({ length: count }, () => newEvent(url, now));
}
