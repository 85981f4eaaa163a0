import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { StoreIoError } from '../src/errors.js';
import { closedAfterEach } from './outbox-helpers.js';
import { delegatingStore } from './store/delegating-store.js';

const opened = closedAfterEach();

describe('a store that cannot write the superseded outcome (disk full)', () => {
  it('the flusher pauses (and does not starve the event loop) like after any store fault, instead of re-claiming and re-failing in a tight loop', async () => {
    const clock = new FakeClock();
    const inner = new MemoryStore();
    let claims = 0;
    let failedSettles = 0;
    const store = delegatingStore(inner, {
      claim: (request) => {
        claims++;
        return inner.claim(request);
      },
      settle: async (outcomes) => {
        // Fails the first 200 times (then the disk has room again), so that a livelocked flusher ends.
        if (outcomes.some((o) => o.type === 'superseded') && failedSettles < 200) {
          failedSettles++;
          throw new StoreIoError('ENOSPC: no space left on device');
        }
        return inner.settle(outcomes);
      },
    });
    // Nothing listens on a real port: nothing is ever sent in this test (the only sendable event waits behind a1).
    const box = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:9/hook', clock, autoFlush: false }));
    let errors = 0;
    box.on('error', () => errors++);
    await box.enqueue({ orderingKey: 'k', body: { n: 1 } });
    await box.enqueue({ orderingKey: 'k', supersede: true, body: { n: 2 } });
    const draining = box.drain({ timeoutMs: 60_000 }).catch(() => undefined);
    // The fake clock never moves: a flusher that pauses after a store fault makes a handful of claims.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    const seen = { claims, failedSettles, errors };
    clock.advance(60_000);
    await draining;
    expect(seen.failedSettles, JSON.stringify(seen)).toBeLessThanOrEqual(2);
  });
});
