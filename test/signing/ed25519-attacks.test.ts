import { createPublicKey, sign as edSign, verify as edVerify } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, signingPublicKey } from '../../src/signing/ed25519-keys.js';
import { ed25519PrivateKey } from '../../src/signing/ed25519-keys.js';
import { signPayload, verifyWebhook } from '../../src/signing/sign.js';
import { signingSecretProblem } from '../../src/options.js';

const TS = 1_700_000_000;
const now = TS * 1000;
const BODY = '{"type":"invoice.paid","amount":100000}';
const headers = (id: string, signature: string) => ({ 'webhook-id': id, 'webhook-timestamp': String(TS), 'webhook-signature': signature });

// Encodings of small-order points of edwards25519 (the identity, and the point of order 4 with y = 0).
const IDENTITY = Buffer.from(`01${'00'.repeat(31)}`, 'hex');
const ALL_ZERO = Buffer.alloc(32);
const whpk = (bytes: Buffer) => `whpk_${bytes.toString('base64')}`;

describe('small-order / invalid whpk_ public keys', () => {
  it('refuses the identity point as a whpk_ key: with it, anyone forges a v1a signature for any body', () => {
    const key = whpk(IDENTITY);
    // R = identity, S = 0: [S]B = R + [k]A holds for every message when A is the identity.
    const forged = `v1a,${Buffer.concat([IDENTITY, Buffer.alloc(32)]).toString('base64')}`;
    let result: unknown;
    try {
      result = verifyWebhook(key, headers('msg_attacker', forged), BODY, { now });
    } catch (error) {
      result = (error as { code?: string }).code; // refused as a key: what we want
    }
    expect(result).toBe('ERR_INVALID_OPTION');
  });

  it('refuses an all-zero whpk_ (a placeholder key, a point of order 4): a forgery passes for 1 id in 4', () => {
    const key = whpk(ALL_ZERO);
    const forged = `v1a,${Buffer.concat([IDENTITY, Buffer.alloc(32)]).toString('base64')}`;
    let accepted: string | undefined;
    try {
      for (let i = 0; i < 64 && accepted === undefined; i++) {
        if (verifyWebhook(key, headers(`msg_${i}`, forged), BODY, { now }).ok) accepted = `msg_${i}`;
      }
    } catch (error) {
      accepted = (error as { code?: string }).code;
    }
    expect(accepted).toBe('ERR_INVALID_OPTION');
  });

  it('refuses a whpk_ that is not a point of the curve (a damaged key) when it is given, not at every request', () => {
    // y = 2 does not decode to a curve point (x^2 would be a non-square); nothing can ever verify with it.
    const offCurve = Buffer.alloc(32);
    offCurve[0] = 2;
    expect(onCurve(offCurve)).toBe(false);
    expect(() => verifyWebhook(whpk(offCurve), headers('msg_1', 'v1,AAAA'), BODY, { now })).toThrow(/whpk_/);
  });
});

/** Whether 32 bytes decode to a point of edwards25519 (RFC 8032 5.1.3). */
function onCurve(bytes: Buffer): boolean {
  const p = 2n ** 255n - 19n;
  const mod = (a: bigint) => ((a % p) + p) % p;
  const pow = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    b = mod(b);
    while (e > 0n) {
      if (e & 1n) r = mod(r * b);
      b = mod(b * b);
      e >>= 1n;
    }
    return r;
  };
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? (bytes[i] as number) & 0x7f : (bytes[i] as number));
  if (y >= p) return false;
  const d = mod(-121665n * pow(121666n, p - 2n));
  const u = mod(y * y - 1n);
  const v = mod(d * y * y + 1n);
  const x2 = mod(u * pow(v, p - 2n));
  return x2 === 0n || pow(x2, (p - 1n) / 2n) === 1n;
}

describe('attacks that fail', () => {
  const pair = generateSigningKeyPair();

  it('rejects the malleable S + L form of a valid v1a signature', () => {
    const signature = Buffer.from(signPayload(pair.secretKey, 'msg_1', TS, BODY).slice(4), 'base64');
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i] as number);
    let t = s + L;
    const high = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) {
      high[i] = Number(t & 0xffn);
      t >>= 8n;
    }
    expect(t).toBe(0n);
    const malleated = `v1a,${Buffer.concat([signature.subarray(0, 32), high]).toString('base64')}`;
    expect(verifyWebhook(pair.publicKey, headers('msg_1', malleated), BODY, { now }).ok).toBe(false);
    expect(verifyWebhook(pair.publicKey, headers('msg_1', `v1a,${signature.toString('base64')}`), BODY, { now }).ok).toBe(true);
  });

  it('a v1a signature is not accepted as v1 by an HMAC key made of the same bytes, nor the reverse', () => {
    const pub = Buffer.from(pair.publicKey.slice(5), 'base64');
    const hmacFromPublic = `whsec_${pub.toString('base64')}`; // a receiver misusing the public key as an HMAC secret
    const v1 = signPayload(hmacFromPublic, 'msg_1', TS, BODY);
    // Anyone knows the public key, so anyone can make that v1 entry: a whpk_ list must not take it.
    expect(verifyWebhook(pair.publicKey, headers('msg_1', v1), BODY, { now }).ok).toBe(false);
    expect(verifyWebhook(pair.publicKey, headers('msg_1', v1.replace('v1,', 'v1a,')), BODY, { now }).ok).toBe(false);
  });

  it('refuses a 64-byte whsk_ whose halves do not match, and does not remember it', () => {
    const other = generateSigningKeyPair();
    const mixed = `whsk_${Buffer.concat([Buffer.from(pair.secretKey.slice(5), 'base64').subarray(0, 32), Buffer.from(other.publicKey.slice(5), 'base64')]).toString('base64')}`;
    expect(signingSecretProblem(mixed)).toMatch(/damaged or mixed-up/);
    expect(signingSecretProblem(mixed)).toMatch(/damaged or mixed-up/); // not cached as valid
    expect(() => verifyWebhook(mixed, headers('m', 'v1,AAAA'), BODY, { now })).toThrow(/damaged/);
  });

  it('keys with whitespace or a newline (env files) are refused, never quoted', () => {
    for (const key of [`${pair.secretKey}\n`, ` ${pair.secretKey}`, `${pair.secretKey}\r\n`, pair.secretKey.replace('whsk_', 'whsk_ ')]) {
      const problem = signingSecretProblem(key);
      expect(problem).toBeDefined();
      expect(problem).not.toContain(pair.secretKey.slice(5, 20));
    }
    expect(() => verifyWebhook(`${pair.publicKey}\n`, headers('m', 'v1,AAAA'), BODY, { now })).toThrow(/not in that format/);
  });

  it('the seed form and the 64-byte form sign alike; verifying never fills the cache with a signing key', () => {
    const seed = `whsk_${Buffer.from(pair.secretKey.slice(5), 'base64').subarray(0, 32).toString('base64')}`;
    expect(signingPublicKey(seed)).toBe(pair.publicKey);
    expect(signPayload(seed, 'm', TS, BODY)).toBe(signPayload(pair.secretKey, 'm', TS, BODY));
    verifyWebhook(pair.publicKey, headers('m', 'v1,AAAA'), BODY, { now });
    expect(() => ed25519PrivateKey(pair.publicKey)).toThrow(/cannot sign/);
  });

  it('interop: v1 made here verifies with the standardwebhooks package, and the reverse (with [whsk_, whsec_])', () => {
    const secret = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
    const wh = new Webhook(secret);
    const ts = Math.floor(Date.now() / 1000);
    const ours = [signPayload(pair.secretKey, 'msg_i', ts, BODY), signPayload(secret, 'msg_i', ts, BODY)].join(' ');
    expect(wh.verify(BODY, { 'webhook-id': 'msg_i', 'webhook-timestamp': String(ts), 'webhook-signature': ours })).toEqual(JSON.parse(BODY));
    const theirs = wh.sign('msg_j', new Date(ts * 1000), BODY);
    expect(verifyWebhook([pair.publicKey, secret], { 'webhook-id': 'msg_j', 'webhook-timestamp': String(ts), 'webhook-signature': theirs }, BODY).ok).toBe(true);
  });

  it('node:crypto agrees with signatures made here over bytes that are not UTF-8', () => {
    const body = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    const sig = Buffer.from(signPayload(pair.secretKey, 'm', TS, body).slice(4), 'base64');
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pair.publicKey.slice(5), 'base64').toString('base64url') }, format: 'jwk' });
    expect(edVerify(null, Buffer.concat([Buffer.from(`m.${TS}.`), body]), pub, sig)).toBe(true);
    expect(verifyWebhook(pair.publicKey, headers('m', `v1a,${sig.toString('base64')}`), body, { now }).ok).toBe(true);
    void edSign;
  });
});
