import { describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { createSender } from '../src/sender.js';
import type { Transport, TransportRequest } from '../src/transport/transport.js';

/** The retry budget per endpoint, its refund on abort, and its option's messages. */
/** Time stands still (the whole test is inside one second of the budget); timers fire on the next turn. */
const T = 1_700_000_000_000;
const frozen: Clock = {
  now: () => T,
  setTimer: (fn) => {
    const handle = setImmediate(fn);
    return () => clearImmediate(handle);
  },
};

/** A transport for two receivers: `down` always answers 503; `flaky` answers 503 to each id's first request, then 200. */
function twoReceivers(): { transport: Transport; requests: Map<string, number> } {
  const seen = new Map<string, number>();
  const requests = new Map<string, number>();
  const transport: Transport = {
    send: (request: TransportRequest) => {
      const host = new URL(request.url).host;
      requests.set(host, (requests.get(host) ?? 0) + 1);
      const id = request.headers['webhook-id'] ?? '';
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      const status = host === 'down.test' ? 503 : n === 1 ? 503 : 200;
      return Promise.resolve({ status, headers: {}, bodyExcerpt: '' });
    },
  };
  return { transport, requests };
}

const RETRY = { baseDelayMs: 0, maxDelayMs: 0, maxAttempts: 3 };

describe('the sender retry budget', () => {
  it('one customer\'s dead receiver does not take the retries of another receiver\'s trickle', async () => {
    const { transport } = twoReceivers();
    const sender = createSender({ transport, clock: frozen, retry: RETRY });
    try {
      // Customer A's receiver is down: a burst of 300 sends to it, all failing.
      const down = await Promise.allSettled(Array.from({ length: 300 }, (_, n) => sender.send({ url: 'http://down.test/hook', body: { n } })));
      expect(down.every((r) => r.status === 'rejected')).toBe(true);
      // Customer B's receiver blips once per event: a trickle of 5 sends, each fine on its second attempt.
      const trickle: string[] = [];
      for (let i = 0; i < 5; i++) {
        await sender.send({ url: 'http://flaky.test/hook', body: { i } }).then(
          (r) => trickle.push(`ok after ${r.attempts}`),
          (e: { code: string; message: string }) => trickle.push(`${e.code}: ${e.message.slice(0, 40)}`),
        );
      }
      expect(trickle).toEqual(Array(5).fill('ok after 2'));
    } finally {
      await sender.close();
    }
  });

  it('a retry taken by a send that is then aborted during its backoff is still charged to everybody', async () => {
    const { transport, requests } = twoReceivers();
    // One retry per 10 s in all.
    // Timers wait until released: the aborted send sits in its backoff.
    const parked: (() => void)[] = [];
    const clock: Clock = { now: () => T, setTimer: (fn) => (parked.push(fn), () => {}) };
    const sender = createSender({ transport, clock, retry: RETRY, retryBudget: { ratio: 0, minPerSecond: 0.1 } });
    try {
      const controller = new AbortController();
      const aborted = sender.send({ url: 'http://down.test/hook', body: 1 }, { signal: controller.signal });
      // Let the first attempt fail and the send decide to retry (it then sleeps for its backoff).
      for (let i = 0; i < 20 && parked.length === 0; i++) await new Promise((r) => setImmediate(r));
      expect(parked).toHaveLength(1);
      controller.abort();
      await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' });
      expect(requests.get('down.test')).toBe(1);
      // No retry was made: the one retry of the window is still there for the next send.
      const next = sender.send({ url: 'http://flaky.test/hook', body: 2 }).then(
        (r) => `ok after ${r.attempts}`,
        (e: { code: string; message: string }) => `${e.code}: ${e.message.slice(0, 60)}`,
      );
      for (let i = 0; i < 20 && parked.length === 1; i++) await new Promise((r) => setImmediate(r));
      for (const fire of parked.splice(0)) fire();
      expect(await next).toBe('ok after 2');
    } finally {
      await sender.close();
    }
  });
});

describe('retryBudget validation messages', () => {
  it.each([
    [null, 'retryBudget'],
    [{ ratio: Infinity }, 'retryBudget.ratio'],
    [{ ratio: 100.0001 }, 'retryBudget.ratio'],
    [{ minPerSecond: '5' }, 'retryBudget.minPerSecond'],
    [{ minPerSecond: 1_000_001 }, 'retryBudget.minPerSecond'],
    [0, 'retryBudget'],
  ])('%j is refused naming %s', (value, option) => {
    let error: unknown;
    try {
      createSender({ retryBudget: value as never });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'ERR_INVALID_OPTION', option });
  });
  it('{} takes the defaults', () => {
    expect(() => createSender({ retryBudget: {} })).not.toThrow();
  });
});
