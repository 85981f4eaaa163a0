import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay, nextDelay } from '../../src/retry/backoff.js';

const policyArb = fc
  .record({
    baseDelayMs: fc.integer({ min: 0, max: 60_000 }),
    maxDelayMs: fc.integer({ min: 1, max: 3_600_000 }),
    maxRetryAfterMs: fc.integer({ min: 0, max: 3_600_000 }),
  })
  .filter((p) => p.maxDelayMs >= p.baseDelayMs);
const attemptArb = fc.integer({ min: 0, max: 2_000 });
const randomArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe('backoffDelay (full jitter)', () => {
  it('stays a whole number of ms in [0, min(cap, base * 2^attempt)]', () => {
    fc.assert(
      fc.property(attemptArb, policyArb, randomArb, (attempt, policy, r) => {
        const delay = backoffDelay(attempt, policy, () => r);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(policy.maxDelayMs);
        expect(delay).toBeLessThanOrEqual(policy.baseDelayMs === 0 ? 0 : policy.baseDelayMs * 2 ** attempt);
      }),
    );
  });

  it('has an upper bound that doubles with the attempt until it reaches the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), policyArb, (attempt, policy) => {
        const here = backoffCeiling(attempt, policy);
        const next = backoffCeiling(attempt + 1, policy);
        expect(next).toBeGreaterThanOrEqual(here);
        expect(next).toBe(Math.min(policy.maxDelayMs, here * 2));
      }),
    );
    expect(backoffCeiling(0, { baseDelayMs: 100, maxDelayMs: 1_000 })).toBe(100);
    expect(backoffCeiling(3, { baseDelayMs: 100, maxDelayMs: 1_000 })).toBe(800);
    expect(backoffCeiling(4, { baseDelayMs: 100, maxDelayMs: 1_000 })).toBe(1_000);
    expect(backoffCeiling(10_000, { baseDelayMs: 100, maxDelayMs: 1_000 })).toBe(1_000);
    expect(backoffCeiling(10_000, { baseDelayMs: 0, maxDelayMs: 1_000 })).toBe(0);
  });

  it('spreads delays over the whole range, also at the cap (jitter does not vanish)', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelay(20, policy, () => 0)).toBe(0);
    expect(backoffDelay(20, policy, () => 0.5)).toBe(500);
    expect(backoffDelay(20, policy, () => 0.999_999)).toBe(999);
    let seed = 42;
    const lcg = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const samples = Array.from({ length: 2_000 }, () => backoffDelay(20, policy, lcg));
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(400);
    expect(mean).toBeLessThan(600);
    expect(new Set(samples.map((d) => Math.floor(d / 100))).size).toBe(10);
  });

  it('clamps a random source that strays outside [0, 1)', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelay(0, policy, () => 7)).toBe(100);
    expect(backoffDelay(0, policy, () => -1)).toBe(0);
  });
});

describe('nextDelay (Retry-After floor)', () => {
  it('never waits less than the floor, and the floor never exceeds maxRetryAfterMs', () => {
    fc.assert(
      fc.property(attemptArb, policyArb, randomArb, fc.integer({ min: 0, max: 10_000_000 }), (attempt, policy, r, floor) => {
        const delay = nextDelay(attempt, policy, () => r, floor);
        const jittered = backoffDelay(attempt, policy, () => r);
        expect(delay).toBe(Math.max(jittered, Math.min(floor, policy.maxRetryAfterMs)));
        expect(delay).toBeGreaterThanOrEqual(Math.min(floor, policy.maxRetryAfterMs));
        expect(delay).toBeLessThanOrEqual(Math.max(policy.maxDelayMs, policy.maxRetryAfterMs));
      }),
    );
  });

  it('a floor can exceed the backoff cap but not maxRetryAfterMs', () => {
    const policy = { baseDelayMs: 10, maxDelayMs: 100, maxRetryAfterMs: 5_000 };
    expect(nextDelay(0, policy, () => 0, 2_000)).toBe(2_000);
    expect(nextDelay(0, policy, () => 0, 60_000)).toBe(5_000);
    expect(nextDelay(0, policy, () => 0.5, undefined)).toBe(5);
    expect(nextDelay(0, policy, () => 0.5, 0)).toBe(5);
  });
});
