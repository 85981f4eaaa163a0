import { describe, expect, it } from 'vitest';
import { FakeClock, systemClock } from '../src/clock.js';
import { InvalidOptionError } from '../src/errors.js';
import { SENDER_RETRY_DEFAULTS, normalizeSenderOptions } from '../src/options.js';
import { generateSigningKeyPair } from '../src/signing/ed25519-keys.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

function rejection(input: unknown, config?: Parameters<typeof normalizeSenderOptions>[1]): InvalidOptionError {
  try {
    normalizeSenderOptions(input, config);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionError);
    return error as InvalidOptionError;
  }
  throw new Error('expected normalizeSenderOptions to throw');
}

describe('normalizeSenderOptions', () => {
  it('fills in every default', () => {
    const o = normalizeSenderOptions(undefined);
    expect(o).toMatchObject({
      url: undefined,
      signingSecret: undefined,
      timeoutMs: 15_000,
      maxBodyBytes: 1_048_576,
      headers: {},
      retry: SENDER_RETRY_DEFAULTS,
      transport: undefined,
      retryOnDnsFailure: false,
      clock: systemClock,
    });
    expect(o.random).toBe(Math.random);
  });

  it('keeps valid values and lower-cases default headers', () => {
    const clock = new FakeClock();
    const o = normalizeSenderOptions({
      url: 'https://example.test/hook',
      signingSecret: SECRET,
      timeoutMs: 200,
      headers: { 'X-App': 'demo' },
      retry: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: Infinity, maxAgeMs: 1_000 },
      clock,
    });
    expect(o.headers).toEqual({ 'x-app': 'demo' });
    expect(o.retry).toEqual({ baseDelayMs: 1, maxDelayMs: 5, maxAttempts: Infinity, maxAgeMs: 1_000, maxRetryAfterMs: 10_000 });
    expect(o.clock).toBe(clock);
  });

  it('keeps a signingSecret function as it is, and a list as a frozen copy', () => {
    const resolver = (url: string): string | undefined => (url.startsWith('https://') ? SECRET : undefined);
    expect(normalizeSenderOptions({ signingSecret: resolver }).signingSecret).toBe(resolver);
    const list = [SECRET];
    const normalized = normalizeSenderOptions({ signingSecret: list }).signingSecret;
    list.push('whsec_changed-after-open');
    expect(normalized).toEqual([SECRET]);
    expect(Object.isFrozen(normalized)).toBe(true);
    expect(rejection({ signingSecret: 42 }).option).toBe('signingSecret');
    // The old and the new secret of a finished rotation may be the same value: it signs once.
    expect(normalizeSenderOptions({ signingSecret: [SECRET, SECRET] }).signingSecret).toEqual([SECRET]);
  });

  it('takes ed25519 whsk_ keys, alone or in a list with whsec_ secrets', () => {
    const { secretKey } = generateSigningKeyPair();
    expect(normalizeSenderOptions({ signingSecret: secretKey }).signingSecret).toEqual([secretKey]);
    expect(normalizeSenderOptions({ signingSecret: [secretKey, SECRET] }).signingSecret).toEqual([secretKey, SECRET]);
  });

  it('takes other retry defaults and extra keys for an extended options type', () => {
    const defaults = { baseDelayMs: 1_000, maxDelayMs: 600_000, maxAttempts: Infinity, maxAgeMs: 259_200_000, maxRetryAfterMs: 3_600_000 };
    const o = normalizeSenderOptions({ dir: '.outbox' }, { retryDefaults: defaults, extraKeys: ['dir'] });
    expect(o.retry).toEqual(defaults);
  });

  const cases: [string, unknown, string, RegExp][] = [
    ['a non-object', 42, 'options', /expected an object, got 42/],
    ['an unknown key', { timeout: 5 }, 'timeout', /unknown option/],
    ['an outbox key on the sender', { dir: '.outbox' }, 'dir', /unknown option/],
    ['an unknown retry key (maxElapsedMs)', { retry: { maxElapsedMs: 5 } }, 'retry.maxElapsedMs', /unknown option/],
    ['a negative timeout', { timeoutMs: -5 }, 'timeoutMs', /got -5/],
    ['a fractional timeout', { timeoutMs: 1.5 }, 'timeoutMs', /got 1\.5/],
    ['a string timeout', { timeoutMs: '100' }, 'timeoutMs', /got "100"/],
    ['a zero maxBodyBytes', { maxBodyBytes: 0 }, 'maxBodyBytes', /got 0/],
    ['maxAttempts 0', { retry: { maxAttempts: 0 } }, 'retry.maxAttempts', /got 0/],
    ['maxDelayMs below baseDelayMs', { retry: { baseDelayMs: 10, maxDelayMs: 5 } }, 'retry.maxDelayMs', /at least/],
    ['a retry array', { retry: [] }, 'retry', /got an array/],
    ['a ftp url', { url: 'ftp://x.test' }, 'url', /http: or https:/],
    ['a malformed url', { url: 'not a url' }, 'url', /not a valid absolute URL/],
    ["got's Unix socket url", { url: 'http://unix:/var/run/app.sock:/hook' }, 'url', /Unix domain socket/],
    ['a numeric header', { headers: { 'x-n': 5 } }, 'headers.x-n', /must be a string/],
    ['a CRLF header', { headers: { 'x-a': 'a\r\nb' } }, 'headers.x-a', /CR or LF/],
    ['a header value above Latin-1', { headers: { 'x-a': '\u20ac' } }, 'headers.x-a', /above U\+00FF/],
    ['a reserved header', { headers: { 'webhook-signature': 'x' } }, 'headers.webhook-signature', /reserved/],
    ['a transport without send', { transport: {} }, 'transport', /send/],
    ['a clock without setTimer', { clock: { now: () => 0 } }, 'clock', /setTimer/],
    ['a random that is a number', { random: 0.5 }, 'random', /got 0\.5/],
    ['a boolean as string', { retryOnDnsFailure: 'yes' }, 'retryOnDnsFailure', /got "yes"/],
    ['a secret without prefix', { signingSecret: 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, 'signingSecret', /whsec_/],
    ['a secret that is too short', { signingSecret: 'whsec_c2hvcnQ=' }, 'signingSecret', /5 bytes/],
    ['a secret with bad base64', { signingSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!' }, 'signingSecret', /format/],
    ['an empty list of secrets', { signingSecret: [] }, 'signingSecret', /list of 0/],
    ['a bad secret in a rotation', { signingSecret: [SECRET, 'whsec_c2hvcnQ='] }, 'signingSecret[1]', /5 bytes/],
    ['a hole in a list of secrets', { signingSecret: Object.assign(new Array<string>(2), { 1: SECRET }) }, 'signingSecret[0]', /got undefined/],
    ['a public key as signing secret', { signingSecret: `whpk_${Buffer.alloc(32, 5).toString('base64')}` }, 'signingSecret', /'whpk_' public key cannot sign/],
    ['an ed25519 key of a wrong length in a rotation', { signingSecret: [SECRET, `whsk_${Buffer.alloc(40, 5).toString('base64')}`] }, 'signingSecret[1]', /decodes to 40 bytes/],
  ];
  it.each(cases)('rejects %s, naming the option and the bad value', (_name, input, option, message) => {
    const error = rejection(input);
    expect(error.code).toBe('ERR_INVALID_OPTION');
    expect(error.option).toBe(option);
    expect(error.message).toMatch(message);
    expect(error.message).toContain(`\`${option}\``);
  });


  it('never quotes a secret or a header value', () => {
    const badSecret = 'whsec_c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLWxvbmctZm9yLXRoZS1zcGVjLWxpbWl0LW9mLTY0LWJ5dGVzLXJlYWxseQ==';
    expect(rejection({ signingSecret: badSecret }).message).not.toContain(badSecret.slice(6, 20));
    expect(rejection({ headers: { authorization: 'Bearer topsecret\n' } }).message).not.toContain('topsecret');
  });
});
