/**
 * Bounded load loops: every loop stops at a count and at a deadline, whichever comes first.
 */
import { performance } from 'node:perf_hooks';

/**
 * Runs `op(i)` from `concurrency` workers until `maxOps` operations were started or `maxMs` elapsed, then
 * waits for the operations in flight. Returns completed operations per second over the whole window.
 */
export async function runConcurrent({ concurrency, maxOps, maxMs, op }) {
  let started = 0;
  let done = 0;
  let failed = 0;
  let firstError;
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  async function worker() {
    while (started < maxOps && performance.now() < deadline) {
      const i = started++;
      try {
        await op(i);
        done += 1;
      } catch (error) {
        failed += 1;
        firstError ??= error;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const ms = performance.now() - t0;
  return { ops: done, failed, ms, rate: done / (ms / 1000), firstError };
}

/** Waits until `predicate()` is true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function waitFor(predicate, { timeoutMs, everyMs = 20, what = 'condition' }) {
  const deadline = performance.now() + timeoutMs;
  while (!(await predicate())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
