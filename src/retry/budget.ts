/**
 * The direct sender's retry budget, one per endpoint URL: retries to it may add at most `ratio` to the first
 * attempts made in the last 10 s, plus `minPerSecond` so that a trickle of sends can always retry
 * (Finagle's RetryBudget, gRPC's retry throttling per channel, the per-client retry ratio of Google's SRE
 * book). Without it, every concurrent `send()` to a receiver in trouble retries on its own, and an outage
 * multiplies the load on it by `maxAttempts`.
 */
import type { Clock } from '../clock.js';

/** How much retrying a sender may add to its sends. */
export interface RetryBudgetPolicy {
  /** Retries per first attempt, over the last 10 s. */
  ratio: number;
  /** Retries per second allowed whatever the ratio says, over the same 10 s. */
  minPerSecond: number;
}

/** The window the budget counts over, in whole seconds. */
export const RETRY_BUDGET_WINDOW_SECONDS = 10;

/** Where `second` (ms since epoch / 1000) is counted in a window's arrays. */
function slotOf(second: number): number {
  return ((second % RETRY_BUDGET_WINDOW_SECONDS) + RETRY_BUDGET_WINDOW_SECONDS) % RETRY_BUDGET_WINDOW_SECONDS;
}

/** First attempts and retries counted per second over the last {@link RETRY_BUDGET_WINDOW_SECONDS}. */
export class RetryBudget {
  readonly #policy: RetryBudgetPolicy;
  readonly #clock: Clock;
  /** The second each slot counts (ms since epoch / 1000), and its counts. */
  readonly #second = new Float64Array(RETRY_BUDGET_WINDOW_SECONDS).fill(-Infinity);
  readonly #firsts = new Float64Array(RETRY_BUDGET_WINDOW_SECONDS);
  readonly #retries = new Float64Array(RETRY_BUDGET_WINDOW_SECONDS);

  constructor(policy: RetryBudgetPolicy, clock: Clock) {
    this.#policy = policy;
    this.#clock = clock;
  }

  /** Counts a first attempt (a `send()` starting). */
  first(): void {
    const slot = this.#slot();
    this.#firsts[slot] = (this.#firsts[slot] as number) + 1;
  }

  /** Takes one retry from the budget; false (nothing taken) when the window holds none. */
  retry(): boolean {
    const now = this.#slot();
    const second = this.#second[now] as number;
    let firsts = 0;
    let retries = 0;
    for (let i = 0; i < RETRY_BUDGET_WINDOW_SECONDS; i++) {
      if (second - (this.#second[i] as number) >= RETRY_BUDGET_WINDOW_SECONDS) continue;
      firsts += this.#firsts[i] as number;
      retries += this.#retries[i] as number;
    }
    const { ratio, minPerSecond } = this.#policy;
    if (retries + 1 > firsts * ratio + minPerSecond * RETRY_BUDGET_WINDOW_SECONDS) return false;
    this.#retries[now] = (this.#retries[now] as number) + 1;
    return true;
  }

  /**
   * Gives back a retry taken at `takenAt` (ms since epoch, the clock's time of its `retry()`) but not made:
   * the send was aborted or closed during its backoff. Nothing once that second has left the window.
   */
  refund(takenAt: number): void {
    const second = Math.floor(takenAt / 1000);
    const slot = slotOf(second);
    if (this.#second[slot] === second) this.#retries[slot] = Math.max(0, (this.#retries[slot] as number) - 1);
  }

  /** The slot of the current second, emptied when it last counted an older one. */
  #slot(): number {
    const second = Math.floor(this.#clock.now() / 1000);
    const slot = slotOf(second);
    if (this.#second[slot] !== second) {
      this.#second[slot] = second;
      this.#firsts[slot] = 0;
      this.#retries[slot] = 0;
    }
    return slot;
  }
}

/** Endpoints whose budgets are kept: past this, the least recently used one is forgotten (and starts afresh). */
export const RETRY_BUDGET_ENDPOINTS = 1_000;

/** One {@link RetryBudget} per endpoint URL, for the most recently used {@link RETRY_BUDGET_ENDPOINTS}. */
export class RetryBudgets {
  readonly #policy: RetryBudgetPolicy;
  readonly #clock: Clock;
  readonly #byUrl = new Map<string, RetryBudget>();

  constructor(policy: RetryBudgetPolicy, clock: Clock) {
    this.#policy = policy;
    this.#clock = clock;
  }

  /** The budget of `url`, made when first asked for. */
  of(url: string): RetryBudget {
    let budget = this.#byUrl.get(url);
    if (budget === undefined) {
      budget = new RetryBudget(this.#policy, this.#clock);
      if (this.#byUrl.size >= RETRY_BUDGET_ENDPOINTS) this.#byUrl.delete(this.#byUrl.keys().next().value as string);
    } else {
      this.#byUrl.delete(url);
    }
    this.#byUrl.set(url, budget);
    return budget;
  }
}
