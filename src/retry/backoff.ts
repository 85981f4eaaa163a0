/**
 * Exponential backoff with full jitter, as pure functions of the attempt number, a policy and a random
 * source: `random(0, min(maxDelayMs, baseDelayMs * 2^attempt))`. The sender and the outbox flusher both use it.
 */

/** The shape of a backoff schedule. Immutable: a policy is a value, not a stateful object. */
export interface BackoffPolicy {
  /** Upper bound of the first delay (after the first failure), in milliseconds. */
  readonly baseDelayMs: number;
  /** Cap on the upper bound of any jittered delay, in milliseconds. */
  readonly maxDelayMs: number;
  /** Cap on a server-requested floor (`Retry-After`), in milliseconds. */
  readonly maxRetryAfterMs: number;
}

/** A source of uniformly distributed numbers in [0, 1), like `Math.random`. */
export type RandomSource = () => number;

/**
 * The upper bound of the jittered delay after failed attempt `attempt` (0 = after the first failure):
 * `min(maxDelayMs, baseDelayMs * 2^attempt)`.
 */
export function backoffCeiling(attempt: number, policy: Pick<BackoffPolicy, 'baseDelayMs' | 'maxDelayMs'>): number {
  // 2 ** 1024 is Infinity, and 0 * Infinity (a zero base) is NaN: 2 ** 1023 already exceeds any cap.
  const exponent = Math.min(1023, Math.max(0, Math.floor(attempt)));
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exponent);
}

/**
 * The full-jitter delay after failed attempt `attempt` (0 = after the first failure): a whole number of
 * milliseconds drawn uniformly from [0, ceiling). A random source that strays outside [0, 1) is clamped.
 */
export function backoffDelay(
  attempt: number,
  policy: Pick<BackoffPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  random: RandomSource = Math.random,
): number {
  const ceiling = backoffCeiling(attempt, policy);
  const r = Math.min(1, Math.max(0, random()));
  return Math.min(ceiling, Math.floor(r * ceiling));
}

/**
 * The delay before the next attempt: the full-jitter delay, raised to `retryAfterMs` when the receiver asked
 * for a longer wait. That floor is bounded by `maxRetryAfterMs`, so a receiver cannot park us for a year,
 * and it may exceed `maxDelayMs`: the receiver's explicit request beats our own cap.
 */
export function nextDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: RandomSource = Math.random,
  retryAfterMs?: number,
): number {
  const jittered = backoffDelay(attempt, policy, random);
  if (retryAfterMs === undefined || !(retryAfterMs > 0)) return jittered;
  return Math.max(jittered, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}
