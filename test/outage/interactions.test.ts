import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { Outbox } from '../../src/outbox.js';
import { MemoryStore } from '../../src/store/memory.js';
import { flush, open, openBox, URL_A } from './harness.js';

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 0 });
  box = undefined;
});

describe('outage interactions', () => {
  it('maxAgeMs expiring during a 2 h outage: no expired event is ever sent; all are dead letters (max-age) by the next probe', async () => {
    const t = await openBox({ concurrency: 16, retry: { maxAgeMs: 3_600_000, maxDelayMs: 600_000 } });
    box = t.box;
    const created = t.clock.now();
    await Promise.all(Array.from({ length: 100 }, (_, n) => t.box.enqueue({ body: { n } })));
    for (let round = 0; round < 720; round++) {
      await flush(3);
      for (const p of open(t.pending)) {
        p.reply(500);
        await flush(1);
      }
      t.clock.advance(10_000);
    }
    // Sent after its expiry: none (every event here was created at `created`).
    expect(t.sent.filter((s) => s.at >= created + 3_600_000)).toEqual([]);
    expect(t.dead).toHaveLength(100);
    expect(new Set(t.dead.map((d) => d.reason))).toEqual(new Set(['max-age']));
    expect(t.box.stats().pending).toBe(0);
  });

  it('drain() during an outage times out with the backlog intact; close() during a hanging probe leaves the probe event pending, uncounted', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const store = new MemoryStore();
    const t = await openBox({ concurrency: 4, retry: { maxAttempts: 2 } }, clock, store);
    box = t.box;
    await Promise.all(Array.from({ length: 30 }, (_, n) => t.box.enqueue({ body: { n } })));
    const drained = t.box.drain({ timeoutMs: 120_000 }).then(
      () => 'drained',
      (e: { code: string; remaining?: number }) => `${e.code} ${e.remaining}`,
    );
    for (let round = 0; round < 130; round++) {
      await flush(3);
      for (const p of open(t.pending)) {
        p.reply(503);
        await flush(1);
      }
      clock.advance(1_000);
    }
    expect(await drained).toBe('ERR_DRAIN_TIMEOUT 30');
    expect(t.dead).toEqual([]);
    // Wait for a probe, leave it hanging, close.
    for (let round = 0; round < 2_000 && open(t.pending).length === 0; round++) {
      await flush(2);
      clock.advance(1_000);
    }
    const probe = open(t.pending);
    expect(probe).toHaveLength(1);
    const closing = t.box.close({ timeoutMs: 1_000 });
    await flush();
    clock.advance(1_000);
    await closing;
    box = undefined;
    const left = store.snapshot().pending.find((e) => e.id === probe[0]?.id);
    expect(left?.attempts).toBeLessThan(2);
    expect(store.snapshot().pending).toHaveLength(30);
    // The restarted outbox delivers everything to the recovered receiver, nothing dead.
    const t2 = await openBox({ concurrency: 4, retry: { maxAttempts: 2 } }, clock, new MemoryStore({ snapshot: store.snapshot() }));
    box = t2.box;
    for (let round = 0; t2.delivered.length < 30 && round < 5_000; round++) {
      await flush(2);
      for (const p of open(t2.pending)) p.reply(200);
      clock.advance(100);
    }
    expect(t2.delivered).toHaveLength(30);
    expect(t2.dead).toEqual([]);
  });

  it('ordering keys during an outage: each key delivered in order after recovery, nothing dead', async () => {
    const t = await openBox({ concurrency: 8, retry: { maxAttempts: 3 } });
    box = t.box;
    const ids: Record<string, string[]> = {};
    for (let n = 0; n < 60; n++) {
      const key = `k${n % 6}`;
      const { id } = await t.box.enqueue({ orderingKey: key, body: { n } });
      (ids[key] ??= []).push(id);
    }
    for (let round = 0; round < 720; round++) {
      await flush(3);
      for (const p of open(t.pending)) {
        p.reply(503);
        await flush(1);
      }
      t.clock.advance(10_000);
    }
    expect(t.dead).toEqual([]);
    for (let round = 0; t.delivered.length < 60 && round < 20_000; round++) {
      await flush(2);
      for (const p of open(t.pending)) p.reply(200);
      t.clock.advance(100);
    }
    expect(t.dead).toEqual([]);
    for (const key of Object.keys(ids)) expect(t.delivered.filter((id) => ids[key]?.includes(id))).toEqual(ids[key]);
    expect(t.box.stats().endpoints[URL_A]?.circuit ?? 'closed').toBe('closed');
  });
});
