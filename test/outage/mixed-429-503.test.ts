import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox } from '../../src/outbox.js';
import { flush, open, openBox } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

describe('a receiver in trouble answering a mix of 429 and 503 for hours', () => {
  // Scenario: the receiver is down behind a rate limiter for 2 hours: every 4th request gets 429 from the
  // limiter, the others 503 from the failing app behind it (a very common shape of an overloaded service).
  // 10 events queued (a customer endpoint with a small backlog), retry.maxAttempts: 5.
  // Expected (docs/04: "No attempts burn during an outage ... So retry.maxAttempts never dead-letters a
  // backlog because the receiver was down"; "a receiver that throttles for hours costs no dead letters
  // through retry.maxAttempts"; docs/06: "an outage does not dead-letter a backlog"): no dead letter.
  // Before the fix: the half-open probe that draws a 429 closes the circuit (docs/04 reads 429 as "up but busy"),
  // and the 503s that follow while it is closed count as attempts (up to FAILURE_THRESHOLD - 1 per cycle)
  // until 5 of them open it again; cycle after cycle, events collect counted attempts and die with reason
  // `max-attempts` while the receiver never delivered anything. Why it matters: the outage the package
  // exists for, with the most ordinary receiver behaviour, dead-letters part of the backlog.
  it('2 h of 429/503: nothing dies of maxAttempts', async () => {
    const t = await openBox({ concurrency: 16, retry: { maxAttempts: 5 } });
    box = t.box;
    await Promise.all(Array.from({ length: 10 }, (_, n) => t.box.enqueue({ body: { n } })));
    let n = 0;
    for (let round = 0; round < 720; round++) {
      await flush(3);
      for (const p of open(t.pending)) {
        p.reply(n++ % 4 === 3 ? 429 : 503);
        await flush(1);
      }
      t.clock.advance(10_000);
    }
    expect({ dead: t.dead.length, reasons: [...new Set(t.dead.map((d) => d.reason))] }).toEqual({ dead: 0, reasons: [] });
  });
});
