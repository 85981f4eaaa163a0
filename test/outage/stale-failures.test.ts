import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox } from '../../src/outbox.js';
import { flush, open, openBox, URL_A } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

describe('requests in flight when the circuit opened, answered after it closed again', () => {
  // Scenario: a receiver behind a load balancer goes down: some requests fail at once (500), others hang
  // until they time out. 16 requests are out; 5 fast 500s open the circuit, 11 are still hanging. The probe
  // at 0.5 s gets a 200 (receiver back): the circuit closes, slow start at 1. Then the 11 old requests,
  // sent before the outage was noticed, fail (500, or their timeout).
  // Expected (docs/04 "No attempts burn during an outage"): "Failures of requests that were in flight when
  // the circuit opened ... are recorded in the event's history but not counted"; and old news must not
  // count as the recovered endpoint failing (the AIMD already ignores answers to requests sent before a
  // decrease, via the ticket epoch; the failure count does not).
  // Before the fix: EndpointState.record() only checks the circuit state at answer time; the circuit is closed
  // again, so each stale failure counts as an attempt of its event (and gets a backoff), and 5 of them
  // re-open the circuit of an endpoint that just answered 200: the recovery is thrown back to probing.
  // Why it matters: maxAttempts burns on the outage after all, and recovery stalls on a receiver that is up.
  it('stale failures are not counted as attempts and do not re-open the recovered circuit', async () => {
    const t = await openBox({ concurrency: 16, retry: { baseDelayMs: 1_000, maxDelayMs: 60_000, maxAttempts: 5 } });
    box = t.box;
    await Promise.all(Array.from({ length: 40 }, (_, n) => t.box.enqueue({ body: { n } })));
    await flush();
    const first = open(t.pending);
    expect(first).toHaveLength(16);
    for (const p of first.slice(0, 5)) {
      p.reply(500);
      await flush();
    }
    expect(t.circuits.at(-1)?.state).toBe('open');
    // Everything still out when the circuit opened (the 11 of the first window and those sent into the
    // slots the first 500s freed).
    const stale = open(t.pending);
    expect(stale.length).toBeGreaterThanOrEqual(11);
    const probeAt = t.box.stats().endpoints[URL_A]?.nextProbeAt as number;
    t.clock.advance(probeAt - t.clock.now());
    await flush();
    const probe = open(t.pending).filter((p) => !stale.includes(p));
    expect(probe).toHaveLength(1);
    probe[0]?.reply(200);
    await flush();
    expect(t.circuits.at(-1)?.state).toBe('closed');
    const countedBefore = t.retries.filter((r) => r.counted).length;

    // The hanging requests of before the outage now fail.
    for (const p of stale) {
      p.reply(500);
      await flush();
    }
    const staleRetries = t.retries.filter((r) => stale.some((p) => p.id === r.id));
    expect(staleRetries).toHaveLength(stale.length);
    expect({
      countedStale: staleRetries.filter((r) => r.counted).length,
      circuit: t.box.stats().endpoints[URL_A]?.circuit,
      countedBefore,
    }).toEqual({ countedStale: 0, circuit: 'closed', countedBefore });
  });
});
