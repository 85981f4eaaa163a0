/**
 * A flusher on a FakeClock whose deliveries the test answers by hand (shared by the flusher and store tests).
 */
import { FakeClock } from '../../src/clock.js';
import type { AttemptResult } from '../../src/delivery/attempt.js';
import { Flusher } from '../../src/delivery/flusher.js';
import type { CircuitEvent, EndpointGoneEvent, FlusherListener, RetryEvent } from '../../src/delivery/flusher.js';
import { HttpStatusError } from '../../src/errors.js';
import { OUTBOX_RETRY_DEFAULTS } from '../../src/options.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { OutboxStore, StoredEvent } from '../../src/store/store.js';

export const A = 'http://a.test/hook';
export const B = 'http://b.test/hook';

export interface Call {
  event: StoredEvent;
  answered: boolean;
  /** `retryAfterMs`: the receiver's Retry-After, as `runAttempt` parses it (a date already past is 0). */
  answer(result: 'ok' | 500 | 429 | 410, retryAfterMs?: number): void;
}

/**
 * A flusher over `store` (a new MemoryStore by default, opened here) on a FakeClock. Store faults reported to
 * the listener fail the test unless `collectErrors`, which gathers them in `errors`.
 */
export async function setup(
  options: { concurrency?: number; globalConcurrency?: number; store?: OutboxStore; clock?: FakeClock; maxAttempts?: number; collectErrors?: boolean } = {},
) {
  const clock = options.clock ?? new FakeClock(1_000_000);
  const store = options.store ?? new MemoryStore();
  if (options.store === undefined) await store.open();
  const calls: Call[] = [];
  const retries: RetryEvent[] = [];
  const circuits: CircuitEvent[] = [];
  const delivered: string[] = [];
  const dead: string[] = [];
  const superseded: string[] = [];
  const gone: EndpointGoneEvent[] = [];
  const errors: unknown[] = [];
  const listener: FlusherListener = {
    delivered: (event) => delivered.push(event.id),
    retry: (event) => retries.push(event),
    dead: (event) => dead.push(event.id),
    superseded: (event) => superseded.push(event.id),
    endpointGone: (event) => gone.push(event),
    circuit: (event) => circuits.push(event),
    error: (error) => {
      if (!options.collectErrors) throw error;
      errors.push(error);
    },
    progress: () => {},
  };
  const flusher = new Flusher({
    store,
    clock,
    random: () => 0.5,
    retry: { ...OUTBOX_RETRY_DEFAULTS, baseDelayMs: 1_000, maxDelayMs: 60_000, ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }) },
    concurrency: options.concurrency ?? 4,
    globalConcurrency: options.globalConcurrency ?? 64,
    goneDisablesEndpoint: true,
    listener,
    deliver: (event) =>
      new Promise<AttemptResult>((resolve) => {
        const at = clock.now();
        const call: Call = {
          event,
          answered: false,
          answer: (result, retryAfterMs) => {
            call.answered = true;
            resolve(
              result === 'ok'
                ? { ok: true, status: 200, at, durationMs: 1 }
                : result === 410
                  ? { ok: false, retryable: false, throttled: false, status: result, error: new HttpStatusError(result, '', false), at, durationMs: 1 }
                  : {
                      ok: false,
                      retryable: true,
                      throttled: result === 429,
                      status: result,
                      error: new HttpStatusError(result, '', true),
                      at,
                      durationMs: 1,
                      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
                    },
            );
          },
        };
        calls.push(call);
      }),
  });
  const enqueue = async (count: number, url = A, prefix = 'e'): Promise<void> => {
    const now = clock.now();
    await store.append(
      Array.from({ length: count }, (_, i) => ({
        id: `${prefix}${i}`,
        url,
        headers: {},
        body: new Uint8Array([i]),
        createdAt: now,
        nextAttemptAt: now,
      })),
    );
  };
  return { clock, store, flusher, calls, retries, circuits, delivered, dead, superseded, gone, errors, enqueue };
}

/** Lets promise chains (claims, settles) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

