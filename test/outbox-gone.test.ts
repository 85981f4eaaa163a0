import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import type { EndpointGoneEvent } from '../src/delivery/flusher.js';
import { StoreIoError } from '../src/errors.js';
import { Outbox } from '../src/outbox.js';
import type { OutboxOptions } from '../src/options.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../src/testing/flaky-receiver.js';
import { FAST_RETRY, bodyOf, closedAfterEach, newSecret } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';
import { delegatingStore } from './store/delegating-store.js';

/** 410 Gone disables an endpoint (Standard Webhooks): one answer, then no requests; every event kept. */
const opened = closedAfterEach();
const newDir = tempDirs('outbox-gone');

async function goneReceiver(secret: string): Promise<FlakyReceiver> {
  return (opened.receiver = await startFlakyReceiver({ secret, script: () => ({ status: 410, body: 'endpoint deleted' }) }));
}

async function openOn(receiver: FlakyReceiver, secret: string, options: Partial<OutboxOptions> = {}): Promise<{ outbox: Outbox; gone: EndpointGoneEvent[]; reasons: string[] }> {
  const outbox = (opened.outbox = await Outbox.open({ dir: await newDir(), url: receiver.url, signingSecret: secret, retry: FAST_RETRY, ...options }));
  const gone: EndpointGoneEvent[] = [];
  const reasons: string[] = [];
  outbox.on('endpointGone', (event) => gone.push(event));
  outbox.on('dead', (event) => reasons.push(event.reason));
  return { outbox, gone, reasons };
}

async function enqueueAll(outbox: Outbox, count: number, url?: string): Promise<string[]> {
  const ids: string[] = [];
  for (let n = 0; n < count; n++) ids.push((await outbox.enqueue({ body: bodyOf(n), ...(url === undefined ? {} : { url }) })).id);
  return ids;
}

describe('An endpoint that answers 410 Gone', () => {
  it('gets one request; every other event of it is a dead letter unsent, kept with its payload; other endpoints go on', async () => {
    const secret = newSecret();
    const gone = await goneReceiver(secret);
    const healthy = await startFlakyReceiver({ secret });
    try {
      const { outbox, gone: told, reasons } = await openOn(gone, secret, { concurrency: 1, autoFlush: false });
      const ids = await enqueueAll(outbox, 40);
      const others = await enqueueAll(outbox, 40, healthy.url);
      await outbox.drain({ timeoutMs: 10_000 });

      expect(gone.requests).toHaveLength(1);
      const first = gone.requests[0]?.id as string;
      expect(told).toEqual([{ url: gone.url, id: first, at: expect.any(Number) as number }]);
      expect(healthy.deliveredIds()).toEqual(new Set(others));
      const letters = await outbox.deadLetters();
      expect(letters.map((l) => l.id).sort()).toEqual([...ids].sort());
      for (const letter of letters) {
        if (letter.id === first) {
          expect(letter).toMatchObject({ reason: 'http-status', attempts: 1 });
          expect(letter.history[0]).toMatchObject({ status: 410 });
        } else {
          expect(letter).toMatchObject({ reason: 'endpoint-gone', attempts: 0, history: [] });
          expect(JSON.parse(Buffer.from(letter.body).toString())).toEqual(bodyOf(ids.indexOf(letter.id)));
        }
      }
      expect(reasons.filter((r) => r === 'endpoint-gone')).toHaveLength(39);
      expect(outbox.stats()).toMatchObject({ pending: 0, dead: 40, delivered: 40 });
      expect(outbox.stats().endpoints[gone.url]?.goneSince).toBe(told[0]?.at);
      expect(outbox.stats().endpoints[healthy.url]?.goneSince).toBeUndefined();

      // Enqueued after the 410: accepted (durable), then a dead letter without a request.
      const [late] = await enqueueAll(outbox, 1);
      await outbox.drain({ timeoutMs: 10_000 });
      expect(gone.requests).toHaveLength(1);
      expect(await outbox.find(late as string)).toMatchObject({ state: 'dead', reason: 'endpoint-gone' });
      expect(told).toHaveLength(1);
    } finally {
      await healthy.close();
    }
  });

  it('with more requests in flight, those finish as answered; the rest are not sent', async () => {
    const secret = newSecret();
    const receiver = await goneReceiver(secret);
    const { outbox, gone } = await openOn(receiver, secret, { concurrency: 4, autoFlush: false });
    const ids = await enqueueAll(outbox, 100);
    await outbox.drain({ timeoutMs: 10_000 });
    // Slow start does not apply to a new endpoint: up to a window of 4 was out when the first 410 came.
    expect(receiver.requests.length).toBeGreaterThanOrEqual(1);
    expect(receiver.requests.length).toBeLessThanOrEqual(4);
    expect(gone).toHaveLength(1);
    const letters = await outbox.deadLetters();
    expect(letters.map((l) => l.id).sort()).toEqual([...ids].sort());
    expect(letters.filter((l) => l.reason === 'http-status')).toHaveLength(receiver.requests.length);
  });

  it('sends again after enableEndpoint(); a replay of the dead letters delivers each once, same webhook-id', async () => {
    const secret = newSecret();
    const receiver = await goneReceiver(secret);
    const { outbox, gone } = await openOn(receiver, secret, { concurrency: 1, autoFlush: false });
    const ids = await enqueueAll(outbox, 10);
    await outbox.drain({ timeoutMs: 10_000 });
    expect(receiver.requests).toHaveLength(1);

    await expect(outbox.enableEndpoint('not a url')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'url' });
    expect(outbox.stats().endpoints[receiver.url]?.goneSince).toBeDefined();
    receiver.setScript(() => 200);
    expect(await outbox.enableEndpoint(receiver.url)).toBe(true);
    expect(await outbox.enableEndpoint(receiver.url)).toBe(false);
    expect(outbox.stats().endpoints[receiver.url]?.goneSince).toBeUndefined();
    const [fresh] = await enqueueAll(outbox, 1);
    await outbox.drain({ timeoutMs: 10_000 });
    expect(receiver.deliveredIds()).toEqual(new Set([fresh]));

    expect(await outbox.replay()).toBe(10);
    await outbox.drain({ timeoutMs: 10_000 });
    expect(receiver.deliveredIds()).toEqual(new Set([...ids, fresh]));
    for (const id of ids) expect(receiver.countById(id)).toBe(id === receiver.requests[0]?.id ? 2 : 1);
    expect(gone).toHaveLength(1);
    expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0 });
  });

  it('only enableEndpoint() sends again: a replay before it buries the replayed events again, unsent', async () => {
    const secret = newSecret();
    const receiver = await goneReceiver(secret);
    const { outbox } = await openOn(receiver, secret, { concurrency: 1, autoFlush: false });
    const ids = await enqueueAll(outbox, 5);
    await outbox.drain({ timeoutMs: 10_000 });
    receiver.setScript(() => 200);

    expect(await outbox.replay({ endpoint: receiver.url })).toBe(5);
    await outbox.drain({ timeoutMs: 10_000 });
    expect(receiver.requests).toHaveLength(1);
    expect((await outbox.deadLetters()).map((l) => l.reason).sort()).toEqual(Array(5).fill('endpoint-gone'));

    expect(await outbox.enableEndpoint(receiver.url)).toBe(true);
    expect(await outbox.replay({ endpoint: receiver.url })).toBe(5);
    await outbox.drain({ timeoutMs: 10_000 });
    expect(receiver.deliveredIds()).toEqual(new Set(ids));
  });

  it('a receiver that moved: moveEndpoint() from the gone URL, and a replay, deliver every event at the new one', async () => {
    const secret = newSecret();
    const receiver = await goneReceiver(secret);
    const { outbox } = await openOn(receiver, secret, { concurrency: 1, autoFlush: false });
    const ids = await enqueueAll(outbox, 3);
    await outbox.drain({ timeoutMs: 10_000 });
    const moved = await startFlakyReceiver({ secret });
    try {
      expect(await outbox.moveEndpoint(receiver.url, moved.url)).toBe(3);
      expect(await outbox.replay({ endpoint: moved.url })).toBe(3);
      await outbox.drain({ timeoutMs: 10_000 });
      expect(moved.deliveredIds()).toEqual(new Set(ids));
      expect(receiver.requests).toHaveLength(1);
      expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0 });
    } finally {
      await moved.close();
    }
  });

  it('with goneDisablesEndpoint: false, a 410 is that one event\'s permanent failure: each event gets its request', async () => {
    const secret = newSecret();
    const receiver = await goneReceiver(secret);
    const { outbox, gone, reasons } = await openOn(receiver, secret, { concurrency: 1, autoFlush: false, goneDisablesEndpoint: false });
    await enqueueAll(outbox, 10);
    await outbox.drain({ timeoutMs: 10_000 });
    expect(receiver.requests).toHaveLength(10);
    expect(gone).toEqual([]);
    expect(reasons).toEqual(Array(10).fill('http-status'));
    expect(outbox.stats().endpoints[receiver.url]?.goneSince).toBeUndefined();
  });

  it('is disabled in this process only: the dead letters (and their reason) survive a restart, the next event is tried', async () => {
    const secret = newSecret();
    const receiver = await goneReceiver(secret);
    const dir = await newDir();
    const first = (opened.outbox = await Outbox.open({ dir, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, concurrency: 1, autoFlush: false }));
    await enqueueAll(first, 5);
    await first.drain({ timeoutMs: 10_000 });
    await first.close();
    const reopened = (opened.outbox = await Outbox.open({ dir, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, concurrency: 1, autoFlush: false }));
    expect((await reopened.deadLetters()).map((l) => l.reason).sort()).toEqual(['endpoint-gone', 'endpoint-gone', 'endpoint-gone', 'endpoint-gone', 'http-status']);
    expect(reopened.stats().endpoints[receiver.url]?.goneSince).toBeUndefined();
    await enqueueAll(reopened, 3);
    await reopened.drain({ timeoutMs: 10_000 });
    expect(receiver.requests).toHaveLength(2);
    expect(reopened.stats()).toMatchObject({ pending: 0, dead: 8 });
  });

  it('refuses a non-boolean goneDisablesEndpoint', async () => {
    await expect(Outbox.open({ store: new MemoryStore(), goneDisablesEndpoint: 'no' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'goneDisablesEndpoint',
    });
  });
});

describe('A burial the store cannot write (disk full)', () => {
  it('hands the event back and tries again after the store-fault pause: the event is not stuck as claimed', async () => {
    const clock = new FakeClock();
    const inner = new MemoryStore();
    let failures = 0;
    const store = delegatingStore(inner, {
      settle: async (outcomes) => {
        if (outcomes.some((o) => o.type === 'dead') && failures < 1) {
          failures++;
          throw new StoreIoError('ENOSPC: no space left on device');
        }
        return inner.settle(outcomes);
      },
    });
    // Past its max age before its first attempt: buried unsent (no request is made to port 9).
    const box = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:9/hook', clock, autoFlush: false, retry: { maxAgeMs: 1_000 } }));
    const errors: unknown[] = [];
    box.on('error', (error) => errors.push(error));
    const { id } = await box.enqueue({ body: { n: 1 } });
    clock.advance(2_000);
    const draining = box.drain({ timeoutMs: 60_000 });
    for (let i = 0; i < 20 && errors.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toHaveLength(1);
    expect(await box.find(id)).toMatchObject({ state: 'pending' });
    clock.advance(1_000);
    await draining;
    expect(await box.find(id)).toMatchObject({ state: 'dead', reason: 'max-age' });
  });
});
