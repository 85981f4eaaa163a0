import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { StoreIoError } from '../src/errors.js';
import { Outbox } from '../src/outbox.js';
import { FileStore } from '../src/store/file/file-store.js';
import { MemoryStore } from '../src/store/memory.js';
import type { OutboxStore, Outcome } from '../src/store/store.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { Transport, TransportResponse } from '../src/transport/transport.js';
import { FAST_RETRY, bodyOf, closedAfterEach, newSecret, timedTransport, waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';
import { delegatingStore } from './store/delegating-store.js';

/** 410 Gone against slow stores, rate limits, moves, close and max age: nothing lost, nothing sent to a gone URL. */
const opened = closedAfterEach();
const newDir = tempDirs('outbox-gone-races');

/**
 * Wraps a store: 'endpoint-gone' burials wait at a gate (a slow fsync) until `open()`; `open(true)` makes
 * them fail (ENOSPC) when let through.
 */
function gated(inner: OutboxStore) {
  let release: (() => void) | undefined;
  let gate: Promise<void> | undefined = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  let fail = false;
  const store = delegatingStore(inner, {
    settle: async (outcomes: readonly Outcome[]) => {
      if (outcomes.some((o) => o.type === 'dead' && o.reason === 'endpoint-gone')) {
        if (gate !== undefined) {
          held++;
          await gate;
        }
        if (fail) throw new StoreIoError('ENOSPC: no space left on device');
      }
      return inner.settle(outcomes);
    },
  });
  return {
    store,
    held: () => held,
    open: (failing = false) => {
      fail = failing;
      gate = undefined;
      release?.();
    },
  };
}

/** A transport whose answers the test gives by hand, per request. */
function manualTransport() {
  const pending: { url: string; answer(status: number): void }[] = [];
  const transport: Transport = {
    send: (request) =>
      new Promise<TransportResponse>((resolve) => {
        pending.push({ url: request.url, answer: (status) => resolve({ status, headers: {}, bodyExcerpt: '' }) });
      }),
  };
  return { transport, pending };
}

async function ticks(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('Bringing a gone endpoint back', () => {
  it('enableEndpoint() resolves once the burials in flight are written, so a replay after it finds every event', async () => {
    const secret = newSecret();
    let gone = true;
    const receiver = (opened.receiver = await startFlakyReceiver({ secret, script: () => (gone ? 410 : 200) }));
    const g = gated(new MemoryStore());
    const outbox = (opened.outbox = await Outbox.open({ store: g.store, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, concurrency: 1 }));
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) ids.push((await outbox.enqueue({ body: bodyOf(n) })).id);
    // The first event is answered 410; the others are being buried, their writes held at the gate.
    await waitFor(() => g.held() > 0, 10_000, 'burials in flight');

    gone = false;
    let enabled: boolean | undefined;
    const enabling = outbox.enableEndpoint(receiver.url).then((was) => (enabled = was));
    await ticks();
    expect(enabled).toBeUndefined();
    g.open();
    await enabling;
    expect(enabled).toBe(true);
    await outbox.replay({ endpoint: receiver.url });
    await outbox.drain({ timeoutMs: 10_000 });
    expect(await outbox.deadLetters()).toEqual([]);
    expect(receiver.deliveredIds()).toEqual(new Set(ids));
  });

  it('a replay after enableEndpoint() is not buried again by claims made while it is written', async () => {
    const secret = newSecret();
    let gone = true;
    const receiver = (opened.receiver = await startFlakyReceiver({ secret, script: () => (gone ? 410 : 200) }));
    const other = await startFlakyReceiver({ secret });
    try {
      const inner = new MemoryStore();
      let concurrent = false;
      const store = delegatingStore(inner, {
        replay: async (ids, now, url) => {
          const n = await inner.replay(ids, now, url);
          // Another part of the app enqueues while the replay's write completes: the flusher claims.
          if (concurrent) {
            await opened.outbox?.enqueue({ url: other.url, body: { other: true } });
            await ticks();
          }
          return n;
        },
      });
      const outbox = (opened.outbox = await Outbox.open({ store, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, concurrency: 1 }));
      for (let n = 0; n < 5; n++) await outbox.enqueue({ body: bodyOf(n) });
      await outbox.drain({ timeoutMs: 10_000 });
      expect(outbox.stats().dead).toBe(5);
      gone = false;
      concurrent = true;
      await outbox.enableEndpoint(receiver.url);
      expect(await outbox.replay({ endpoint: receiver.url })).toBe(5);
      await outbox.drain({ timeoutMs: 10_000 });
      expect(await outbox.deadLetters()).toEqual([]);
      expect(receiver.deliveredIds().size).toBe(5);
    } finally {
      await other.close();
    }
  });
});

describe('A gone endpoint under a rate limit, a move, a close', () => {
  it('with ratePerSecond, the backlog is buried without waiting for tokens (no request is made)', async () => {
    const clock = new FakeClock(1_000_000);
    const t = manualTransport();
    const outbox = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: 'http://a.test/hook',
      clock,
      transport: t.transport,
      autoFlush: false,
      endpointLimits: () => ({ ratePerSecond: 1 }),
    }));
    for (let n = 0; n < 200; n++) await outbox.enqueue({ body: { n } });
    const draining = outbox.drain({ timeoutMs: 10_000 });
    await ticks();
    expect(t.pending).toHaveLength(1);
    t.pending[0]?.answer(410);
    for (let i = 0; i < 20 && outbox.stats().pending > 0; i++) await ticks();
    expect(outbox.stats()).toMatchObject({ pending: 0, dead: 200 });
    await draining;
  });

  it('moveEndpoint(gone, to) waits for the burials, then every event of `from` is at `to` (pending or dead), none left behind', async () => {
    const secret = newSecret();
    const receiver = (opened.receiver = await startFlakyReceiver({ secret, script: () => 410 }));
    const target = await startFlakyReceiver({ secret });
    try {
      const g = gated(new FileStore({ dir: await newDir() }));
      const outbox = (opened.outbox = await Outbox.open({ store: g.store, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, concurrency: 1 }));
      for (let n = 0; n < 20; n++) await outbox.enqueue({ body: bodyOf(n) });
      await waitFor(() => g.held() > 0, 10_000, 'burials in flight');
      const moving = outbox.moveEndpoint(receiver.url, target.url, { timeoutMs: 10_000 });
      await new Promise((resolve) => setImmediate(resolve));
      g.open();
      const moved = await moving;
      expect(moved).toBeGreaterThan(0);
      await outbox.drain({ timeoutMs: 10_000 });
      const stats = outbox.stats();
      expect(stats.endpoints[receiver.url]?.pending ?? 0).toBe(0);
      expect(stats.endpoints[receiver.url]?.dead ?? 0).toBe(0);
      expect(stats.pending).toBe(0);
      // 20 events: delivered at `to` or dead letters now at `to`.
      expect(target.deliveredIds().size + stats.dead).toBe(20);
    } finally {
      await target.close();
    }
  });

  it('close() with burials in flight that then fail (ENOSPC): close resolves, and after a reopen no event is lost', async () => {
    const secret = newSecret();
    const receiver = (opened.receiver = await startFlakyReceiver({ secret, script: () => 410 }));
    const dir = await newDir();
    const g = gated(new FileStore({ dir }));
    const outbox = await Outbox.open({ store: g.store, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, concurrency: 1 });
    outbox.on('error', () => {});
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) ids.push((await outbox.enqueue({ body: bodyOf(n) })).id);
    await waitFor(() => g.held() > 0, 10_000, 'burials in flight');
    const closing = outbox.close({ timeoutMs: 1_000 });
    await new Promise((resolve) => setImmediate(resolve));
    g.open(true);
    await closing;
    const reopened = (opened.outbox = await Outbox.open({ dir, url: receiver.url, signingSecret: secret, retry: FAST_RETRY, autoFlush: false }));
    for (const id of ids) {
      const found = await reopened.find(id);
      expect(found?.state, id).toMatch(/pending|dead/);
    }
  });
});

describe('Max-age burials (the same removal path)', () => {
  it('an ordering key\'s head buried past its max age releases the key\'s next, which is delivered', async () => {
    const clock = new FakeClock(1_000_000);
    const { transport, startedAt } = timedTransport(clock);
    const outbox = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://a.test/hook', clock, transport, autoFlush: false, retry: { maxAgeMs: 1_000 } }));
    const dead: string[] = [];
    const delivered: string[] = [];
    outbox.on('dead', (e) => dead.push(`${e.id}:${e.reason}`));
    outbox.on('delivered', (e) => delivered.push(e.id));
    const old = await Promise.all([0, 1, 2].map((n) => outbox.enqueue({ body: { n }, orderingKey: 'K' })));
    clock.advance(5_000);
    const fresh = await outbox.enqueue({ body: { n: 3 }, orderingKey: 'K' });
    await outbox.drain({ timeoutMs: 10_000 });
    expect(dead.sort()).toEqual(old.map((o) => `${o.id}:max-age`).sort());
    expect(delivered).toEqual([fresh.id]);
    expect(startedAt).toHaveLength(1);
  });

  it('a large expired backlog on many keys is buried and drain resolves', async () => {
    const clock = new FakeClock(1_000_000);
    const { transport, startedAt } = timedTransport(clock);
    const outbox = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://a.test/hook', clock, transport, autoFlush: false, retry: { maxAgeMs: 1_000 } }));
    await Promise.all(Array.from({ length: 5_000 }, (_, n) => outbox.enqueue({ body: { n }, orderingKey: `k${n % 50}` })));
    clock.advance(5_000);
    await outbox.drain({ timeoutMs: 60_000 });
    expect(outbox.stats()).toMatchObject({ pending: 0, dead: 5_000 });
    expect(startedAt).toHaveLength(0);
  });
});
