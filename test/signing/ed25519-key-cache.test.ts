import { describe, expect, it, vi } from 'vitest';
import type * as NodeCrypto from 'node:crypto';

const calls = vi.hoisted(() => ({ createPrivateKey: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof NodeCrypto>();
  return {
    ...actual,
    default: actual,
    createPrivateKey: (...args: Parameters<typeof actual.createPrivateKey>) => {
      calls.createPrivateKey++;
      return actual.createPrivateKey(...args);
    },
  };
});

const { generateSigningKeyPair } = await import('../../src/signing/ed25519-keys.js');
const { signingKey } = await import('../../src/signing/sign.js');

describe('decoded-key memory', () => {
  it('a resolver with a key per customer (101 customers, sent to in turn) reuses decoded keys', () => {
    const keys = Array.from({ length: 101 }, () => generateSigningKeyPair().secretKey);
    for (const key of keys) signingKey(key); // first round: every key decoded once
    calls.createPrivateKey = 0;
    for (let round = 0; round < 3; round++) for (const key of keys) signingKey(key);
    // FIFO eviction at 100 entries: with 101 keys used in turn, every lookup misses (303 private-key imports
    // of ~0.4 ms each, the cost the memory exists to avoid).
    expect(calls.createPrivateKey).toBeLessThan(keys.length);
  });
});
