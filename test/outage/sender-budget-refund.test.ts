import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { createSender } from '../../src/sender.js';
import type { Transport } from '../../src/transport/transport.js';
import { flush } from './harness.js';

describe('the sender retry budget: refund of an aborted backoff', () => {
  // Scenario: a sender with a tight retry budget (one retry per 10 s: { ratio: 0, minPerSecond: 0.1 }). A send
  // fails (503), takes the window's one retry and sleeps for its 1 s backoff; the caller aborts it 0.8 s
  // later, which falls in the next second of the budget's window. A second send to the same URL fails once.
  // Expected (docs/03: "a retry taken by a send aborted during its backoff is given back"; the budget
  // counts the last 10 s): the retry was never made, so the second send can retry and succeeds.
  // Before the fix: RetryBudget.refund() takes the retry back from the slot of the *current* second, which holds
  // none (Math.max(0, ...) hides it), so the retry stays charged to the second it was taken in for the
  // whole 10 s window: the second send rejects with ERR_RETRIES_EXHAUSTED without retrying. (When the
  // current second does hold retries of other sends, theirs is the one given back: the sum is right then.)
  // Why it matters: during an outage callers abort sends (request deadlines); every abort that crosses a
  // second boundary leaks a retry from the budget, starving the retries of the sends that are still waiting.
  it('a retry given back by an abort in a later second can be used by the next send', async () => {
    // Half a second into a second of the budget's window.
    const clock = new FakeClock(1_700_000_000_500);
    const seen = new Map<string, number>();
    const transport: Transport = {
      send: (request) => {
        const id = request.headers['webhook-id'] ?? '';
        const n = (seen.get(id) ?? 0) + 1;
        seen.set(id, n);
        // The first send's id always gets 503; the second's gets 503 once, then 200.
        const status = id === 'msg_first' || n === 1 ? 503 : 200;
        return Promise.resolve({ status, headers: {}, bodyExcerpt: '' });
      },
    };
    const sender = createSender({
      transport,
      clock,
      random: () => 0.5,
      retry: { baseDelayMs: 2_000, maxDelayMs: 2_000, maxAttempts: 3 },
      retryBudget: { ratio: 0, minPerSecond: 0.1 },
    });
    try {
      const controller = new AbortController();
      const first = sender.send({ id: 'msg_first', url: 'http://down.test/hook', body: 1 }, { signal: controller.signal });
      const firstOutcome = first.then(
        () => 'ok',
        (e: { code: string }) => e.code,
      );
      await flush();
      expect(seen.get('msg_first')).toBe(1);
      // Sleeping its 1 s backoff; 0.8 s later (the next second) the caller gives up.
      clock.advance(800);
      controller.abort();
      expect(await firstOutcome).toBe('ERR_ABORTED');
      expect(seen.get('msg_first')).toBe(1);

      const second = sender
        .send({ id: 'msg_second', url: 'http://down.test/hook', body: 2 })
        .then(
          (r) => `ok after ${r.attempts}`,
          (e: { code: string; message: string }) => `${e.code}: ${e.message.slice(0, 50)}`,
        );
      for (let i = 0; i < 10; i++) {
        await flush();
        clock.advance(500);
      }
      expect(await second).toBe('ok after 2');
    } finally {
      await sender.close();
    }
  });
});
