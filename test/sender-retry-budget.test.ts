import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { createSender, type Sender } from '../src/sender.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver, type FlakyReceiver } from '../src/testing/flaky-receiver.js';

/** The direct sender's retry budget against a real receiver in trouble: how many requests it gets. */
const FAST = { baseDelayMs: 2, maxDelayMs: 5, maxAttempts: 3 };
let receiver: FlakyReceiver | undefined;
let sender: Sender | undefined;
afterEach(async () => {
  await sender?.close();
  await receiver?.close();
  receiver = undefined;
  sender = undefined;
});

async function outcomes(s: Sender, url: string, count: number): Promise<{ ok: number; codes: string[]; messages: string[] }> {
  const settled = await Promise.allSettled(Array.from({ length: count }, (_, n) => s.send({ url, body: { n } })));
  const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as { code: string; message: string });
  return { ok: count - failed.length, codes: failed.map((e) => e.code), messages: failed.map((e) => e.message) };
}

describe('The sender\'s retry budget', () => {
  it('caps what 200 concurrent sends to a failing receiver add in retries: 1.2x the requests instead of 3x', async () => {
    receiver = await startFlakyReceiver({ script: () => 503 });
    sender = createSender({ retry: FAST, retryBudget: { ratio: 0.2, minPerSecond: 0 } });
    const result = await outcomes(sender, receiver.url, 200);
    expect(result.ok).toBe(0);
    expect(new Set(result.codes)).toEqual(new Set(['ERR_RETRIES_EXHAUSTED']));
    // 200 first attempts and at most 40 retries; every send that found the budget spent says so.
    expect(receiver.requests.length).toBeGreaterThanOrEqual(200);
    expect(receiver.requests.length).toBeLessThanOrEqual(240);
    expect(result.messages.filter((m) => m.includes('retry budget')).length).toBeGreaterThanOrEqual(200 - 40);
  });

  it('without a budget (retryBudget: false) each send retries on its own: 3x', async () => {
    receiver = await startFlakyReceiver({ script: () => 503 });
    sender = createSender({ retry: FAST, retryBudget: false });
    const result = await outcomes(sender, receiver.url, 200);
    expect(result.ok).toBe(0);
    expect(receiver.requests).toHaveLength(600);
  });

  it('by default a trickle of sends keeps every retry: a send failing twice still succeeds', async () => {
    const attempts = new Map<string, number>();
    receiver = await startFlakyReceiver({
      script: (req) => {
        const n = (attempts.get(req.id ?? '') ?? 0) + 1;
        attempts.set(req.id ?? '', n);
        return n <= 2 ? 503 : 200;
      },
    });
    sender = createSender({ retry: FAST });
    // 30 sends, 60 retries: within the default's 10 retries a second over 10 s.
    for (let i = 0; i < 30; i++) expect((await sender.send({ url: receiver.url, body: { i } })).attempts).toBe(3);
    expect(receiver.deliveredIds().size).toBe(30);
  });

  it('refuses a bad retryBudget, and the outbox refuses one at all', async () => {
    for (const [value, option] of [
      [{ ratio: -1 }, 'retryBudget.ratio'],
      [{ minPerSecond: Number.NaN }, 'retryBudget.minPerSecond'],
      [{ ratio: 0.1, per: 1 }, 'retryBudget.per'],
      [true, 'retryBudget'],
    ] as const) {
      expect(() => createSender({ retryBudget: value as never }), JSON.stringify(value)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }) as Error);
    }
    await expect(Outbox.open({ store: new MemoryStore(), retryBudget: { ratio: 0.5 } })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'retryBudget' });
  });
});
