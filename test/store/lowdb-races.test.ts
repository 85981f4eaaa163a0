import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { QUIET_LANE_MS } from '../../src/delivery/flusher.js';
import { LowdbStore } from '../../src/store/lowdb.js';
import { MemoryStore } from '../../src/store/memory.js';
import { A, setup } from '../delivery/flusher-harness.js';
import { failNextWrite, fileIds, hangNextWrite } from './lowdb-write-faults.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('lowdb-races');
const FAR = 1e15;

function newEvent(id: string) {
  return { id, url: A, headers: {}, body: new Uint8Array([1]), createdAt: 1_000, nextAttemptAt: 1_000 };
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** Lets promise chains and real file I/O run. */
async function settleDown(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe('LowdbStore and the flusher around a failed write, and quiet endpoints', () => {
  it('LowdbStore + Flusher: an event whose retry is still being written is not handed out again, and after that write fails it is sent once at a time', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new LowdbStore({ file: join(await newDir(), 'outbox.json') });
    await store.open();
    await store.append([{ id: 'x', url: A, headers: {}, body: new Uint8Array([1]), createdAt: clock.now(), nextAttemptAt: clock.now() }]);
    const t = await setup({ store, clock, concurrency: 4, globalConcurrency: 4, collectErrors: true });
    t.flusher.start();
    await settleDown();
    expect(t.calls.map((c) => c.event.id)).toEqual(['x']);

    // The disk is slow on the write of x's retry (due in 500 ms), then fails it.
    const write = failNextWrite();
    t.calls[0]?.answer(500);
    await vi.waitFor(() => expect(write.started()).toBe(true));
    await settleDown();
    // The retry is due while its write is still in progress: x is not handed out again yet (a second lease
    // made then was kept by the rollback, and the flusher's release of the first ended it: x went out twice
    // at once).
    clock.advance(500);
    await settleDown();
    expect(t.calls.map((c) => [c.event.id, c.answered])).toEqual([['x', true]]);
    write.fail();
    await settleDown();
    clock.advance(1_000);
    await settleDown();
    expect(t.calls.filter((c) => !c.answered && c.event.id === 'x')).toHaveLength(1);
    for (const call of t.calls) if (!call.answered) call.answer('ok');
    await settleDown();
    expect(t.delivered).toEqual(['x']);
    expect(store.stats()).toMatchObject({ pending: 0, delivered: 1 });
    await t.flusher.stop(0);
    await store.close();
  });

  it('LowdbStore: an append made in the microtasks right after a write fails is rejected, or in the store and the file', async () => {
    const lost: number[] = [];
    for (let k = 0; k < 8; k++) {
      vi.restoreAllMocks();
      const file = join(await newDir(), 'outbox.json');
      const store = new LowdbStore({ file });
      await store.open();
      await store.append([newEvent('held'), newEvent('kept')]);
      // One event is being delivered, so the rollback keeps it claimed (restore() then awaits a claim and a settle).
      await store.claim({ now: FAR, limit: 1 });
      const { fail } = await hangNextWrite(() => store.append([newEvent('in-write')]));
      fail();
      // A producer whose append comes a few microtasks after the failure (e.g. at the end of its own promise chain).
      for (let i = 0; i < k; i++) await Promise.resolve();
      const resolved = await store.append([newEvent('late')]).then(
        () => true,
        () => false,
      );
      const pending = store.stats().pending;
      await store.close();
      const onDisk = await fileIds(file);
      // Acknowledged: it must be in the store and in the file.
      if (resolved && (!onDisk.includes('late') || pending !== 3)) lost.push(k);
    }
    expect(lost).toEqual([]);
  });

  it('LowdbStore: an event claimed in the ticks around a failed write is not handed out twice', async () => {
    const twice: number[] = [];
    for (let k = 0; k < 8; k++) {
      vi.restoreAllMocks();
      const store = new LowdbStore({ file: join(await newDir(), 'outbox.json') });
      await store.open();
      await store.append([newEvent('x')]);
      const { fail, result: inWrite } = await hangNextWrite(() => store.append([newEvent('in-write')]));
      fail();
      for (let i = 0; i < k; i++) await Promise.resolve();
      // The flusher claims x while the failure is being handled, and starts delivering it...
      const first = (await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id);
      await inWrite.catch(() => {});
      // ...and its next claim gets x again although x was never settled.
      const second = (await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id);
      if (first.includes('x') && second.includes('x')) twice.push(k);
      await store.close();
    }
    expect(twice).toEqual([]);
  });

  it('stats: an idle endpoint with a lowered limit is forgotten after QUIET_LANE_MS, also when nothing pumps', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new MemoryStore();
    await store.open();
    await store.append([newEvent('b0'), newEvent('b1')].map((e) => ({ ...e, createdAt: clock.now(), nextAttemptAt: clock.now() })));
    const t = await setup({ store, clock, concurrency: 4, globalConcurrency: 4, collectErrors: true });
    t.flusher.start();
    await settleDown();
    // A 429 halves the endpoint's limit (4 -> 2); then everything is delivered.
    t.calls[0]?.answer(429);
    await settleDown();
    for (let i = 0; i < 20 && t.delivered.length < 2; i++) {
      clock.advance(1_000);
      await settleDown();
      for (const call of t.calls.filter((c) => !c.answered)) call.answer('ok');
      await settleDown();
    }
    expect(t.delivered.sort()).toEqual(['b0', 'b1']);
    expect(store.stats().pending).toBe(0);
    expect(t.flusher.endpoints()[A]?.concurrency).toBeLessThan(4);
    // Ten quiet minutes (and more) pass; nothing is enqueued. docs/04: forgotten after 10 quiet minutes.
    clock.advance(QUIET_LANE_MS);
    await settleDown();
    clock.advance(QUIET_LANE_MS);
    await settleDown();
    expect(t.flusher.endpoints()).toEqual({});
    await t.flusher.stop(0);
  });
});
