import { createPublicKey, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ed25519KeyProblem, ed25519PrivateKey, generateSigningKeyPair, signingPublicKey } from '../../src/signing/ed25519-keys.js';

// From svix-webhooks (server/svix-server/src/core/types/mod.rs, its endpoint-secret tests): a 64-byte
// `whsk_` key (seed, then public key), its `whpk_`, and keys Svix refuses: cut short (not base64 any
// more) and one whose public half was overwritten.
const SVIX_SECRET_KEY = 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==';
const SVIX_PUBLIC_KEY = 'whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=';
const SVIX_CUT_SHORT = 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kv';
const SVIX_WRONG_HALF = 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlaaaaaaaaaaAJ6p9lMicMFs6Kvg==';

const bytesOf = (key: string): Buffer => Buffer.from(key.slice(5), 'base64');
/** The public key of a `whpk_` text, imported by node:crypto directly (not through the code under test). */
const nodePublicKey = (whpk: string) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytesOf(whpk).toString('base64url') }, format: 'jwk' });

describe('generateSigningKeyPair', () => {
  it('makes a 64-byte whsk_ (seed, then public key) and the matching 32-byte whpk_', () => {
    const { secretKey, publicKey } = generateSigningKeyPair();
    expect(secretKey).toMatch(/^whsk_[A-Za-z0-9+/]{86}==$/);
    expect(publicKey).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    expect(bytesOf(secretKey).subarray(32)).toEqual(bytesOf(publicKey));
    expect(signingPublicKey(secretKey)).toBe(publicKey);
    expect(generateSigningKeyPair().secretKey).not.toBe(secretKey);
  });

  it('signs what node:crypto verifies with the public key alone', () => {
    const { secretKey, publicKey } = generateSigningKeyPair();
    const signature = sign(null, Buffer.from('msg_1.1700000000.{}'), ed25519PrivateKey(secretKey));
    expect(verify(null, Buffer.from('msg_1.1700000000.{}'), nodePublicKey(publicKey), signature)).toBe(true);
    expect(verify(null, Buffer.from('msg_1.1700000000.{ }'), nodePublicKey(publicKey), signature)).toBe(false);
  });
});

describe('whsk_ keys', () => {
  it('reads the 64-byte layout Svix writes, and the 32-byte seed alone, as the same key', () => {
    expect(signingPublicKey(SVIX_SECRET_KEY)).toBe(SVIX_PUBLIC_KEY);
    const seedOnly = `whsk_${bytesOf(SVIX_SECRET_KEY).subarray(0, 32).toString('base64')}`;
    expect(signingPublicKey(seedOnly)).toBe(SVIX_PUBLIC_KEY);
    expect(ed25519KeyProblem(SVIX_SECRET_KEY)).toBeUndefined();
    expect(ed25519KeyProblem(seedOnly)).toBeUndefined();
    expect(ed25519KeyProblem(SVIX_PUBLIC_KEY)).toBeUndefined();
  });

  it('is decoded once: the same text gives the same KeyObject', () => {
    const { secretKey } = generateSigningKeyPair();
    expect(ed25519PrivateKey(secretKey)).toBe(ed25519PrivateKey(secretKey));
  });

  it('refuses what Svix refuses, and other lengths, without quoting the key', () => {
    const cases: [string, RegExp][] = [
      [SVIX_CUT_SHORT, /not in that format/],
      [SVIX_WRONG_HALF, /last 32 bytes are not the public key of its first 32/],
      [`whsk_${Buffer.alloc(48, 1).toString('base64')}`, /decodes to 48 bytes/],
      [`whsk_${Buffer.alloc(31, 1).toString('base64')}`, /decodes to 31 bytes/],
      [`whpk_${Buffer.alloc(64, 1).toString('base64')}`, /32-byte ed25519 public key \(it decodes to 64 bytes\)/],
      ['whpk_not base64!', /not in that format/],
    ];
    for (const [key, message] of cases) {
      const problem = ed25519KeyProblem(key);
      expect(problem).toMatch(message);
      expect(problem).not.toContain(key.slice(5, 15));
    }
  });
});

describe('signingPublicKey', () => {
  it('throws ERR_INVALID_OPTION for what is not a whsk_ key, never quoting it', () => {
    for (const value of [SVIX_PUBLIC_KEY, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', SVIX_WRONG_HALF, undefined]) {
      let error: unknown;
      try {
        signingPublicKey(value as string);
      } catch (caught) {
        error = caught;
      }
      expect(error).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'secretKey' });
      if (value !== undefined) expect((error as Error).message).not.toContain(value.slice(5, 15));
    }
  });
});

describe('whpk_ keys that are not usable public keys', () => {
  // The eight encodings of the points of small order (libsodium refuses the same): with such a key, a
  // signature of the identity (and, for order 2-8, a guess in 8) verifies for any message.
  it.each([
    ['identity', '0100000000000000000000000000000000000000000000000000000000000000'],
    ['order 2', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
    ['order 4 (all zero)', '0000000000000000000000000000000000000000000000000000000000000000'],
    ['order 4', '0000000000000000000000000000000000000000000000000000000000000080'],
    ['order 8', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'],
    ['order 8', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85'],
    ['order 8', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'],
    ['order 8', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa'],
  ])('refuses the %s point', (_name, hex) => {
    expect(ed25519KeyProblem(`whpk_${Buffer.from(hex, 'hex').toString('base64')}`)).toMatch(/small order/);
  });

  it('refuses bytes off the curve and non-canonical encodings, and takes every generated key', () => {
    // y = 2 has no x on the curve; y = P (0xed ff..ff 7f) encodes 0 non-canonically; x = 0 with the sign bit set.
    const off = Buffer.alloc(32);
    off[0] = 2;
    expect(ed25519KeyProblem(`whpk_${off.toString('base64')}`)).toMatch(/not a point of the curve/);
    const nonCanonical = Buffer.from(`ed${'ff'.repeat(30)}7f`, 'hex');
    expect(ed25519KeyProblem(`whpk_${nonCanonical.toString('base64')}`)).toMatch(/canonical/);
    const signedOne = Buffer.from(`01${'00'.repeat(30)}80`, 'hex');
    expect(ed25519KeyProblem(`whpk_${signedOne.toString('base64')}`)).toMatch(/canonical/);
    for (let i = 0; i < 50; i++) expect(ed25519KeyProblem(generateSigningKeyPair().publicKey)).toBeUndefined();
  });
});
