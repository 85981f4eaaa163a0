import { readdir } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { FileStore, OUTCOME_SYNC_MS } from '../../src/store/file/file-store.js';
import { makeEvent } from './contract.js';
import { FaultFs } from './fault-fs.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('file-faults');
const T0 = 1_700_000_000_000;

async function pendingIds(dir: string): Promise<string[]> {
  const store = new FileStore({ dir });
  await store.open();
  const { events } = await store.claim({ limit: 10_000, now: Number.MAX_SAFE_INTEGER });
  expect(store.stats().corrupt).toBe(0);
  await store.close();
  return events.map((e) => e.id).sort();
}

/** A store over a `FaultFs` with events e1 and e2 appended and claimed. */
async function twoClaimed(): Promise<{ dir: string; fs: FaultFs; store: FileStore }> {
  const dir = await newDir();
  const fs = new FaultFs();
  const store = new FileStore({ dir, fs });
  await store.open();
  await store.append([makeEvent('e1'), makeEvent('e2')]);
  await store.claim({ limit: 10, now: T0 });
  return { dir, fs, store };
}

const deliveredE1 = { id: 'e1', type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } };

/** A store over a `FaultFs` with 4 KiB segments whose first segment is full of events e0..e(n-1). */
async function fullFirstSegment(): Promise<{ dir: string; fs: FaultFs; store: FileStore; n: number }> {
  const dir = await newDir();
  const fs = new FaultFs();
  const store = new FileStore({ dir, fs, segmentBytes: 4_096 });
  await store.open();
  let n = 0;
  while (store.stats().bytesOnDisk < 4_096) await store.append([makeEvent(`e${n++}`)]);
  return { dir, fs, store, n };
}

describe('FileStore under I/O faults (through the file system seam)', () => {
  it('EIO on fsync: the whole group commit rejects with ERR_STORE_IO, none of it comes back, the store goes on', async () => {
    const dir = await newDir();
    const fs = new FaultFs();
    const store = new FileStore({ dir, fs });
    await store.open();
    await store.append([makeEvent('before')]);
    fs.fsyncFaults.push('EIO');
    const results = await Promise.allSettled([store.append([makeEvent('a')]), store.append([makeEvent('b'), makeEvent('c')])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats().pending).toBe(1);
    await store.append([makeEvent('after')]);
    expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['before', 'after']);
    await store.close();
    expect(await pendingIds(dir)).toEqual(['after', 'before']);
  });

  it('ENOSPC on write (after a partial write): rejects with ERR_OUTBOX_FULL, leaves no torn record, the store goes on', async () => {
    const dir = await newDir();
    const fs = new FaultFs();
    const store = new FileStore({ dir, fs });
    await store.open();
    await store.append([makeEvent('before')]);
    fs.writeFaults.push({ code: 'ENOSPC', partial: 7 });
    await expect(store.append([makeEvent('lost')])).rejects.toMatchObject({ code: 'ERR_OUTBOX_FULL' });
    await store.append([makeEvent('after')]);
    await store.claim({ limit: 10, now: T0 });
    await store.settle([{ id: 'before', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    await store.close();
    expect(await pendingIds(dir)).toEqual(['after']);
  });

  it('a settle whose write fails rejects and gives the events back to claim; nothing is half-applied', async () => {
    const { dir, fs, store } = await twoClaimed();
    fs.writeFaults.push({ code: 'EIO', partial: 5 });
    await expect(store.settle([deliveredE1])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats()).toMatchObject({ pending: 2, claimed: 1, delivered: 0 });
    expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['e1']);
    await store.close();
    expect(await pendingIds(dir)).toEqual(['e1', 'e2']);
  });

  it(`a settle resolves once written; an fsync of its own follows within ${OUTCOME_SYNC_MS} ms, after which a power loss keeps it`, async () => {
    const { dir, fs, store } = await twoClaimed();
    const before = fs.fsyncsStarted;
    await store.settle([deliveredE1]);
    expect(fs.fsyncsStarted).toBe(before);
    await vi.waitFor(() => expect(fs.lastSyncedStart).toBeGreaterThan(before), { timeout: 5_000, interval: 10 });
    await fs.crash();
    await store.close().catch(() => undefined);
    expect(await pendingIds(dir)).toEqual(['e2']);
  });

  it('a failed fsync of outcomes moves the store to a new segment and it goes on; the outcome may repeat, no event is lost', async () => {
    const { dir, fs, store } = await twoClaimed();
    const before = fs.fsyncsStarted;
    fs.fsyncFaults.push('EIO');
    await store.settle([deliveredE1]);
    await vi.waitFor(() => expect(fs.lastSyncedStart).toBeGreaterThan(before + 1), { timeout: 5_000, interval: 10 });
    await store.append([makeEvent('e3')]);
    expect(store.stats()).toMatchObject({ pending: 2, delivered: 1 });
    await store.close();
    const ids = await pendingIds(dir);
    expect(ids.filter((id) => id !== 'e1')).toEqual(['e2', 'e3']);
  });

  it('a failed fsync before deleting settled segments deletes nothing and moves to a new segment', async () => {
    const { dir, fs, store } = await fullFirstSegment();
    await store.append([makeEvent('t0')]);
    const { events } = await store.claim({ limit: 1_000, now: T0 });
    const segments = async (): Promise<string[]> => (await readdir(dir)).filter((name) => name.startsWith('segment-')).sort();
    expect(await segments()).toHaveLength(2);
    // Delivering all of segment 1 writes its tombstones (not fsync'd yet) and frees it: the fsync that
    // must come before deleting it fails.
    fs.fsyncFaults.push('EIO');
    await store.settle(events.filter((e) => e.id.startsWith('e')).map((e) => ({ id: e.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } })));
    const after = await segments();
    expect(after).toHaveLength(3);
    expect(after[0]).toBe('segment-0000000001.log');
    await store.append([makeEvent('later')]);
    await store.close();
    // No accepted event is lost; delivered ones may come back (their outcomes were not durable).
    expect(await pendingIds(dir)).toEqual(expect.arrayContaining(['later', 't0']));
  });

  it('a segment whose deletion fails stays tracked: its delivered events do not come back after a reopen', async () => {
    const dir = await newDir();
    const fs = new FaultFs();
    const store = new FileStore({ dir, fs, segmentBytes: 4_096 });
    await store.open();
    const delivered = (ids: string[]) => ids.map((id) => ({ id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } }));
    let n = 0;
    while (store.stats().bytesOnDisk < 4_096) await store.append([makeEvent(`e${n++}`)]);
    await store.append([makeEvent('t0')]);
    let { events } = await store.claim({ limit: 1_000, now: T0 });
    fs.unlinkFaults.push('EIO');
    // All of segment 1 is delivered; deleting it fails once. Its tombstones are in segment 2.
    await store.settle(delivered(events.filter((e) => e.id.startsWith('e')).map((e) => e.id)));
    // Deliver everything else too, and move on by two segments, so segment 2 could be deleted.
    for (let i = 0; i < 80; i++) await store.append([makeEvent(`f${i}`)]);
    ({ events } = await store.claim({ limit: 1_000, now: T0 }));
    await store.settle(delivered(['t0', ...events.map((e) => e.id)]));
    for (let i = 0; i < 80; i++) await store.append([makeEvent(`g${i}`)]);
    await store.close();
    expect((await pendingIds(dir)).filter((id) => !id.startsWith('g'))).toEqual([]);
  });

  it('ENOSPC when a new segment starts: the store goes on in the current one, and open() still starts', async () => {
    const { dir, fs, store, n } = await fullFirstSegment();
    await store.claim({ limit: 1, now: T0 });
    // The new segment's header write finds the disk full: the append goes into the current segment.
    fs.writeFaults.push({ code: 'ENOSPC', partial: 0 });
    await store.append([makeEvent('still-accepted')]);
    await store.settle([{ id: 'e0', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    await store.append([makeEvent('later')]);
    await store.close();
    expect((await readdir(dir)).filter((name) => name.startsWith('segment-')).length).toBeLessThanOrEqual(2);
    expect((await pendingIds(dir)).length).toBe(n + 1);
    // A reopen whose newest segment is full, on a disk that cannot take a new one: it starts anyway.
    const fullDir = await newDir();
    const full = new FileStore({ dir: fullDir, segmentBytes: 4_096 });
    await full.open();
    let m = 0;
    while (full.stats().bytesOnDisk < 4_096) await full.append([makeEvent(`x${m++}`)]);
    await full.close();
    const noRoom = new FaultFs();
    noRoom.createFaults.push('ENOSPC');
    const reopened = new FileStore({ dir: fullDir, fs: noRoom, segmentBytes: 4_096 });
    await reopened.open();
    expect(reopened.stats().pending).toBe(m);
    await reopened.append([makeEvent('after-reopen')]);
    await reopened.close();
    expect((await pendingIds(fullDir)).length).toBe(m + 1);
  });

  it('when the journal cannot be restored after a failure, every call fails loudly; a reopen recovers', async () => {
    const dir = await newDir();
    const fs = new FaultFs();
    const store = new FileStore({ dir, fs });
    await store.open();
    await store.append([makeEvent('kept')]);
    fs.fsyncFaults.push('EIO');
    fs.truncateFault = 'EIO';
    await expect(store.append([makeEvent('x')])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    fs.truncateFault = undefined;
    await expect(store.append([makeEvent('y')])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    await expect(store.claim({ limit: 1, now: T0 })).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    await store.close();
    const ids = await pendingIds(dir);
    expect(ids).toContain('kept');
    expect(ids).not.toContain('y');
  });

  it('a crash that drops everything not fsync\'d loses no acknowledged event, and repeats no outcome an fsync covered (durability: fsync)', async () => {
    for (let round = 0; round < 8; round++) {
      const dir = await newDir();
      const fs = new FaultFs();
      const store = new FileStore({ dir, fs, segmentBytes: 8192 });
      await store.open();
      const acked: string[] = [];
      /** Delivered id -> fsyncs started when its settle resolved: any fsync started later covers it. */
      const delivered = new Map<string, number>();
      const settling = new Set<string>();
      let n = 0;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (;;) {
          const batch = Array.from({ length: 1 + ((n + w) % 5) }, () => makeEvent(`r${round}-${n++}`, { body: new Uint8Array(200) }));
          try {
            await store.append(batch);
          } catch {
            return;
          }
          acked.push(...batch.map((e) => e.id));
          const { events } = await store.claim({ limit: 3, now: T0 }).catch(() => ({ events: [] }));
          for (const e of events) settling.add(e.id);
          try {
            await store.settle(events.map((e) => ({ id: e.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } })));
            for (const e of events) delivered.set(e.id, fs.fsyncsStarted);
          } catch {
            return;
          }
        }
      });
      while (acked.length < 20 + round * 15) await new Promise((r) => setImmediate(r));
      await fs.crash((unsynced) => Math.floor(Math.random() * (unsynced + 1)));
      await Promise.all(writers);
      await store.close().catch(() => undefined);
      const reopened = new FileStore({ dir });
      await reopened.open();
      const { events } = await reopened.claim({ limit: 100_000, now: T0 });
      const pending = new Set(events.map((e) => e.id));
      // A settle cut short by the crash may or may not have reached the disk; every other acked id must be there.
      for (const id of acked) if (!settling.has(id)) expect(pending.has(id), id).toBe(true);
      // An outcome may come back (the delivery repeats) only if no fsync started after it was written.
      for (const [id, startedBefore] of delivered) if (fs.lastSyncedStart > startedBefore) expect(pending.has(id), id).toBe(false);
      await reopened.close();
    }
  });
});
