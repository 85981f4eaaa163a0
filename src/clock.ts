/**
 * Time as a port: the scheduler, backoff and Retry-After parsing take a `Clock` so tests can drive time
 * without faking Node's global timers (got and nock hang under faked timers).
 */

/** Cancels a timer created by {@link Clock.setTimer}. Calling it twice is harmless. */
export type CancelTimer = () => void;

/** A source of the current time and of timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Calls `fn` once after `ms` milliseconds. System timers are `unref`'d: a pending timer never keeps the
   * process alive by itself.
   */
  setTimer(fn: () => void, ms: number): CancelTimer;
}

/** The longest delay `setTimeout` takes; Node fires a longer one after 1 ms. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The real clock: `Date.now()` and unref'd `setTimeout`. An `Infinity` timer never fires. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    if (ms === Infinity) return () => {};
    let timer: NodeJS.Timeout;
    // A delay beyond setTimeout's range waits in steps of its longest delay.
    const arm = (left: number): void => {
      timer = setTimeout(() => (left > MAX_TIMEOUT_MS ? arm(left - MAX_TIMEOUT_MS) : fn()), Math.min(Math.max(0, left), MAX_TIMEOUT_MS));
      timer.unref();
    };
    arm(ms);
    return () => clearTimeout(timer);
  },
};

/**
 * Keeps the process alive until the returned function is called: the clock's timers are unref'd so a
 * running outbox never holds a process open, but someone awaiting `drain()` or `send()` must.
 */
export function holdProcessOpen(): () => void {
  const handle = setInterval(() => {}, 2 ** 30);
  return () => clearInterval(handle);
}

/**
 * Resolves after `ms` on `clock`, or rejects with `signal.reason` as soon as `signal` aborts.
 */
export function sleep(ms: number, clock: Clock = systemClock, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A manual clock for tests: time moves only when `advance()` is called, and due timers then fire in order.
 */
export class FakeClock implements Clock {
  #now: number;
  #timers: { at: number; seq: number; fn: () => void }[] = [];
  #seq = 0;

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): CancelTimer {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = target;
  }
}
