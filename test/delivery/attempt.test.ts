import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { createTransportStack, runAttempt } from '../../src/delivery/attempt.js';
import { redactExcerpt, urlSecrets } from '../../src/redact.js';
import { HttpStatusError, NetworkError } from '../../src/errors.js';
import { prepareMessage } from '../../src/message.js';
import { normalizeSenderOptions } from '../../src/options.js';
import { startFlakyReceiver, type FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { Transport } from '../../src/transport/transport.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
let receiver: FlakyReceiver | undefined;
let transport: Transport | undefined;
afterEach(async () => {
  await transport?.close?.();
  await receiver?.close();
  receiver = undefined;
  transport = undefined;
});

async function setup(script: Parameters<typeof startFlakyReceiver>[0] = {}): Promise<{ r: FlakyReceiver; t: Transport }> {
  receiver = await startFlakyReceiver({ secret: SECRET, ...script });
  transport = createTransportStack(normalizeSenderOptions({ signingSecret: SECRET }));
  return { r: receiver, t: transport };
}

const message = (url: string, headers: Record<string, string> = {}) =>
  prepareMessage({ body: { n: 1 }, id: 'msg_attempt', headers }, { url, maxBodyBytes: 1_000 });
const opts = { timeoutMs: 2_000, clock: systemClock };

describe('runAttempt', () => {
  it('a 2xx is ok, and the request carries webhook-id and a signature standardwebhooks verifies', async () => {
    const { r, t } = await setup();
    const result = await runAttempt(t, message(r.url), opts);
    expect(result).toMatchObject({ ok: true, status: 200 });
    const seen = r.requests[0];
    expect(seen?.id).toBe('msg_attempt');
    expect(seen?.signatureValid).toBe(true);
    const headers = Object.fromEntries(Object.entries(seen?.headers ?? {}).map(([k, v]) => [k, String(v)]));
    expect(new Webhook(SECRET).verify(seen?.body ?? '', headers)).toEqual({ n: 1 });
  });

  it('a 503 with Retry-After is retryable, throttled, and carries the wait', async () => {
    const { r, t } = await setup({ script: [{ status: 503, headers: { 'retry-after': '7' }, body: 'busy' }] });
    const result = await runAttempt(t, message(r.url), opts);
    expect(result).toMatchObject({ ok: false, retryable: true, throttled: true, status: 503, retryAfterMs: 7_000 });
    expect(!result.ok && result.error).toBeInstanceOf(HttpStatusError);
    expect(!result.ok && result.error).toMatchObject({ code: 'ERR_HTTP_STATUS', status: 503, bodyExcerpt: 'busy' });
  });

  it('a TLS failure (https to a plain HTTP port) is a retryable network error, not a permanent one', async () => {
    const { r, t } = await setup();
    const result = await runAttempt(t, message(r.url.replace('http:', 'https:')), opts);
    expect(result).toMatchObject({ ok: false, retryable: true, throttled: false });
    expect(!result.ok && result.error).toMatchObject({ code: 'ERR_NETWORK' });
    expect(r.requests).toHaveLength(0);
  });

  it('a 400 is permanent; an echoed credential is redacted from the excerpt', async () => {
    const { r, t } = await setup({
      script: (req) => ({ status: 400, body: `bad request, you sent ${String(req.headers.authorization)} and ${String(req.headers['webhook-signature'])}` }),
    });
    const result = await runAttempt(t, message(r.url, { authorization: 'Bearer sk_live_123' }), opts);
    expect(result).toMatchObject({ ok: false, retryable: false, throttled: false, status: 400 });
    const excerpt = result.ok ? '' : (result.error as HttpStatusError).bodyExcerpt;
    expect(excerpt).toContain('bad request, you sent [redacted] and [redacted]');
    expect(excerpt).not.toContain('sk_live');
  });

  it('ignores Retry-After on a permanent status and reports no response as a NetworkError', async () => {
    const { r, t } = await setup({ script: [{ status: 404, headers: { 'retry-after': '5' } }, { drop: true }] });
    const notFound = await runAttempt(t, message(r.url), opts);
    expect(notFound.ok === false && notFound.retryAfterMs).toBeUndefined();
    const dropped = await runAttempt(t, message(r.url), opts);
    expect(dropped).toMatchObject({ ok: false, retryable: true, throttled: false });
    expect(!dropped.ok && dropped.error).toBeInstanceOf(NetworkError);
  });

  it('normalises whatever a user transport throws', async () => {
    const fetchLike: Transport = {
      send: () => Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ENOTFOUND' }) })),
    };
    const msg = message('http://no-such-host.invalid/hook');
    expect(await runAttempt(fetchLike, msg, opts)).toMatchObject({ ok: false, retryable: false, error: { errno: 'ENOTFOUND' } });
    expect(await runAttempt(fetchLike, msg, { ...opts, retryOnDnsFailure: true })).toMatchObject({ ok: false, retryable: true });
  });
});

describe('redactExcerpt', () => {
  it('replaces every secret and bounds the length', () => {
    expect(redactExcerpt('a tok b tok', ['tok'])).toBe('a [redacted] b [redacted]');
    expect(redactExcerpt('sig v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= end', [])).toBe('sig [redacted] end');
    expect(redactExcerpt('x'.repeat(20), [], 5)).toBe('xxxxx...');
  });

  it('finds a secret in the forms receivers echo it in, and its start where the excerpt ends', () => {
    const secret = 'ab+/cd==efgh/ij+k==';
    const unpadded = secret.replace(/=+$/, '');
    for (const form of [secret, secret.replaceAll('/', '\\/'), encodeURIComponent(secret), unpadded, unpadded.replaceAll('+', '-').replaceAll('/', '_')]) {
      expect(redactExcerpt(`got ${form} here`, [secret]), form).toBe('got [redacted] here');
    }
    expect(redactExcerpt(`cut at ${secret.slice(0, 9)}`, [secret])).toBe('cut at [redacted]');
    // Fewer than 8 characters at the end are too likely to be ordinary text.
    expect(redactExcerpt(`ends ab+/c`, [secret])).toBe('ends ab+/c');
  });
});

describe('urlSecrets', () => {
  it('takes user info (and the Basic credential made of it) and query values of 8 characters or more', () => {
    const basic = Buffer.from('u:longpassword').toString('base64');
    expect(urlSecrets('https://u:longpassword@example.test/p?format=json&token=abcdefgh12')).toEqual(['longpassword', basic, 'abcdefgh12']);
    expect(urlSecrets('not a url')).toEqual([]);
  });
});
