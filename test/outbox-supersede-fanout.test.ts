import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { closedAfterEach, FAST_RETRY } from './outbox-helpers.js';

const opened = closedAfterEach();

describe('supersede with one key fanned out to two endpoints', () => {
  it('each endpoint still receives the latest state enqueued for it', async () => {
    const a = (opened.receiver = await startFlakyReceiver({}));
    const b = await startFlakyReceiver({});
    try {
      const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: a.url, autoFlush: false, retry: FAST_RETRY }));
      // docs/03: "The key is per outbox, whatever the URL". The app sends each customer update to two subscribers.
      for (const n of [1, 2]) {
        await box.enqueue({ url: a.url, orderingKey: 'customer-42', supersede: true, body: { n, to: 'a' } });
        await box.enqueue({ url: b.url, orderingKey: 'customer-42', supersede: true, body: { n, to: 'b' } });
      }
      await box.drain({ timeoutMs: 10_000 });
      const got = (rx: typeof a): number[] => rx.requests.filter((r) => r.status === 200).map((r) => (JSON.parse(r.body) as { n: number }).n);
      // A superseder supersedes only events to its own URL, and only the key's latest one is looked at:
      // b's first update goes, a's is sent (the safe side); each receiver ends with the latest state.
      expect({ a: got(a), b: got(b) }).toEqual({ a: [1, 2], b: [2] });
    } finally {
      await b.close();
    }
  });
});
