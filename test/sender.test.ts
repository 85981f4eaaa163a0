import { getEventListeners } from 'node:events';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { HttpStatusError, RetriesExhaustedError, type WebhookOutboxError } from '../src/errors.js';
import type { SenderOptions } from '../src/options.js';
import { createSender, type SendResult, type Sender } from '../src/sender.js';
import { generateSigningKeyPair } from '../src/signing/ed25519-keys.js';
import { verifyWebhook } from '../src/signing/sign.js';
import { startFlakyReceiver, type FlakyReceiver, type FlakyReceiverOptions } from '../src/testing/flaky-receiver.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const FAST = { baseDelayMs: 2, maxDelayMs: 5 };

let receiver: FlakyReceiver | undefined;
let sender: Sender | undefined;
afterEach(async () => {
  await sender?.close();
  await receiver?.close();
  receiver = undefined;
  sender = undefined;
});

async function setup(receiverOptions: FlakyReceiverOptions, options: SenderOptions = {}): Promise<{ r: FlakyReceiver; s: Sender }> {
  receiver = await startFlakyReceiver(receiverOptions);
  sender = createSender({ url: receiver.url, retry: FAST, ...options });
  return { r: receiver, s: sender };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 2));
  expect(condition()).toBe(true);
}

async function rejection(promise: Promise<unknown>): Promise<WebhookOutboxError> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error as WebhookOutboxError,
  );
}

describe('createSender().send', () => {
  it('500, 500, 200: resolves after 3 attempts with the same webhook-id, each signature valid', async () => {
    const { r, s } = await setup({ secret: SECRET, script: [500, 500, 200] }, { signingSecret: SECRET });
    const result = await s.send({ body: { order: 42 } });
    expect(result).toMatchObject({ status: 200, attempts: 3 });
    expect(result.id).toMatch(/^msg_/);
    expect(r.requests.map((q) => q.id)).toEqual([result.id, result.id, result.id]);
    expect(r.requests.map((q) => q.signatureValid)).toEqual([true, true, true]);
    const wh = new Webhook(SECRET);
    for (const q of r.requests) {
      const headers = Object.fromEntries(Object.entries(q.headers).map(([k, v]) => [k, String(v)]));
      expect(wh.verify(q.body, headers)).toEqual({ order: 42 });
    }
    expect(r.deliveredIds()).toEqual(new Set([result.id]));
  });

  it('whsk_ key: 500, 200; the receiver verifies each v1a signature with the whpk_ public key', async () => {
    const pair = generateSigningKeyPair();
    const { r, s } = await setup({ secret: pair.publicKey, script: [500, 200] }, { signingSecret: pair.secretKey });
    const result = await s.send({ body: { order: 7 } });
    expect(result).toMatchObject({ status: 200, attempts: 2 });
    expect(r.requests.map((q) => q.signatureValid)).toEqual([true, true]);
    const stranger = generateSigningKeyPair().publicKey;
    for (const q of r.requests) {
      expect(String(q.headers['webhook-signature'])).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
      const at = { now: Number(q.timestamp) * 1000 };
      expect(verifyWebhook(pair.publicKey, q.headers, q.body, at)).toEqual({ ok: true, id: result.id, timestamp: Number(q.timestamp) });
      expect(verifyWebhook(stranger, q.headers, q.body, at)).toEqual({ ok: false, reason: 'signature-mismatch' });
    }
  });

  it('400: one attempt, rejects at once with ERR_HTTP_STATUS, the status and an excerpt', async () => {
    const { r, s } = await setup({ script: [{ status: 400, body: '{"error":"missing field"}' }] });
    const error = await rejection(s.send({ body: { a: 1 }, id: 'evt-400' }));
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 400, bodyExcerpt: '{"error":"missing field"}', retryable: false });
    expect(r.countById('evt-400')).toBe(1);
  });

  it('3xx is a failure: not followed and not retried', async () => {
    const { r, s } = await setup({ script: [{ status: 302, headers: { location: '/elsewhere' } }] });
    expect(await rejection(s.send({ body: 1 }))).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 302 });
    expect(r.requests.map((q) => q.path)).toEqual(['/hook']);
  });

  it('429 + Retry-After: waits exactly the requested floor (injected clock), then succeeds', async () => {
    const clock = new FakeClock();
    const { r, s } = await setup(
      { script: [{ status: 429, headers: { 'retry-after': '1' } }] },
      { clock, random: () => 0, retry: { baseDelayMs: 5, maxDelayMs: 5 } },
    );
    const pending = s.send({ body: 1 });
    await until(() => clock.pendingTimers === 1);
    clock.advance(999);
    expect(clock.pendingTimers).toBe(1);
    expect(r.requests).toHaveLength(1);
    clock.advance(1);
    expect(await pending).toMatchObject({ status: 200, attempts: 2 });
    expect(r.requests).toHaveLength(2);
  });

  it('429 + Retry-After: 1 on the real clock: the retry comes at least a second later', async () => {
    const { r, s } = await setup({ script: [{ status: 429, headers: { 'retry-after': '1' } }] });
    expect(await s.send({ body: 1 })).toMatchObject({ attempts: 2 });
    const [first, second] = r.requests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(990);
  });

  it('a dropped connection is retried', async () => {
    const { r, s } = await setup({ script: [{ drop: true }, { drop: true }] });
    const result = await s.send({ body: 1 });
    expect(result.attempts).toBe(3);
    expect(r.countById(result.id)).toBe(3);
  });

  it('a hung server hits timeoutMs and is retried', async () => {
    const { r, s } = await setup({ script: [{ hang: true }] }, { timeoutMs: 200 });
    const result = await s.send({ body: 1 });
    expect(result).toMatchObject({ status: 200, attempts: 2 });
    expect(r.countById(result.id)).toBe(2);
  });

  it('gives up with ERR_RETRIES_EXHAUSTED after maxAttempts, the last error as cause', async () => {
    const { r, s } = await setup({ script: [503, 503, 503, 503] }, { retry: { ...FAST, maxAttempts: 3 } });
    const error = await rejection(s.send({ body: 1, id: 'evt-503' }));
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(error).toMatchObject({ code: 'ERR_RETRIES_EXHAUSTED', attempts: 3 });
    expect(error.cause).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 503 });
    expect(r.countById('evt-503')).toBe(3);
  });

  it('gives up without sleeping when the next delay would pass maxAgeMs', async () => {
    const clock = new FakeClock();
    const { r, s } = await setup({ script: [500] }, { clock, random: () => 0.9, retry: { baseDelayMs: 1_000, maxDelayMs: 1_000, maxAgeMs: 500 } });
    const error = await rejection(s.send({ body: 1 }));
    expect(error).toMatchObject({ code: 'ERR_RETRIES_EXHAUSTED', attempts: 1 });
    expect(error.message).toContain('maxAgeMs');
    expect(clock.pendingTimers).toBe(0);
    expect(r.requests).toHaveLength(1);
  });

  it('abort mid-request stops at once with ERR_ABORTED', async () => {
    const { r, s } = await setup({ script: [{ hang: true }] });
    const controller = new AbortController();
    const pending = s.send({ body: 1 }, { signal: controller.signal });
    await until(() => r.inProgress === 1);
    controller.abort(new Error('shutting down'));
    const error = await rejection(pending);
    expect(error).toMatchObject({ code: 'ERR_ABORTED' });
    expect(error.cause).toMatchObject({ message: 'shutting down' });
    expect(r.requests).toHaveLength(1);
  });

  it('abort mid-backoff stops at once, with no further request', async () => {
    const clock = new FakeClock();
    const { r, s } = await setup({ script: [500] }, { clock, retry: { baseDelayMs: 10_000, maxDelayMs: 10_000 }, random: () => 0.5 });
    const controller = new AbortController();
    const pending = s.send({ body: 1 }, { signal: controller.signal });
    await until(() => clock.pendingTimers === 1);
    controller.abort();
    expect(await rejection(pending)).toMatchObject({ code: 'ERR_ABORTED' });
    expect(clock.pendingTimers).toBe(0);
    expect(r.requests).toHaveLength(1);
  });

  it('an already aborted signal sends nothing', async () => {
    const { r, s } = await setup({});
    expect(await rejection(s.send({ body: 1 }, { signal: AbortSignal.abort() }))).toMatchObject({ code: 'ERR_ABORTED' });
    expect(r.requests).toHaveLength(0);
  });

  it('holds one listener per send() in flight on a signal the caller shares, and none once they settle', async () => {
    // Node warns past 10 listeners on one signal; a caller sharing one among more sends lifts its limit (docs/03).
    const SENDS = 10;
    let hang = false;
    const failedOnce = new Set<string | undefined>();
    const { r, s } = await setup({
      script: (request) => {
        if (hang) return { hang: true };
        if (failedOnce.has(request.id)) return 200;
        failedOnce.add(request.id);
        return 500;
      },
    });
    const { signal } = new AbortController();
    const send = (): Promise<SendResult> => s.send({ body: 1 }, { signal });
    const answered = await Promise.all(Array.from({ length: SENDS }, send));
    expect(answered.map((a) => a.attempts)).toEqual(Array<number>(SENDS).fill(2));
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    hang = true;
    const closed = Array.from({ length: SENDS }, () => rejection(send()));
    await until(() => r.inProgress === SENDS);
    expect(getEventListeners(signal, 'abort')).toHaveLength(SENDS);
    await s.close();
    for (const error of await Promise.all(closed)) expect(error.code).toBe('ERR_OUTBOX_CLOSED');
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('rejects every bad message before any request, with the right code', async () => {
    const { r, s } = await setup({});
    const circular: Record<string, unknown> = {};
    circular.me = circular;
    const bad: [unknown, string][] = [
      [{}, 'ERR_INVALID_MESSAGE'],
      [{ body: undefined }, 'ERR_INVALID_MESSAGE'],
      [{ body: () => 1 }, 'ERR_INVALID_MESSAGE'],
      [{ body: { n: 1n } }, 'ERR_INVALID_MESSAGE'],
      [{ body: circular }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, url: 'file:///etc/passwd' }, 'ERR_INVALID_URL'],
      [{ body: 1, url: 'http//missing-colon' }, 'ERR_INVALID_URL'],
      [{ body: 1, url: null }, 'ERR_INVALID_URL'],
      [{ body: 1, url: 'http://unix:/var/run/app.sock:/hook' }, 'ERR_INVALID_URL'],
      [{ body: { file: Buffer.from('hi') } }, 'ERR_INVALID_MESSAGE'],
      [{ body: [new Uint8Array(2)] }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, headers: { 'x-n': 1 } }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, headers: { 'x-a': 'v\r\nx-evil: 1' } }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, headers: { 'x-a\nb': 'v' } }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, headers: { 'x-customer': 'Zo\u00eb & Co \u20ac' } }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, headers: { 'webhook-id': 'x' } }, 'ERR_INVALID_MESSAGE'],
      [{ body: 1, id: '' }, 'ERR_INVALID_MESSAGE'],
      [{ body: 'x'.repeat(1_048_577) }, 'ERR_BODY_TOO_LARGE'],
    ];
    for (const [index, [message, code]] of bad.entries()) {
      const error = await rejection(s.send(message as never));
      expect(error.code, `bad message #${index}`).toBe(code);
    }
    expect(r.requests).toHaveLength(0);
  });

  it('sends a header value with Latin-1 characters as they are (U+00FF is the last one HTTP/1.1 carries)', async () => {
    const { r, s } = await setup({});
    await s.send({ body: 1, headers: { 'x-customer': 'Zo\u00eb \u00ff' } });
    expect(r.requests.map((q) => q.headers['x-customer'])).toEqual(['Zo\u00eb \u00ff']);
  });

  it('never puts the secret or credential headers into errors', async () => {
    const { s } = await setup(
      { script: (q) => ({ status: 401, body: `denied: ${String(q.headers.authorization)} ${String(q.headers['webhook-signature'])}` }) },
      { signingSecret: SECRET, headers: { authorization: 'Bearer sk_live_abc123' } },
    );
    const error = await rejection(s.send({ body: 1 }));
    const everything = `${error.message} ${JSON.stringify(error)} ${(error as HttpStatusError).bodyExcerpt}`;
    expect(everything).toContain('denied: [redacted] [redacted]');
    for (const secret of ['sk_live_abc123', SECRET, SECRET.slice(6), 'v1,']) expect(everything).not.toContain(secret);
  });

  it('while rotating secrets, receivers on the old and on the new one both verify, and an echo of either is redacted', async () => {
    const NEW = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    for (const receiverSecret of [SECRET, NEW]) {
      const { r, s } = await setup({ secret: receiverSecret }, { signingSecret: [NEW, SECRET] });
      await s.send({ body: { order: 1 } });
      expect(r.requests.map((q) => q.signatureValid)).toEqual([true]);
      expect(String(r.requests[0]?.headers['webhook-signature']).split(' ')).toHaveLength(2);
      await sender?.close();
      await receiver?.close();
    }
    const { s } = await setup({ script: () => ({ status: 400, body: `got ${SECRET} and ${NEW}` }) }, { signingSecret: [NEW, SECRET] });
    const error = await rejection(s.send({ body: 1 }));
    expect((error as HttpStatusError).bodyExcerpt).toBe('got [redacted] and [redacted]');
  });

  it('close() closes the transport; later sends reject with ERR_OUTBOX_CLOSED', async () => {
    let closed = 0;
    const s = createSender({
      url: 'http://127.0.0.1:9/hook',
      transport: { send: () => Promise.resolve({ status: 204, headers: {}, bodyExcerpt: '' }), close: () => (closed++, Promise.resolve()) },
    });
    expect(await s.send({ body: 1 })).toMatchObject({ status: 204, attempts: 1 });
    await Promise.all([s.close(), s.close()]);
    expect(closed).toBe(1);
    expect(await rejection(s.send({ body: 1 }))).toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
  });

  it('close() stops a send() that is waiting for its next attempt or for an answer: ERR_OUTBOX_CLOSED, no more requests', async () => {
    const clock = new FakeClock();
    const backingOff = await setup({ script: [500] }, { clock, retry: { baseDelayMs: 10_000, maxDelayMs: 10_000 }, random: () => 0.5 });
    const waiting = backingOff.s.send({ body: 1 });
    await until(() => clock.pendingTimers === 1);
    await backingOff.s.close();
    expect(await rejection(waiting)).toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
    clock.advance(60_000);
    expect(backingOff.r.requests).toHaveLength(1);
    await backingOff.r.close();

    const hanging = await setup({ script: [{ hang: true }] });
    const inFlight = hanging.s.send({ body: 1 });
    await until(() => hanging.r.inProgress === 1);
    await hanging.s.close();
    expect(await rejection(inFlight)).toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
    expect(hanging.r.requests).toHaveLength(1);
  });

  it('rejects bad options when created', () => {
    expect(() => createSender({ retry: { maxAttempts: 0 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'retry.maxAttempts' }));
  });
});

describe('createSender with a signingSecret function that never answers', () => {
  it('still ends the attempt at timeoutMs, and a caller abort or close() still ends send()', async () => {
    const s = (sender = createSender({
      url: 'http://127.0.0.1:9/hook',
      timeoutMs: 50,
      retry: { maxAttempts: 1 },
      signingSecret: () => new Promise<string>(() => {}),
    }));
    const within = <T>(promise: Promise<T>, ms: number): Promise<T | 'still pending'> =>
      Promise.race([promise, new Promise<'still pending'>((resolve) => setTimeout(() => resolve('still pending'), ms))]);
    const timedOut = await within(rejection(s.send({ body: { n: 1 } })), 1_000);
    const controller = new AbortController();
    const aborting = rejection(s.send({ body: { n: 2 } }, { signal: controller.signal }));
    controller.abort();
    const aborted = await within(aborting, 500);
    expect({ timedOut: timedOut === 'still pending' ? timedOut : 'ended', aborted: aborted === 'still pending' ? aborted : 'ended' }).toEqual({
      timedOut: 'ended',
      aborted: 'ended',
    });
  });
});
