import { describe, expect, it, vi } from 'vitest';
import { FakeClock, sleep, systemClock } from '../src/clock.js';

describe('FakeClock', () => {
  it('fires due timers in order and only when advanced', () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimer(() => fired.push('b'), 20);
    clock.setTimer(() => fired.push('a'), 10);
    const cancel = clock.setTimer(() => fired.push('never'), 15);
    cancel();
    clock.advance(9);
    expect(fired).toEqual([]);
    clock.advance(11);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now()).toBe(20);
  });

  it('sleep rejects at once when the signal aborts', async () => {
    const clock = new FakeClock(0);
    const controller = new AbortController();
    const pending = sleep(1_000, clock, controller.signal);
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('systemClock', () => {
  it('waits out a delay beyond setTimeout\'s range instead of firing at once; Infinity never fires', () => {
    vi.useFakeTimers();
    try {
      const fired: string[] = [];
      systemClock.setTimer(() => fired.push('long'), 2 ** 31 + 5);
      systemClock.setTimer(() => fired.push('never'), Number.POSITIVE_INFINITY);
      const cancel = systemClock.setTimer(() => fired.push('cancelled'), 2 ** 32);
      vi.advanceTimersByTime(2 ** 31 - 1);
      cancel();
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(5);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(fired).toEqual(['long']);
      vi.advanceTimersByTime(2 ** 33);
      expect(fired).toEqual(['long']);
    } finally {
      vi.useRealTimers();
    }
  });
});
