import { describe, expect, it, vi } from 'vitest';
import type * as NodeCrypto from 'node:crypto';

// Count ed25519 verifications (node:crypto's verify) made by verifyWebhook.
const calls = vi.hoisted(() => ({ verify: 0, bytesHashed: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof NodeCrypto>();
  return {
    ...actual,
    default: actual,
    verify: (...args: Parameters<typeof actual.verify>) => {
      calls.verify++;
      calls.bytesHashed += (args[1] as Uint8Array).byteLength;
      return actual.verify(...args);
    },
  };
});

const { generateSigningKeyPair } = await import('../../src/signing/ed25519-keys.js');
const { verifyWebhook } = await import('../../src/signing/sign.js');

describe('work an unauthenticated request buys in verifyWebhook', () => {
  it('at most ten ed25519 verifications per request, as documented ("each costs an ed25519 verification")', () => {
    // A receiver in the middle of a rotation holds ten public keys (the most a list may have).
    const keys = Array.from({ length: 10 }, () => generateSigningKeyPair().publicKey);
    const body = 'x'.repeat(1024 * 1024); // a 1 MiB body: each verification hashes all of it
    const bogus = Array.from({ length: 10 }, (_, i) => `v1a,${Buffer.alloc(64, i + 1).toString('base64')}`).join(' ');
    calls.verify = 0;
    calls.bytesHashed = 0;
    const result = verifyWebhook(keys, { 'webhook-id': 'msg_x', 'webhook-timestamp': '1700000000', 'webhook-signature': bogus }, body, { now: 1_700_000_000_000 });
    expect(result.ok).toBe(false);
    // Reported: 100 verifications, 100 MiB hashed for one forged request of 1 MiB.
    expect({ verifications: calls.verify, mibHashed: Math.round(calls.bytesHashed / 2 ** 20) }).toEqual({ verifications: 10, mibHashed: 10 });
  });
});
