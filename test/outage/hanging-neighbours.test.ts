import { afterEach, describe, expect, it } from 'vitest';
import type { Outbox } from '../../src/outbox.js';
import { flush, open, openBox } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

const HEALTHY = 'http://healthy.test/hook';

/** Healthy deliveries per second over 30 s of fake time, with `hanging` endpoints whose receivers hang. */
async function run(hanging: number): Promise<number[]> {
  const t = await openBox({ url: HEALTHY, concurrency: 16, globalConcurrency: 64, timeoutMs: 15_000 });
  box = t.box;
  await Promise.all(Array.from({ length: 20_000 }, (_, n) => t.box.enqueue({ body: { n } })));
  await flush();
  // The healthy endpoint is busy first; then `hanging` customers' receivers start hanging.
  for (let h = 0; h < hanging; h++) {
    await Promise.all(Array.from({ length: 100 }, (_, n) => t.box.enqueue({ url: `http://dead${h}.test/hook`, body: { n } })));
  }
  const perSecond: number[] = [];
  let seen = 0;
  // The healthy receiver answers within 10 ms; the others never (their requests time out at 15 s).
  for (let ms = 0; ms < 30_000; ms += 10) {
    await flush(2);
    for (const p of open(t.pending)) if (p.url === HEALTHY) p.reply(200);
    t.clock.advance(10);
    if (ms % 1_000 === 990) {
      perSecond.push(t.delivered.length - seen);
      seen = t.delivered.length;
    }
  }
  return perSecond;
}

describe('endpoints whose receivers hang, next to a healthy one', () => {
  // Scenario: one healthy, busy endpoint, and 4 customers' receivers that start to hang (accept, never
  // answer: a stuck load balancer), with the defaults (concurrency 16, globalConcurrency 64, timeoutMs 15 s).
  // Expected (docs/04 "Limits": endpoints competing for globalConcurrency share it, "a freed slot goes to
  // the next endpoint in turn ... five busy endpoints behind a cap of 4 each get a fifth of the requests";
  // "Other endpoints are not affected" by an outage): the healthy endpoint keeps a share of the global
  // slots, so its delivery rate drops to a fraction, not to zero.
  // Before the fix: the freed slots of the healthy endpoint are handed round-robin to the hanging ones (they have
  // room of their own), which hold them for the whole 15 s timeout; after a few round trips all 64 global
  // slots hang and the healthy endpoint delivers nothing until the timeouts fire. Why it matters: one
  // stuck customer receiver per 16 global slots stops every customer's webhooks for timeoutMs, at the
  // start of every such outage.
  it('4 hanging endpoints do not stop a healthy one for the length of a timeout', async () => {
    const alone = await run(0);
    const withHanging = await run(4);
    // Each second of the first 14 s, the healthy endpoint keeps at least a tenth of its rate alone (alone it
    // delivers about 1,600/s here until its backlog runs out after 12 s; with the hanging ones: 32 in the
    // first second, then 0 a second until the timeouts fire at 15 s).
    const floor = Math.max(...alone) / 10;
    const starvedSeconds = withHanging.slice(1, 15).filter((n) => n < floor).length;
    expect({ starvedSeconds, alone: alone.slice(0, 16), withHanging: withHanging.slice(0, 16) }).toMatchObject({ starvedSeconds: 0 });
  });
});
