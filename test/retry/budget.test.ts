import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { RetryBudget } from '../../src/retry/budget.js';

/** Takes retries until the budget refuses one (bounded); how many it gave. */
function drain(budget: RetryBudget, most = 10_000): number {
  let taken = 0;
  while (taken < most && budget.retry()) taken++;
  return taken;
}

describe('RetryBudget', () => {
  it('gives ratio x first attempts plus minPerSecond x 10 s, then refuses', () => {
    const clock = new FakeClock(1_000_000);
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1 }, clock);
    for (let i = 0; i < 100; i++) budget.first();
    expect(drain(budget)).toBe(30);
    expect(budget.retry()).toBe(false);
    // More sends earn more retries, at the ratio.
    for (let i = 0; i < 50; i++) budget.first();
    expect(drain(budget)).toBe(10);
  });

  it('forgets what is older than 10 s, one second at a time', () => {
    const clock = new FakeClock(1_000_000);
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0 }, clock);
    for (let i = 0; i < 10; i++) budget.first();
    expect(drain(budget)).toBe(5);
    clock.advance(9_000);
    // Still inside the window: the first attempts and the retries both count.
    expect(budget.retry()).toBe(false);
    for (let i = 0; i < 4; i++) budget.first();
    expect(drain(budget)).toBe(2);
    clock.advance(1_000);
    // The first second left the window: its 10 sends and 5 retries with it; 4 sends and 2 retries remain.
    expect(budget.retry()).toBe(false);
    for (let i = 0; i < 2; i++) budget.first();
    expect(drain(budget)).toBe(1);
    clock.advance(10_000);
    expect(budget.retry()).toBe(false);
  });

  it('a refund gives the retry back to the second it was taken in, also from a later second', () => {
    const clock = new FakeClock(1_000_900);
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 0.1 }, clock); // one retry per 10 s
    const takenAt = clock.now();
    expect(budget.retry()).toBe(true);
    expect(budget.retry()).toBe(false);
    clock.advance(800); // the caller aborts in the next second
    budget.refund(takenAt);
    expect(budget.retry()).toBe(true);
    // Once the second it was taken in has left the window, there is nothing to give back.
    const later = clock.now();
    clock.advance(10_000);
    budget.refund(later);
    expect(drain(budget)).toBe(1);
  });

  it('with ratio 0 and minPerSecond 0 refuses every retry; a clock stepped back does not break it', () => {
    const clock = new FakeClock(1_000_000);
    const none = new RetryBudget({ ratio: 0, minPerSecond: 0 }, clock);
    none.first();
    expect(none.retry()).toBe(false);
    const budget = new RetryBudget({ ratio: 1, minPerSecond: 0 }, clock);
    for (let i = 0; i < 3; i++) budget.first();
    clock.advance(-5_000);
    for (let i = 0; i < 3; i++) budget.first();
    expect(drain(budget)).toBe(6);
  });
});
