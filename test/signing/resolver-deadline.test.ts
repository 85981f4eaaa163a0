import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { runAttempt } from '../../src/delivery/attempt.js';
import { withSigning } from '../../src/signing/signing-transport.js';
import type { Transport, TransportRequest } from '../../src/transport/transport.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
// Process-wide: a timer of the test runner's own may end meanwhile (seen in a loaded full run), never start.
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

function make(resolver: (url: string) => unknown): { signed: Transport; seen: TransportRequest[] } {
  const seen: TransportRequest[] = [];
  const transport: Transport = {
    async send(request) {
      seen.push(request);
      return { status: 200, headers: {}, bodyExcerpt: '' };
    },
  };
  return { signed: withSigning(transport, { signingSecret: resolver as never, clock: new FakeClock(1_700_000_000_000) }), seen };
}
const message = { id: 'msg_1', url: 'http://127.0.0.1:9/x', headers: {}, body: new Uint8Array([1]) };

describe('withSigning with a resolver: deadline, abort and no leftovers', () => {
  it('leaves no abort listener and no timer behind (answer, rejection, timeout, abort)', async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    const before = timers();
    let r = make(() => SECRET);
    expect(await runAttempt(r.signed, message, { timeoutMs: 5_000, signal, clock: new FakeClock(0) })).toMatchObject({ ok: true });
    r = make(() => Promise.reject(new Error('vault down')));
    expect(await runAttempt(r.signed, message, { timeoutMs: 5_000, signal, clock: new FakeClock(0) })).toMatchObject({ ok: false, error: { code: 'ERR_SIGNING' } });
    r = make(() => new Promise(() => {}));
    expect(await runAttempt(r.signed, message, { timeoutMs: 20, signal, clock: new FakeClock(0) })).toMatchObject({ ok: false, error: { code: 'ERR_SIGNING' } });
    // A resolver answering (rejecting) after the timeout: no unhandled rejection.
    r = make(() => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 30)));
    expect(await runAttempt(r.signed, message, { timeoutMs: 10, signal, clock: new FakeClock(0) })).toMatchObject({ ok: false, error: { code: 'ERR_SIGNING' } });
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(timers()).toBeLessThanOrEqual(before);
    r = make(() => new Promise(() => {}));
    const pending = runAttempt(r.signed, message, { timeoutMs: 5_000, signal, clock: new FakeClock(0) });
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, error: { code: 'ERR_ABORTED' } });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it('passes the time left to the transport', async () => {
    const r = make(() => new Promise((resolve) => setTimeout(() => resolve(SECRET), 60)));
    await runAttempt(r.signed, message, { timeoutMs: 200, clock: new FakeClock(0) });
    expect(r.seen[0]?.timeoutMs).toBeLessThanOrEqual(145);
    expect(r.seen[0]?.timeoutMs).toBeGreaterThan(100);
  });
});
