import { createPublicKey, verify } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { generateSigningKeyPair, signingPublicKey } from '../../src/signing/ed25519-keys.js';
import { signPayload, verifyWebhook } from '../../src/signing/sign.js';
import { withSigning } from '../../src/signing/signing-transport.js';
import type { Transport, TransportRequest } from '../../src/transport/transport.js';

// The Standard Webhooks specification's published test vector.
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TS = 1614265330;
const BODY = '{"test": 2432232314}';
const SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
const NEW_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const OTHER_SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;

describe('signPayload', () => {
  it('reproduces the spec test vector, for strings and bytes alike', () => {
    expect(signPayload(SECRET, ID, TS, BODY)).toBe(SIGNATURE);
    expect(signPayload(SECRET, ID, TS, Buffer.from(BODY))).toBe(SIGNATURE);
  });

  it('agrees with the standardwebhooks package', () => {
    const wh = new Webhook(SECRET);
    expect(signPayload(SECRET, 'msg_1', 1_700_000_000, '{"a":1}')).toBe(wh.sign('msg_1', new Date(1_700_000_000_000), '{"a":1}'));
  });

  it('rejects a malformed secret without quoting it', () => {
    expect(() => signPayload('whsec_short', ID, TS, BODY)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => signPayload('whsec_short', ID, TS, BODY)).not.toThrow(/short/);
  });

  it('refuses a timestamp that is not whole seconds (milliseconds, fractions, NaN, negative)', () => {
    for (const ts of [1.5, Number.NaN, -1, Date.UTC(2024, 0, 1)]) {
      expect(() => signPayload(SECRET, ID, ts, BODY)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
  });
});

describe('verifyWebhook', () => {
  const now = TS * 1000;
  const headers = { 'webhook-id': ID, 'webhook-timestamp': String(TS), 'webhook-signature': SIGNATURE };

  it('accepts the spec vector, with Node-style or fetch-style headers and several signatures', () => {
    expect(verifyWebhook(SECRET, headers, BODY, { now })).toEqual({ ok: true, id: ID, timestamp: TS });
    expect(verifyWebhook(SECRET, new Headers(headers), Buffer.from(BODY), { now }).ok).toBe(true);
    const rotated = { ...headers, 'webhook-signature': `v1,AAAA v1a,xyz ${SIGNATURE}` };
    expect(verifyWebhook(SECRET, rotated, BODY, { now }).ok).toBe(true);
  });

  it('rejects a changed body, a foreign signature, stale or future timestamps and missing headers', () => {
    expect(verifyWebhook(SECRET, headers, `${BODY} `, { now })).toEqual({ ok: false, reason: 'signature-mismatch' });
    expect(verifyWebhook(SECRET, { ...headers, 'webhook-signature': 'v1,AAAA' }, BODY, { now }).ok).toBe(false);
    expect(verifyWebhook(SECRET, headers, BODY, { now: now + 301_000 })).toEqual({ ok: false, reason: 'timestamp-out-of-tolerance' });
    expect(verifyWebhook(SECRET, headers, BODY, { now: now - 301_000 }).ok).toBe(false);
    expect(verifyWebhook(SECRET, headers, BODY, { now: now + 3_600_000, toleranceSeconds: 7_200 }).ok).toBe(true);
    expect(verifyWebhook(SECRET, { ...headers, 'webhook-timestamp': '12ab' }, BODY, { now })).toEqual({ ok: false, reason: 'bad-timestamp' });
    expect(verifyWebhook(SECRET, { 'webhook-id': ID }, BODY, { now })).toEqual({ ok: false, reason: 'missing-headers' });
    expect(verifyWebhook(SECRET, { ...headers, 'webhook-id': '' }, BODY, { now })).toEqual({ ok: false, reason: 'missing-headers' });
  });

  it('takes the raw body as an ArrayBuffer or any byte view too', () => {
    const bytes = new TextEncoder().encode(BODY);
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 4);
    for (const body of [bytes.buffer, new DataView(padded.buffer, 4, bytes.length), padded.subarray(4, 4 + bytes.length)]) {
      expect(verifyWebhook(SECRET, headers, body, { now }).ok).toBe(true);
    }
  });

  it('accepts only the canonical base64 text of a signature', () => {
    for (const signature of [`${SIGNATURE}!!garbage`, SIGNATURE.replace('+', '*+'), SIGNATURE.replace(/=$/, '')]) {
      expect(verifyWebhook(SECRET, { ...headers, 'webhook-signature': signature }, BODY, { now })).toEqual({ ok: false, reason: 'signature-mismatch' });
    }
  });

  it('throws ERR_INVALID_OPTION for arguments that would otherwise switch a check off or crash', () => {
    const bad: [unknown, unknown, Record<string, unknown>][] = [
      [headers, BODY, { toleranceSeconds: Number(undefined) }],
      [headers, BODY, { toleranceSeconds: -1 }],
      [headers, BODY, { now: Number.NaN }],
      [headers, { parsed: 'json' }, {}],
      [undefined, BODY, {}],
    ];
    for (const [h, body, options] of bad) {
      expect(() => verifyWebhook(SECRET, h as never, body as never, { now, ...options })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
    expect(verifyWebhook(SECRET, headers, BODY, { now: now + 1e12, toleranceSeconds: Number.POSITIVE_INFINITY }).ok).toBe(true);
  });
});

describe('withSigning', () => {
  function recorder(): { transport: Transport; seen: TransportRequest[] } {
    const seen: TransportRequest[] = [];
    return {
      seen,
      transport: { send: (request) => (seen.push(request), Promise.resolve({ status: 200, headers: {}, bodyExcerpt: '' })) },
    };
  }
  const request = (id?: string): TransportRequest => ({
    url: 'http://x.test/hook',
    headers: id === undefined ? { 'content-type': 'application/json' } : { 'content-type': 'application/json', 'webhook-id': id },
    body: Buffer.from('{"a":1}'),
    timeoutMs: 1_000,
  });

  it('stamps every attempt with its own timestamp and a signature standardwebhooks verifies', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const { transport, seen } = recorder();
    const signed = withSigning(transport, { signingSecret: [SECRET], clock });
    await signed.send(request('msg_a'));
    clock.advance(90_000);
    await signed.send(request('msg_a'));
    expect(seen.map((r) => r.headers['webhook-timestamp'])).toEqual(['1700000000', '1700000090']);
    const wh = new Webhook(SECRET);
    for (const r of seen) {
      const at = Number(r.headers['webhook-timestamp']) * 1000;
      expect(verifyWebhook(SECRET, r.headers, r.body, { now: at }).ok).toBe(true);
      expect(() => {
        const real = Date.now;
        Date.now = () => at;
        try {
          wh.verify(Buffer.from(r.body), r.headers);
        } finally {
          Date.now = real;
        }
      }).not.toThrow();
    }
  });

  it('signs with every secret of a rotation, new first; a receiver holding either one accepts', async () => {
    const { transport, seen } = recorder();
    const signed = withSigning(transport, { signingSecret: [NEW_SECRET, SECRET], clock: new FakeClock(TS * 1000) });
    await signed.send(request('msg_r'));
    const r = seen[0] as TransportRequest;
    const [fromNew, fromOld] = String(r.headers['webhook-signature']).split(' ');
    expect(fromNew).toBe(signPayload(NEW_SECRET, 'msg_r', TS, r.body));
    expect(fromOld).toBe(signPayload(SECRET, 'msg_r', TS, r.body));
    for (const secret of [SECRET, NEW_SECRET]) {
      expect(verifyWebhook(secret, r.headers, r.body, { now: TS * 1000 }).ok).toBe(true);
      const real = Date.now;
      Date.now = () => TS * 1000;
      try {
        expect(() => new Webhook(secret).verify(Buffer.from(r.body), r.headers)).not.toThrow();
      } finally {
        Date.now = real;
      }
    }
    expect(verifyWebhook(OTHER_SECRET, r.headers, r.body, { now: TS * 1000 })).toEqual({ ok: false, reason: 'signature-mismatch' });
  });

  it('asks a resolver for the secrets of each request URL, at every attempt (a secret per endpoint)', async () => {
    const { transport, seen } = recorder();
    const asked: string[] = [];
    const secretFor: Record<string, string | string[] | undefined> = { 'http://a.test/': SECRET, 'http://b.test/': [NEW_SECRET, SECRET], 'http://c.test/': undefined };
    const signed = withSigning(transport, {
      signingSecret: async (url) => (asked.push(url), secretFor[url]),
      clock: new FakeClock(TS * 1000),
    });
    for (const url of ['http://a.test/', 'http://b.test/', 'http://c.test/', 'http://a.test/']) await signed.send({ ...request('msg_x'), url });
    expect(asked).toEqual(['http://a.test/', 'http://b.test/', 'http://c.test/', 'http://a.test/']);
    const at = { now: TS * 1000 };
    expect(verifyWebhook(SECRET, seen[0]?.headers ?? {}, seen[0]?.body ?? '', at).ok).toBe(true);
    expect(verifyWebhook(NEW_SECRET, seen[0]?.headers ?? {}, seen[0]?.body ?? '', at).ok).toBe(false);
    expect(String(seen[1]?.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifyWebhook(NEW_SECRET, seen[1]?.headers ?? {}, seen[1]?.body ?? '', at).ok).toBe(true);
    expect(seen[2]?.headers['webhook-signature']).toBeUndefined();
    expect(seen[2]?.headers['webhook-timestamp']).toBe(String(TS));
  });

  it('fails with ERR_SIGNING and sends nothing when the resolver throws or returns what is not a secret, never quoting it', async () => {
    const { transport, seen } = recorder();
    const down = new Error('secret store unavailable');
    const answers: unknown[] = [down, 'whsec_c2hvcnQ=', [SECRET, 'not-a-secret'], 42];
    const signed = withSigning(transport, {
      signingSecret: () => {
        const next = answers.shift();
        if (next instanceof Error) throw next;
        return next as string;
      },
      clock: new FakeClock(TS * 1000),
    });
    // What the function threw is the cause, not part of the message (a secret store's errors may quote credentials).
    await expect(signed.send(request('msg_y'))).rejects.toMatchObject({ code: 'ERR_SIGNING', cause: down, message: expect.not.stringContaining('unavailable') });
    await expect(signed.send(request('msg_y'))).rejects.toMatchObject({ code: 'ERR_SIGNING', message: expect.stringMatching(/no valid secret for this URL: .*5 bytes/) });
    const mixed = await signed.send(request('msg_y')).catch((error: unknown) => error as Error);
    expect(mixed).toMatchObject({ code: 'ERR_SIGNING', message: expect.stringContaining('signingSecret[1]') });
    expect((mixed as Error).message).not.toContain('not-a-secret');
    await expect(signed.send(request('msg_y'))).rejects.toMatchObject({ code: 'ERR_SIGNING', message: expect.stringContaining('got number') });
    expect(seen).toHaveLength(0);
  });

  it('blanks the secrets it signed with out of the answer, also those a resolver picked', async () => {
    const echo: Transport = {
      send: async () => ({ status: 400, headers: {}, bodyExcerpt: `you used ${NEW_SECRET} and ${SECRET.slice(6)}` }),
    };
    for (const signingSecret of [[NEW_SECRET, SECRET], () => [NEW_SECRET, SECRET]]) {
      const response = await withSigning(echo, { signingSecret, clock: new FakeClock(TS * 1000) }).send(request('msg_z'));
      expect(response.bodyExcerpt).toBe('you used [redacted] and [redacted]');
    }
  });

  it('sets only the timestamp without a secret, and refuses a request without webhook-id', async () => {
    const { transport, seen } = recorder();
    const signed = withSigning(transport, { clock: new FakeClock(5_000) });
    await signed.send(request('msg_b'));
    expect(seen[0]?.headers['webhook-timestamp']).toBe('5');
    expect(seen[0]?.headers['webhook-signature']).toBeUndefined();
    await expect(signed.send(request())).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
    expect(seen).toHaveLength(1);
  });

  it('passes close() through only when the inner transport has one', async () => {
    let closed = 0;
    const { transport } = recorder();
    expect(withSigning(transport, { clock: new FakeClock() }).close).toBeUndefined();
    await withSigning({ ...transport, close: () => (closed++, Promise.resolve()) }, { clock: new FakeClock() }).close?.();
    expect(closed).toBe(1);
  });
});

/** `[<hole>, secret]`: a sparse array, as `[, secret]` or `new Array(2)` make. */
function holeThen(secret: string): string[] {
  const list = new Array<string>(2);
  list[1] = secret;
  return list;
}

describe('verifyWebhook with several secrets (a receiver rotating its secret)', () => {
  const headers = { 'webhook-id': ID, 'webhook-timestamp': String(TS), 'webhook-signature': SIGNATURE };

  it('accepts a signature made with any of them, and only those', () => {
    expect(verifyWebhook([NEW_SECRET, SECRET], headers, BODY, { now: TS * 1000 })).toEqual({ ok: true, id: ID, timestamp: TS });
    expect(verifyWebhook([SECRET], headers, BODY, { now: TS * 1000 }).ok).toBe(true);
    expect(verifyWebhook([NEW_SECRET, OTHER_SECRET], headers, BODY, { now: TS * 1000 })).toEqual({ ok: false, reason: 'signature-mismatch' });
  });

  it('rejects an empty list, a malformed secret, and more than ten, without quoting any; a repeated one counts once', () => {
    expect(verifyWebhook([SECRET, SECRET], headers, BODY, { now: TS * 1000 }).ok).toBe(true);
    const many = Array.from({ length: 11 }, (_, i) => `whsec_${Buffer.alloc(32, i).toString('base64')}`);
    for (const [secrets, option, message] of [
      [[], 'signingSecret', /list of 0/],
      [[SECRET, undefined as unknown as string], 'signingSecret[1]', /got undefined/],
      [holeThen(SECRET), 'signingSecret[0]', /got undefined/],
      [[SECRET, 'whsec_short'], 'signingSecret[1]', /format/],
      [many, 'signingSecret', /list of 11/],
    ] as const) {
      let error: unknown;
      try {
        verifyWebhook(secrets, headers, BODY, { now: TS * 1000 });
      } catch (caught) {
        error = caught;
      }
      expect(error).toMatchObject({ code: 'ERR_INVALID_OPTION', option });
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain(SECRET.slice(6));
    }
  });
});

describe('asymmetric signatures (v1a, ed25519)', () => {
  // The standard-webhooks Go library's test vector (libraries/go/webhook_asymmetric_test.go,
  // TestAsymmetricWebhookSign): a 32-byte seed, the spec's id, timestamp and body.
  const GO_SEED = 'VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=';
  const GO_SIGNATURE = 'v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==';
  const SEED_KEY = `whsk_${GO_SEED}`;
  const PUBLIC_KEY = signingPublicKey(SEED_KEY);
  const FULL_KEY = `whsk_${Buffer.concat([Buffer.from(GO_SEED, 'base64'), Buffer.from(PUBLIC_KEY.slice(5), 'base64')]).toString('base64')}`;
  const now = TS * 1000;
  const signed = { 'webhook-id': ID, 'webhook-timestamp': String(TS), 'webhook-signature': GO_SIGNATURE };

  it('reproduces the standard-webhooks vector from the seed and from the 64-byte key alike', () => {
    expect(signPayload(SEED_KEY, ID, TS, BODY)).toBe(GO_SIGNATURE);
    expect(signPayload(FULL_KEY, ID, TS, Buffer.from(BODY))).toBe(GO_SIGNATURE);
  });

  it('node:crypto verifies the signature with the whpk_ key on its own', () => {
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(PUBLIC_KEY.slice(5), 'base64').toString('base64url') }, format: 'jwk' });
    const signature = Buffer.from(GO_SIGNATURE.slice('v1a,'.length), 'base64');
    expect(verify(null, Buffer.from(`${ID}.${TS}.${BODY}`), publicKey, signature)).toBe(true);
  });

  it('verifyWebhook accepts it with the whpk_ public key, or the whsk_ key it comes from', () => {
    for (const key of [PUBLIC_KEY, SEED_KEY, FULL_KEY]) expect(verifyWebhook(key, signed, BODY, { now })).toEqual({ ok: true, id: ID, timestamp: TS });
    expect(verifyWebhook(PUBLIC_KEY, new Headers(signed), new TextEncoder().encode(BODY), { now }).ok).toBe(true);
  });

  it('rejects a changed body, id or timestamp, and another key pair', () => {
    const forever = { now, toleranceSeconds: Number.POSITIVE_INFINITY };
    expect(verifyWebhook(PUBLIC_KEY, signed, `${BODY} `, forever)).toEqual({ ok: false, reason: 'signature-mismatch' });
    expect(verifyWebhook(PUBLIC_KEY, { ...signed, 'webhook-id': `${ID}x` }, BODY, forever)).toEqual({ ok: false, reason: 'signature-mismatch' });
    expect(verifyWebhook(PUBLIC_KEY, { ...signed, 'webhook-timestamp': String(TS + 1) }, BODY, forever)).toEqual({ ok: false, reason: 'signature-mismatch' });
    expect(verifyWebhook(generateSigningKeyPair().publicKey, signed, BODY, forever)).toEqual({ ok: false, reason: 'signature-mismatch' });
  });

  it('checks each entry only against keys of its kind', () => {
    const ed25519Bytes = GO_SIGNATURE.slice('v1a,'.length);
    const hmacBytes = SIGNATURE.slice('v1,'.length);
    // A v1a signature is not an HMAC, a v1 one not an ed25519 signature, whatever the label says.
    expect(verifyWebhook(SECRET, signed, BODY, { now }).ok).toBe(false);
    expect(verifyWebhook(PUBLIC_KEY, headers(SIGNATURE), BODY, { now }).ok).toBe(false);
    expect(verifyWebhook(PUBLIC_KEY, headers(`v1,${ed25519Bytes}`), BODY, { now }).ok).toBe(false);
    expect(verifyWebhook(SECRET, headers(`v1a,${hmacBytes}`), BODY, { now }).ok).toBe(false);
    // Holding both kinds, either entry is enough.
    expect(verifyWebhook([SECRET, PUBLIC_KEY], headers(SIGNATURE), BODY, { now }).ok).toBe(true);
    expect(verifyWebhook([SECRET, PUBLIC_KEY], signed, BODY, { now }).ok).toBe(true);
  });

  it('accepts only the canonical base64 text of a v1a signature', () => {
    for (const signature of [`${GO_SIGNATURE}!!`, GO_SIGNATURE.replace(/==$/, ''), GO_SIGNATURE.replace('/', '*/'), GO_SIGNATURE.replace('v1a,', 'v1a, ')]) {
      expect(verifyWebhook(PUBLIC_KEY, headers(signature), BODY, { now })).toEqual({ ok: false, reason: 'signature-mismatch' });
    }
  });

  it('checks at most ten v1a entries of one request', () => {
    const bogus = (n: number): string[] => Array.from({ length: n }, (_, i) => `v1a,${Buffer.alloc(64, i).toString('base64')}`);
    expect(verifyWebhook(PUBLIC_KEY, headers([...bogus(9), GO_SIGNATURE].join(' ')), BODY, { now }).ok).toBe(true);
    expect(verifyWebhook(PUBLIC_KEY, headers([...bogus(10), GO_SIGNATURE].join(' ')), BODY, { now }).ok).toBe(false);
    // v1 entries and v1a entries of another length are not ed25519 signatures: they do not count.
    expect(verifyWebhook(PUBLIC_KEY, headers(['v1,AAAA', 'v1a,AAAA', ...bogus(9), GO_SIGNATURE].join(' ')), BODY, { now }).ok).toBe(true);
  });

  it('throws ERR_INVALID_OPTION for a malformed whpk_ or whsk_ key, never quoting it', () => {
    const short = `whpk_${Buffer.alloc(16, 3).toString('base64')}`;
    const cases: [string | string[], string, RegExp][] = [
      [short, 'signingSecret', /decodes to 16 bytes/],
      [[SECRET, short], 'signingSecret[1]', /decodes to 16 bytes/],
      [`whsk_${Buffer.alloc(40, 3).toString('base64')}`, 'signingSecret', /decodes to 40 bytes/],
      ['whpk-typo', 'signingSecret', /expected a 'whsec_' secret, an ed25519 'whpk_' public key or a 'whsk_' secret key/],
    ];
    for (const [key, option, message] of cases) {
      let error: unknown;
      try {
        verifyWebhook(key, signed, BODY, { now });
      } catch (caught) {
        error = caught;
      }
      expect(error).toMatchObject({ code: 'ERR_INVALID_OPTION', option });
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('AwMDAwMD');
    }
  });

  it('signPayload refuses a whpk_ key: it cannot sign', () => {
    expect(() => signPayload(PUBLIC_KEY, ID, TS, BODY)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/'whpk_' public key cannot sign/) }));
    expect(() => signPayload(PUBLIC_KEY, ID, TS, BODY)).not.toThrow(PUBLIC_KEY.slice(5, 20));
  });

  function headers(signature: string): Record<string, string> {
    return { ...signed, 'webhook-signature': signature };
  }
});

describe('withSigning with whsk_ keys', () => {
  const clock = new FakeClock(TS * 1000);
  const at = { now: TS * 1000 };
  const request: TransportRequest = { url: 'http://x.test/hook', headers: { 'webhook-id': 'msg_k' }, body: Buffer.from('{"a":1}'), timeoutMs: 1_000 };
  function recorder(): { transport: Transport; seen: TransportRequest[] } {
    const seen: TransportRequest[] = [];
    return { seen, transport: { send: (r) => (seen.push(r), Promise.resolve({ status: 200, headers: {}, bodyExcerpt: '' })) } };
  }

  it('signs v1a with a whsk_ key; a rotation mixing kinds carries one entry per secret, in order', async () => {
    const pair = generateSigningKeyPair();
    const { transport, seen } = recorder();
    await withSigning(transport, { signingSecret: [pair.secretKey], clock }).send(request);
    await withSigning(transport, { signingSecret: [pair.secretKey, SECRET], clock }).send(request);
    expect(String(seen[0]?.headers['webhook-signature'])).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
    const [first, second] = String(seen[1]?.headers['webhook-signature']).split(' ');
    expect(first).toBe(signPayload(pair.secretKey, 'msg_k', TS, request.body));
    expect(second).toBe(signPayload(SECRET, 'msg_k', TS, request.body));
    for (const key of [pair.publicKey, SECRET]) expect(verifyWebhook(key, seen[1]?.headers ?? {}, request.body, at).ok).toBe(true);
    expect(verifyWebhook([generateSigningKeyPair().publicKey, OTHER_SECRET], seen[1]?.headers ?? {}, request.body, at).ok).toBe(false);
    // A verifier that knows only v1 (the standardwebhooks package) skips the v1a entry and checks the other.
    const real = Date.now;
    Date.now = () => TS * 1000;
    try {
      expect(() => new Webhook(SECRET).verify(Buffer.from(request.body), seen[1]?.headers ?? {})).not.toThrow();
      expect(() => new Webhook(SECRET).verify(Buffer.from(request.body), seen[0]?.headers ?? {})).toThrow();
    } finally {
      Date.now = real;
    }
  });

  it('takes whsk_ keys from a resolver, and fails the attempt with ERR_SIGNING for a whpk_ one', async () => {
    const pair = generateSigningKeyPair();
    const answers = [pair.secretKey, pair.publicKey];
    const { transport, seen } = recorder();
    const signed = withSigning(transport, { signingSecret: () => answers.shift(), clock });
    await signed.send(request);
    expect(verifyWebhook(pair.publicKey, seen[0]?.headers ?? {}, request.body, at).ok).toBe(true);
    const error = (await signed.send(request).catch((caught: unknown) => caught)) as Error;
    expect(error).toMatchObject({ code: 'ERR_SIGNING', message: expect.stringContaining("'whpk_' public key cannot sign") });
    expect(error.message).not.toContain(pair.publicKey.slice(5, 20));
    expect(seen).toHaveLength(1);
  });

  it('blanks the whsk_ key, its base64 and the v1a signature out of the answer', async () => {
    // Svix's test key (see ed25519-keys.test.ts): its base64 holds '/', which PHP's json_encode escapes.
    const secretKey = 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==';
    const echo: Transport = {
      send: async (r) => ({
        status: 400,
        headers: {},
        bodyExcerpt: `key ${secretKey}, base64 ${secretKey.slice(5)}, escaped ${secretKey.slice(5).replaceAll('/', '\\/')}, got ${String(r.headers['webhook-signature'])}`,
      }),
    };
    for (const signingSecret of [[secretKey], () => secretKey]) {
      const response = await withSigning(echo, { signingSecret, clock }).send(request);
      expect(response.bodyExcerpt).toBe('key [redacted], base64 [redacted], escaped [redacted], got [redacted]');
    }
  });
});
