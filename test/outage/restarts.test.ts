import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { DeadEvent } from '../../src/delivery/flusher.js';
import type { Outbox } from '../../src/outbox.js';
import { MemoryStore } from '../../src/store/memory.js';
import { flush, open, openBox } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

describe('restarts during a long outage', () => {
  // Scenario: a customer's receiver answers 500 for 12 hours; 10 events are queued for it; the app is
  // redeployed (or scaled, or crash-looping) once an hour, a clean close() and open() of the same outbox.
  // retry.maxAttempts: 3, a plausible setting. Expected (docs/06: "Attempts made while the endpoint's
  // circuit was open do not count towards maxAttempts: an outage does not dead-letter a backlog";
  // docs/04: "So retry.maxAttempts never dead-letters a backlog because the receiver was down"): no dead
  // letter; the events wait for the receiver. docs/04 also says a restarted process starts the circuit
  // closed, so the circuit "opens again within one window".
  // Before the fix: each restart sends the window again and the first FAILURE_THRESHOLD - 1 = 4 failures before
  // the circuit opens count as attempts of their events. With a small backlog the same events take them
  // again and again; after a few restarts they die with reason `max-attempts`, though the receiver was
  // simply down the whole time. Why it matters: a routine deploy cadence turns an outage into lost-looking
  // (dead-lettered) webhooks, exactly what the outbox promises not to do; the restart reset is documented,
  // its consequence for maxAttempts contradicts docs/04 and docs/06.
  it('12 hourly restarts during a 500 outage dead-letter nothing through maxAttempts', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    let store = new MemoryStore();
    const dead: DeadEvent[] = [];
    let requests = 0;
    for (let hour = 0; hour < 12; hour++) {
      const t = await openBox({ concurrency: 16, retry: { baseDelayMs: 1_000, maxDelayMs: 600_000, maxAttempts: 3 } }, clock, store);
      box = t.box;
      if (hour === 0) await Promise.all(Array.from({ length: 10 }, (_, n) => t.box.enqueue({ body: { n } })));
      // One hour of this process, the receiver answering every request 500 (bounded rounds of 10 s).
      for (let round = 0; round < 360; round++) {
        await flush(3);
        for (const p of open(t.pending)) {
          p.reply(500);
          await flush(2);
        }
        clock.advance(10_000);
      }
      requests += t.sent.length;
      dead.push(...t.dead);
      await t.box.close({ timeoutMs: 0 });
      box = undefined;
      store = new MemoryStore({ snapshot: store.snapshot() });
    }
    expect({ dead: dead.map((d) => d.reason), requestsUnder: requests < 12 * 40 }).toEqual({ dead: [], requestsUnder: true });
  });
});
