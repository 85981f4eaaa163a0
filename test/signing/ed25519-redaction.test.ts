import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { generateSigningKeyPair } from '../../src/signing/ed25519-keys.js';
import { MemoryStore } from '../../src/store/memory.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { FakeClock } from '../../src/clock.js';

let receiver: FlakyReceiver | undefined;
let outbox: Outbox | undefined;
afterEach(async () => {
  await outbox?.close({ timeoutMs: 100 });
  await receiver?.close();
  outbox = undefined;
  receiver = undefined;
});

/** Dead-letters one event whose receiver answers 400 with `body`; returns the history's last error. */
async function excerptFor(body: string, signingSecret: string | string[]): Promise<string> {
  receiver = await startFlakyReceiver({ script: [{ status: 400, body }] });
  outbox = await Outbox.open({ store: new MemoryStore(), url: receiver.url, signingSecret, clock: new FakeClock(Date.now()), retry: { maxAttempts: 1 } });
  const dead = new Promise<void>((resolve) => outbox?.once('dead', () => resolve()));
  await outbox.enqueue({ body: 1 });
  await dead;
  const [letter] = await outbox.deadLetters();
  return letter?.history.at(-1)?.error ?? '';
}

// A key whose 64-byte base64 holds '+' or '/', so that the URL-safe and escaped forms differ.
function keyWithSpecials(): string {
  for (;;) {
    const { secretKey } = generateSigningKeyPair();
    if (/[+/]/.test(secretKey.slice(5, 50))) return secretKey;
  }
}

describe('whsk_ redaction in excerpts', () => {
  it('blanks base64url (padded and not), JSON-escaped and a cut-off whsk_', async () => {
    const key = keyWithSpecials();
    const b64 = key.slice(5);
    const url = b64.replaceAll('+', '-').replaceAll('/', '_');
    const error = await excerptFor(`a ${url} b ${url.replace(/=+$/, '')} c ${JSON.stringify(key)} d ${key.slice(0, 40)}`, key);
    expect(error).not.toContain(b64.slice(0, 16));
    expect(error).not.toContain(url.slice(0, 16));
  });

  it('blanks the seed of a 64-byte whsk_ when the receiver echoes the key in the 32-byte seed form (as the Go library holds it)', async () => {
    const key = keyWithSpecials();
    const seedForm = `whsk_${Buffer.from(key.slice(5), 'base64').subarray(0, 32).toString('base64')}`;
    const error = await excerptFor(`{"error":"key ${seedForm} is not allowed here"}`, key);
    // 42 of the seed's 44 base64 characters (252 of its 256 bits) would be enough to sign.
    expect(error).not.toContain(seedForm.slice(5, 47));
  });
});
