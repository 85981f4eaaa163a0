import { describe, expect, it } from 'vitest';
import { FakeClock, sleep } from '../src/clock.js';

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
