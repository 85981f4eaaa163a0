import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox } from '../../src/outbox.js';
import { flush, open, openBox } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

describe('a quiet endpoint (a single event) during an outage', () => {
  // Scenario: a customer's low-traffic endpoint has one event queued when its receiver goes down (refuses
  // connections) for an hour; retry.maxAttempts: 4 (any value below FAILURE_THRESHOLD = 5 does this; the
  // sender's default is 3, and test/outbox-outage.test.ts had to raise its own to 5 for this reason).
  // Expected (docs/04: "So retry.maxAttempts never dead-letters a backlog because the receiver was down";
  // docs/02: "attempts while the circuit is open do not count"; docs/06: "an outage does not dead-letter a
  // backlog"): the event waits out the outage and is delivered when the receiver is back.
  // Before the fix: the circuit opens only after 5 consecutive failures, and with a single event every one of them
  // before that is one of its own counted attempts: it dies (`max-attempts`) after about 3.5 s of backoff,
  // before the circuit ever opens. Why it matters: most customer endpoints are quiet; an outage of any
  // length dead-letters their events unless maxAttempts is at least 5, which no doc says.
  it('one event, maxAttempts 4, receiver refusing for an hour: not a dead letter, delivered afterwards', async () => {
    const t = await openBox({ concurrency: 16, retry: { maxAttempts: 4 } });
    box = t.box;
    await t.box.enqueue({ body: { hello: 'world' } });
    for (let round = 0; round < 3_600; round++) {
      await flush(3);
      for (const p of open(t.pending)) p.fail('ERR_NETWORK', 'ECONNREFUSED');
      t.clock.advance(1_000);
    }
    const deadDuringOutage = t.dead.map((d) => `${d.reason} after ${d.attempts} attempts`);
    for (let round = 0; t.delivered.length < 1 && round < 2_000; round++) {
      await flush(3);
      for (const p of open(t.pending)) p.reply(200);
      t.clock.advance(1_000);
    }
    expect({ deadDuringOutage, delivered: t.delivered.length }).toEqual({ deadDuringOutage: [], delivered: 1 });
  });
});
