import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { encodeTombstone, EventRecords, frameLength, HEADER_BYTES, readHeader, sealFrame, TOMBSTONE_DELIVERED } from '../../src/store/file/format.js';
import { makeEvent } from './contract.js';
import { FaultFs } from './fault-fs.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('file-recovery');
const T0 = 1_700_000_000_000;
const IDS = ['e1', 'e2', 'e3'];

/** A closed store with three events in one segment; returns the segment bytes and record offsets. */
async function journal(): Promise<{ bytes: Buffer; starts: number[]; name: string }> {
  const dir = await newDir();
  const store = new FileStore({ dir });
  await store.open();
  for (const id of IDS) await store.append([makeEvent(id)]);
  await store.close();
  const name = (await readdir(dir)).find((n) => n.startsWith('segment-')) as string;
  const bytes = await readFile(join(dir, name));
  const starts: number[] = [];
  for (let at = HEADER_BYTES; at < bytes.length; at += frameLength(bytes, at)) starts.push(at);
  expect(starts).toHaveLength(3);
  return { bytes, starts, name };
}

/**
 * Whole frames as a webhook body could carry them, with head checksums computed from `salt`: a tombstone
 * for the first record of segment 1 (at `first`) and an event that was never accepted.
 */
function forgedFrames(salt: number, first = HEADER_BYTES): Buffer {
  const tombstone = encodeTombstone({ seg: 1, off: first }, TOMBSTONE_DELIVERED);
  sealFrame(tombstone, 0, salt);
  const records = new EventRecords([makeEvent('injected', { url: 'http://169.254.169.254/latest' })]);
  const event = Buffer.alloc(records.size);
  records.encodeInto(event, 0, salt);
  return Buffer.concat([tombstone, event]);
}

async function segmentOf(dir: string): Promise<{ name: string; bytes: Buffer }> {
  const name = (await readdir(dir)).find((n) => n.startsWith('segment-')) as string;
  return { name, bytes: await readFile(join(dir, name)) };
}

async function openWith(name: string, bytes: Buffer): Promise<{ ids: string[]; corrupt: number; dir: string }> {
  const dir = await newDir();
  await writeFile(join(dir, name), bytes, { mode: 0o600 });
  const store = new FileStore({ dir });
  await store.open();
  const { events } = await store.claim({ limit: 10, now: T0 });
  const result = { ids: events.map((e) => e.id), corrupt: store.stats().corrupt, dir };
  await store.close();
  return result;
}

describe('FileStore recovery', () => {
  it('truncates a torn last record at every byte offset, keeps the whole ones, and appends cleanly after', async () => {
    const { bytes, starts, name } = await journal();
    const last = starts[2] as number;
    for (let cut = last; cut < bytes.length; cut++) {
      const { ids, corrupt, dir } = await openWith(name, bytes.subarray(0, cut));
      expect(ids, `cut at ${cut}`).toEqual(['e1', 'e2']);
      expect(corrupt).toBe(0);
      const store = new FileStore({ dir });
      await store.open();
      await store.append([makeEvent('e4')]);
      await store.close();
      const again = new FileStore({ dir });
      await again.open();
      expect((await again.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['e1', 'e2', 'e4']);
      expect(again.stats().corrupt).toBe(0);
      await again.close();
    }
  });

  it('reads nothing inside the body of a torn last record, even frames a webhook body carried', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('victim')]);
    // A body holding whole frames that would pass every check, even with the segment's own salt.
    const salt = readHeader((await segmentOf(dir)).bytes, 1)?.salt as number;
    expect(salt).toBeGreaterThan(0);
    await store.append([makeEvent('torn', { body: Buffer.concat([Buffer.from('x'), forgedFrames(salt), Buffer.alloc(4_096, 0x20)]) })]);
    await store.close();
    // The second append is torn inside its body (a crash before its fsync returned).
    const { name, bytes } = await segmentOf(dir);
    const { ids, corrupt } = await openWith(name, bytes.subarray(0, bytes.length - 2_048));
    expect(ids).toEqual(['victim']);
    expect(corrupt).toBe(0);
  });

  it('reads no frame a body carries when a damaged head makes recovery search onward from inside that record', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('victim')]);
    // Checksums as whoever sent this body could compute them: the segment's salt never leaves the disk.
    await store.append([makeEvent('carrier', { body: Buffer.concat([Buffer.from('x'), forgedFrames(0)]) })]);
    await store.append([makeEvent('after')]);
    await store.close();
    const { name, bytes } = await segmentOf(dir);
    const carrier = HEADER_BYTES + frameLength(bytes, HEADER_BYTES);
    const headEnd = carrier + 16 + bytes.readUInt32LE(carrier + 8);
    for (let at = carrier; at < headEnd; at++) {
      const damaged = Buffer.from(bytes);
      damaged[at] = (damaged[at] as number) ^ 0x5a;
      const { ids, corrupt } = await openWith(name, damaged);
      expect(ids, `byte ${at}`).toEqual(['victim', 'after']);
      expect(corrupt, `byte ${at}`).toBe(1);
    }
  });

  it('skips and counts a record with any flipped byte, keeping every other record', async () => {
    const { bytes, starts, name } = await journal();
    for (const [index, start] of starts.entries()) {
      const end = index < 2 ? (starts[index + 1] as number) : bytes.length;
      for (let at = start; at < end; at++) {
        const flipped = Buffer.from(bytes);
        flipped[at] = (flipped[at] as number) ^ 0x5a;
        const { ids, corrupt } = await openWith(name, flipped);
        const expected = IDS.filter((_, i) => i !== index);
        expect(ids, `record ${index}, byte ${at}`).toEqual(expected);
        // A damaged length in the last record can make it look torn rather than damaged: then it is cut, not counted.
        if (index < 2) expect(corrupt, `record ${index}, byte ${at}`).toBe(1);
        else expect(corrupt).toBeLessThanOrEqual(1);
      }
    }
  });

  it('finds a flipped byte in an older segment at open (head) or before delivery (payload): never delivered, counted once, dropped for good', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    const all = Array.from({ length: 40 }, (_, i) => `e${i}`);
    for (const id of all) await store.append([makeEvent(id, { body: new Uint8Array(200).fill(7) })]);
    await store.close();
    const names = (await readdir(dir)).filter((n) => n.startsWith('segment-')).sort();
    expect(names.length).toBeGreaterThanOrEqual(3);
    const first = await readFile(join(dir, names[0] as string));
    const start = HEADER_BYTES + frameLength(first, HEADER_BYTES);
    const end = start + frameLength(first, start);
    const damagedId = all[1] as string;
    const claimAll = async (s: FileStore): Promise<string[]> => (await s.claim({ limit: 100, now: T0 })).events.map((e) => e.id);
    const found = { atOpen: 0, atClaim: 0 };
    for (let at = start; at < end; at++) {
      const copy = await newDir();
      for (const name of names) await copyFile(join(dir, name), join(copy, name));
      const flipped = Buffer.from(first);
      flipped[at] = (flipped[at] as number) ^ 0x5a;
      await writeFile(join(copy, names[0] as string), flipped);
      const opened = new FileStore({ dir: copy, segmentBytes: 4096 });
      await opened.open();
      const atOpen = opened.stats().corrupt;
      found[atOpen === 1 ? 'atOpen' : 'atClaim']++;
      expect(await claimAll(opened), `byte ${at}`).toEqual(all.filter((id) => id !== damagedId));
      expect(opened.stats().corrupt, `byte ${at}`).toBe(1);
      await opened.close();
      const again = new FileStore({ dir: copy, segmentBytes: 4096 });
      await again.open();
      expect(await claimAll(again), `byte ${at}, reopened`).toEqual(all.filter((id) => id !== damagedId));
      // A damaged head is skipped (and counted) at every open; a damaged payload was tombstoned at claim.
      expect(again.stats().corrupt, `byte ${at}, reopened`).toBe(atOpen);
      await again.close();
    }
    // Both paths ran: the head (with the lengths and id) is checked at open, the headers and body (the payload) at claim.
    expect(found.atOpen).toBeGreaterThan(40);
    expect(found.atClaim).toBeGreaterThan(200);
  });

  it('drops a dead letter whose payload fails its checksum when read back, counting it once', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    await store.append([makeEvent('dead', { body: new Uint8Array(200).fill(0xab) }), makeEvent('kept-dead')]);
    for (let i = 0; i < 40; i++) await store.append([makeEvent(`e${i}`, { body: new Uint8Array(200) })]);
    await store.claim({ limit: 100, now: T0 });
    await store.settle(['dead', 'kept-dead'].map((id) => ({ id, type: 'dead' as const, reason: 'http-status' as const, at: T0 })));
    await store.close();
    const first = (await readdir(dir)).filter((n) => n.startsWith('segment-')).sort()[0] as string;
    const bytes = await readFile(join(dir, first));
    const body = bytes.indexOf(Buffer.alloc(200, 0xab));
    expect(body).toBeGreaterThan(0);
    bytes[body + 100] = 0;
    await writeFile(join(dir, first), bytes);
    const opened = new FileStore({ dir, segmentBytes: 4096 });
    await opened.open();
    expect(opened.stats()).toMatchObject({ dead: 2, corrupt: 0 });
    expect((await opened.deadLetters()).map((d) => d.id)).toEqual(['kept-dead']);
    expect((await opened.deadLetters()).map((d) => d.id)).toEqual(['kept-dead']);
    expect(opened.stats()).toMatchObject({ dead: 1, corrupt: 1 });
    await opened.close();
    const again = new FileStore({ dir, segmentBytes: 4096 });
    await again.open();
    expect(again.stats()).toMatchObject({ dead: 1, corrupt: 0 });
    expect(await again.replay()).toBe(1);
    await again.close();
  });

  it('moves a segment with a corrupt header aside, counts it, and starts anyway', async () => {
    const { bytes, name } = await journal();
    const damaged = Buffer.from(bytes);
    damaged[2] = 0;
    const { ids, corrupt, dir } = await openWith(name, damaged);
    expect(ids).toEqual([]);
    expect(corrupt).toBe(1);
    expect(await readdir(dir)).toContain(`${name}.corrupt`);
    // The id of the segment moved aside is not reused: records elsewhere may still point into it.
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('after')]);
    await store.close();
    expect((await readdir(dir)).filter((n) => n.endsWith('.log'))).toEqual(['segment-0000000002.log']);
  });

  it('rebuilds the same state from the segments after a reopen, with several segments and outcomes', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    for (let i = 0; i < 30; i++) await store.append([makeEvent(`e${i}`, { body: new Uint8Array(300), url: i % 2 ? 'http://127.0.0.1:1/odd' : 'http://127.0.0.1:1/even' })]);
    const { events } = await store.claim({ limit: 30, now: T0 });
    await store.settle(events.map((e, i) =>
      i % 3 === 0
        ? { id: e.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } }
        : i % 3 === 1
          ? { id: e.id, type: 'retry' as const, attempt: { at: T0, durationMs: 1, status: 500 }, nextAttemptAt: T0 + i, countsAsAttempt: true }
          : { id: e.id, type: 'dead' as const, reason: 'http-status' as const, at: T0 + i },
    ));
    const before = store.stats();
    const beforePending = (await store.claim({ limit: 100, now: T0 + 100 })).events;
    await store.close();
    const copy = await newDir();
    await mkdir(copy, { recursive: true });
    for (const name of await readdir(dir)) if (name.startsWith('segment-')) await copyFile(join(dir, name), join(copy, name));
    const reopened = new FileStore({ dir: copy, segmentBytes: 4096 });
    await reopened.open();
    expect({ ...reopened.stats(), bytesOnDisk: 0, delivered: 0 }).toEqual({ ...before, claimed: 0, bytesOnDisk: 0, delivered: 0 });
    expect((await reopened.claim({ limit: 100, now: T0 + 100 })).events).toEqual(beforePending);
    await reopened.close();
  });

  for (const pin of ['tombstone', 'dead state'] as const) {
    it(`keeps a settled segment while it holds the ${pin} of an event in an older, live segment`, async () => {
      const dir = await newDir();
      const open = async (): Promise<FileStore> => {
        const store = new FileStore({ dir, segmentBytes: 4096 });
        await store.open();
        return store;
      };
      const body = new Uint8Array(2500);
      const ok = { at: T0, durationMs: 1, status: 200 };
      const store = await open();
      // Segment 1: e0, d, e1 (then full). Segment 2: e2, the outcome of e0 or d, e2's tombstone, e3.
      await store.append([makeEvent('e0', { body })]);
      await store.append([makeEvent('d', { body: new Uint8Array(10) })]);
      await store.append([makeEvent('e1', { body })]);
      await store.append([makeEvent('e2', { body })]);
      await store.claim({ limit: 10, now: T0 });
      if (pin === 'tombstone') await store.settle([{ id: 'e0', type: 'delivered', attempt: ok }]);
      else await store.settle([{ id: 'd', type: 'dead', reason: 'invalid', at: T0 }]);
      await store.settle([{ id: 'e2', type: 'delivered', attempt: ok }]);
      await store.append([makeEvent('e3', { body })]);
      await store.claim({ limit: 10, now: T0 });
      await store.settle([{ id: 'e3', type: 'delivered', attempt: ok }]);
      await store.append([makeEvent('e4', { body })]);
      expect((await readdir(dir)).filter((n) => n.startsWith('segment-'))).toHaveLength(3);
      await store.close();
      const reopened = await open();
      const pending = (await reopened.claim({ limit: 10, now: T0 })).events.map((e) => e.id);
      const dead = (await reopened.deadLetters()).map((d) => d.id);
      expect({ pending, dead }).toEqual(pin === 'tombstone' ? { pending: ['d', 'e1', 'e4'], dead: [] } : { pending: ['e0', 'e1', 'e4'], dead: ['d'] });
      await reopened.close();
    });
  }

  it('opens a format 2 directory as it was, writes only format 3 segments, and deletes the old ones once settled', async () => {
    const { dir, old } = await formatV2Dir();
    const A = 'http://127.0.0.1:9/a';
    const C = 'http://127.0.0.1:9/c';
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    expect(store.stats()).toMatchObject({ pending: 5, dead: 1, corrupt: 0, endpoints: { [A]: { pending: 3, dead: 1 }, [C]: { pending: 2, dead: 0 } } });
    await store.append([makeEvent('new', { url: A })]);
    const written = (await readdir(dir)).filter((n) => n.startsWith('segment-') && !old.includes(n));
    expect(written).toEqual(['segment-0000000004.log']);
    expect(readHeader(await readFile(join(dir, written[0] as string)), 4)).toMatchObject({ length: HEADER_BYTES });
    await store.close();

    const again = new FileStore({ dir, segmentBytes: 4096 });
    await again.open();
    const { events } = await again.claim({ limit: 20, now: T0 + 60_000 });
    const seen = events.map((e) => ({ id: e.id, url: e.url, attempts: e.attempts, statuses: e.history.map((h) => h.status) }));
    expect(seen.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: 'late', url: A, attempts: 0, statuses: [] },
      { id: 'moved', url: C, attempts: 0, statuses: [] },
      { id: 'new', url: A, attempts: 0, statuses: [] },
      { id: 'pending', url: A, attempts: 0, statuses: [] },
      { id: 'replayed', url: C, attempts: 0, statuses: [410] },
      { id: 'retried', url: A, attempts: 1, statuses: [503] },
    ]);
    expect(JSON.parse(Buffer.from(events.find((e) => e.id === 'pending')?.body as Uint8Array).toString())).toMatchObject({ id: 'pending' });
    expect((await again.deadLetters()).map((d) => ({ id: d.id, reason: d.reason, statuses: d.history.map((h) => h.status) }))).toEqual([
      { id: 'dead', reason: 'http-status', statuses: [410] },
    ]);
    await again.settle(events.map((e) => ({ id: e.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } })));
    expect(await again.purge()).toBe(1);
    await again.append([makeEvent('last')]);
    expect(again.stats()).toMatchObject({ pending: 1, dead: 0, corrupt: 0 });
    await again.close();
    const left = (await readdir(dir)).filter((n) => n.startsWith('segment-'));
    expect(left.some((n) => old.includes(n))).toBe(false);
  });

  it('leaves a format 2 segment kept at open by a full disk with the next append: a body there cannot forge records', async () => {
    const { dir } = await formatV2Dir();
    const newestV2 = join(dir, 'segment-0000000003.log');
    const before = (await stat(newestV2)).size;
    const fs = new FaultFs();
    fs.createFaults.push('ENOSPC');
    const store = new FileStore({ dir, fs });
    await store.open();
    expect(fs.createFaults).toEqual([]);
    // Unsalted frames for the fixture, whose first record ('pending') is right after a 16-byte header.
    await store.append([makeEvent('carrier', { body: Buffer.concat([Buffer.from('x'), forgedFrames(0, 16)]) })]);
    await store.append([makeEvent('after')]);
    await store.close();
    expect((await stat(newestV2)).size).toBe(before);
    // The segment id the failed creation took is not reused.
    const name = (await readdir(dir)).filter((n) => n.endsWith('.log')).sort().at(-1) as string;
    expect(name).toBe('segment-0000000005.log');
    const path = join(dir, name);
    const bytes = await readFile(path);
    expect(readHeader(bytes, 5)?.salt).toBeGreaterThan(0);
    bytes[HEADER_BYTES] = (bytes[HEADER_BYTES] as number) ^ 0x5a;
    await writeFile(path, bytes);
    const again = new FileStore({ dir });
    await again.open();
    const ids = (await again.claim({ limit: 50, now: T0 + 3_600_000 })).events.map((e) => e.id).sort();
    expect(ids).toEqual(['after', 'late', 'moved', 'pending', 'replayed', 'retried']);
    expect(again.stats().corrupt).toBe(1);
    await again.close();
  });

  it('counts a damaged header the same in inspect() as in open(), also in a segment shorter than a format 3 header', async () => {
    const { dir } = await formatV2Dir();
    // Segment 2 as a format 2 segment with no records (16 bytes) whose header rotted.
    const header = Buffer.from((await readFile(join(dir, 'segment-0000000002.log'))).subarray(0, 16));
    header[12] = (header[12] as number) ^ 0xff;
    await writeFile(join(dir, 'segment-0000000002.log'), header);
    const inspected = (await FileStore.inspect(dir)).stats.corrupt;
    const store = new FileStore({ dir });
    await store.open();
    expect(store.stats().corrupt).toBe(1);
    await store.close();
    expect(inspected).toBe(1);
  });
});

/** A copy of the format 2 fixture: segments 1-3 written by a version before format 3 (see its make.mjs). */
async function formatV2Dir(): Promise<{ dir: string; old: string[] }> {
  const fixture = new URL('fixtures/format-v2/', import.meta.url);
  const dir = await newDir();
  const old = (await readdir(fixture)).filter((n) => n.startsWith('segment-')).sort();
  expect(old).toHaveLength(3);
  for (const name of old) await copyFile(new URL(name, fixture), join(dir, name));
  return { dir, old };
}
