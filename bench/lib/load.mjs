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

/**
 * Runs `runConcurrent` `windows` times back to back and returns the window with the median rate, with
 * every window's rate in `rates`: one slow or fast window (a GC, a page-cache flush) does not decide a row.
 */
export async function medianWindow({ windows = 3, ...options }) {
  const results = [];
  for (let i = 0; i < windows; i++) results.push(await runConcurrent(options));
  const sorted = [...results].sort((a, b) => a.rate - b.rate);
  const median = sorted[Math.floor(sorted.length / 2)];
  const failed = results.reduce((sum, r) => sum + r.failed, 0);
  return { ...median, failed, firstError: median.firstError ?? results.find((r) => r.firstError)?.firstError, rates: results.map((r) => Math.round(r.rate)) };
}
