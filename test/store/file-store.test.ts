import { readdir, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { hashBytes } from '../../src/store/file/format.js';
import { describeStoreContract, makeEvent } from './contract.js';
import { FaultFs } from './fault-fs.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('file-store');
const T0 = 1_700_000_000_000;

describeStoreContract('FileStore', {
  durable: true,
  fresh: async (options) => {
    const dir = join(await newDir(), 'outbox');
    return { store: new FileStore({ dir, ...options }), reopen: () => new FileStore({ dir }) };
  },
});

describeStoreContract('FileStore (durability: write, tiny segments)', {
  durable: true,
  fresh: async (options) => {
    const dir = await newDir();
    // With maxBytes (4096 in the contract), the segment target follows from it: at most a quarter.
    const make = (): FileStore => new FileStore({ dir, durability: 'write', ...(options?.maxBytes === undefined ? { segmentBytes: 4096 } : options) });
    return { store: make(), reopen: make };
  },
});

describe('FileStore', () => {
  it('creates the directory 0700 and its files 0600', async () => {
    const dir = join(await newDir(), 'a', 'b');
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('e1')]);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const name of await readdir(dir)) expect((await stat(join(dir, name))).mode & 0o777, name).toBe(0o600);
    await store.close();
  });

  it('refuses a second open of the same directory in this process, and allows it after close', async () => {
    const dir = await newDir();
    const first = new FileStore({ dir });
    await first.open();
    const second = new FileStore({ dir });
    await expect(second.open()).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED', pid: process.pid });
    await first.close();
    const third = new FileStore({ dir });
    await third.open();
    await third.close();
  });

  it('lets only one of two concurrent opens, or an open through a symlink, have the directory', async () => {
    const dir = await newDir();
    const stores = [new FileStore({ dir }), new FileStore({ dir })];
    const opened = await Promise.allSettled(stores.map((store) => store.open()));
    expect(opened.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(opened.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'ERR_OUTBOX_LOCKED' } });
    const owner = stores[opened.findIndex((r) => r.status === 'fulfilled')] as FileStore;
    await owner.append([makeEvent('accepted')]);
    const link = `${dir}-link`;
    await symlink(dir, link);
    await expect(new FileStore({ dir: link }).open()).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED' });
    await owner.close();
    const reopened = new FileStore({ dir });
    await reopened.open();
    expect(reopened.stats().pending).toBe(1);
    await reopened.close();
    await rm(link);
  });

  it('rejects unknown and out-of-range options', () => {
    const bad = [
      { dir: '' },
      { dir: '/tmp/x', durability: 'sometimes' },
      { dir: '/tmp/x', fullPolicy: 'drop-oldest' },
      { dir: '/tmp/x', segmentBytes: 100 },
      { dir: '/tmp/x', maxBytes: 0 },
      { dir: '/tmp/x', maxBytes: 64 * 1024, segmentBytes: 16 * 1024 + 1 },
      { dir: '/tmp/x', colour: 'blue' },
    ];
    for (const options of bad) {
      expect(() => new FileStore(options as never), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
  });

  it('deletes a segment once every event in it is settled, and keeps segments holding dead letters', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    const body = new Uint8Array(900);
    for (let i = 0; i < 12; i++) await store.append([makeEvent(`e${i}`, { body })]);
    const segments = async (): Promise<string[]> => (await readdir(dir)).filter((name) => name.startsWith('segment-'));
    const before = await segments();
    expect(before.length).toBeGreaterThanOrEqual(3);
    const { events } = await store.claim({ limit: 100, now: T0 });
    await store.settle(events.map((e) => (e.id === 'e0' ? { id: e.id, type: 'dead' as const, reason: 'invalid' as const, at: T0 } : { id: e.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } })));
    const after = await segments();
    expect(after).toContain(before[0]);
    expect(after.length).toBeLessThan(before.length);
    await store.purge();
    await store.append([makeEvent('last', { body })]);
    await store.claim({ limit: 1, now: T0 });
    await store.settle([{ id: 'last', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    expect(await segments()).not.toContain(before[0]);
    await store.close();
    const reopened = new FileStore({ dir, segmentBytes: 4096 });
    await reopened.open();
    expect(reopened.stats()).toMatchObject({ pending: 0, dead: 0, corrupt: 0 });
    await reopened.close();
  });

  it('moves retry state forward so old segments are freed while an event keeps retrying', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    await store.append([makeEvent('stuck', { body: new Uint8Array(100) })]);
    let now = T0;
    for (let i = 0; i < 200; i++) {
      await store.claim({ limit: 1, now });
      now += 10;
      await store.settle([{ id: 'stuck', type: 'retry', attempt: { at: now, durationMs: 1, error: 'ECONNREFUSED' }, nextAttemptAt: now, countsAsAttempt: true }]);
    }
    const files = (await readdir(dir)).filter((name) => name.startsWith('segment-'));
    expect(files.length).toBeLessThanOrEqual(3);
    await store.close();
    const reopened = new FileStore({ dir, segmentBytes: 4096 });
    await reopened.open();
    const { events } = await reopened.claim({ limit: 1, now });
    expect(events[0]).toMatchObject({ id: 'stuck', attempts: 200 });
    expect(events[0]?.history).toHaveLength(10);
    await reopened.close();
  });

  it('tells apart two ids whose hashes collide, before and after a reopen, and still skips a real duplicate', async () => {
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined; i++) {
      const id = `evt_${i}`;
      const hash = hashBytes(Buffer.from(id), 0, id.length);
      const other = seen.get(hash);
      if (other === undefined) seen.set(hash, id);
      else pair = [other, id];
    }
    const [a, b] = pair;
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent(a)]);
    await store.append([makeEvent(b), makeEvent(a, { url: 'http://127.0.0.1:1/other' })]);
    expect(store.stats().pending).toBe(2);
    await store.close();
    const reopened = new FileStore({ dir });
    await reopened.open();
    await reopened.append([makeEvent(b), makeEvent(a)]);
    const { events } = await reopened.claim({ limit: 10, now: T0 });
    expect(events.map((e) => [e.id, e.url])).toEqual([[a, 'http://127.0.0.1:1/a'], [b, 'http://127.0.0.1:1/a']]);
    await reopened.settle([{ id: a, type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    await reopened.append([makeEvent(a, { url: 'http://127.0.0.1:1/again' })]);
    expect(reopened.stats().pending).toBe(2);
    await reopened.close();
  });

  it('writes one copy when the same id is appended twice at once, and both calls resolve once it is durable', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await Promise.all([store.append([makeEvent('twice')]), store.append([makeEvent('twice'), makeEvent('other')])]);
    expect(store.stats().pending).toBe(2);
    await store.close();
    const reopened = new FileStore({ dir });
    await reopened.open();
    expect((await reopened.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['twice', 'other']);
    await reopened.close();
  });

  it('appends a batch whose ids the caller vouches for (newIds) into the same id set: a later duplicate is still skipped', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, maxBytes: 64 * 1024 });
    await store.open();
    await store.append([makeEvent('fresh-1'), makeEvent('fresh-2')], { newIds: true });
    await store.append([makeEvent('fresh-1', { url: 'http://127.0.0.1:1/other' })]);
    expect(store.stats().pending).toBe(2);
    const big = makeEvent('too-big', { body: new Uint8Array(64 * 1024) });
    await expect(store.append([big], { newIds: true })).rejects.toMatchObject({ code: 'ERR_OUTBOX_FULL' });
    await store.close();
    const reopened = new FileStore({ dir });
    await reopened.open();
    await reopened.append([makeEvent('fresh-2', { url: 'http://127.0.0.1:1/other' })]);
    const { events } = await reopened.claim({ limit: 10, now: T0 });
    expect(events.map((e) => [e.id, e.url])).toEqual([['fresh-1', 'http://127.0.0.1:1/a'], ['fresh-2', 'http://127.0.0.1:1/a']]);
    await reopened.close();
  });

  it('lets another reader inspect a directory it does not own, without changing it', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('p1'), makeEvent('d1')]);
    await store.claim({ limit: 10, now: T0 });
    await store.settle([{ id: 'd1', type: 'dead', reason: 'http-status', attempt: { at: T0, durationMs: 2, status: 410 }, at: T0 + 1 }]);
    const seen = await FileStore.inspect(dir);
    expect(seen.ownerPid).toBe(process.pid);
    expect(seen.stats).toMatchObject({ pending: 1, dead: 1, corrupt: 0 });
    expect(seen.deadLetters.map((d) => [d.id, d.reason])).toEqual([['d1', 'http-status']]);
    await store.append([makeEvent('p2')]);
    await store.close();
    const after = await FileStore.inspect(dir);
    expect(after.ownerPid).toBeUndefined();
    expect(after.stats.pending).toBe(2);
  });
});

async function backlog(n: number, options: { durability?: 'write' | 'fsync'; fs?: FaultFs } = {}): Promise<{ dir: string; store: FileStore }> {
  const dir = await newDir();
  const first = new FileStore({ dir, durability: 'write' });
  await first.open();
  await first.append(Array.from({ length: n }, (_, i) => makeEvent(`p${i}`, { nextAttemptAt: T0 + 1e9 })));
  await first.close();
  // Reopened: the segments are cold (read through the thread pool), as after a restart.
  const store = new FileStore({ dir, durability: options.durability ?? 'write', ...(options.fs === undefined ? {} : { fs: options.fs }) });
  await store.open();
  return { dir, store };
}

describe('FileStore.moveEndpoint', () => {
  const FROM = 'http://127.0.0.1:1/a';
  const TO = 'http://127.0.0.1:2/moved-here';

  it('keeps a dead letter that a purge races during a move of more than one batch (1024) consistent', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, durability: 'write' });
    await store.open();
    // 1024 pending events (the first batch), then one dead letter (in the second batch).
    const pending = Array.from({ length: 1024 }, (_, i) => makeEvent(`p${i}`, { nextAttemptAt: T0 + 1e9 }));
    await store.append(pending);
    await store.append([makeEvent('dead1')]);
    expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['dead1']);
    await store.settle([{ id: 'dead1', type: 'dead', reason: 'invalid', at: T0 }]);
    const moving = store.moveEndpoint(FROM, TO, T0);
    // The move holds every event it takes until it is written: a purge meanwhile skips it (count 0).
    expect(await store.purge(['dead1'])).toBe(0);
    expect(await moving).toBe(1025);
    expect(store.stats()).toMatchObject({ pending: 1024, dead: 1, endpoints: { [TO]: { pending: 1024, dead: 1 } } });
    expect((await store.deadLetters()).map((d) => [d.id, d.url])).toEqual([['dead1', TO]]);
    expect(await store.purge(['dead1'])).toBe(1);
    await store.append([makeEvent('later', { url: TO })]);
    const claimed = (await store.claim({ limit: 2000, now: T0 + 2e9 })).events.map((e) => e.id);
    expect(claimed).toHaveLength(1025);
    expect(claimed).not.toContain('dead1');
    expect(store.stats()).toMatchObject({ pending: 1025, claimed: 1025, dead: 0, endpoints: { [TO]: { pending: 1025, dead: 0 } } });
    await store.close();
  });

  for (const durability of ['write', 'fsync'] as const) {
    it(`close() during a move of more than one batch (${durability}): the move resolves or rejects with ERR_OUTBOX_CLOSED, reopen finds every event once`, async () => {
      const { dir, store } = await backlog(3000, { durability });
      const moving = store.moveEndpoint(FROM, TO, T0);
      await new Promise((r) => setImmediate(r));
      const closing = store.close();
      const [moved, closed] = await Promise.allSettled([moving, closing]);
      expect(closed.status).toBe('fulfilled');
      if (moved.status === 'rejected') expect(moved.reason).toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
      const reopened = new FileStore({ dir, durability: 'write' });
      await reopened.open();
      expect(reopened.stats()).toMatchObject({ pending: 3000, corrupt: 0 });
      await reopened.close();
    });
  }

  it('a write that fails in the second batch gives the rest back: every event claimable once, counters right', async () => {
    const fs = new FaultFs();
    const { store } = await backlog(3000, { fs });
    fs.writeFaults.push({ code: 'EIO', partial: 0 });
    // First batch written, second fails.
    const moving = store.moveEndpoint(FROM, TO, T0);
    // Let the first batch through: fault only the second write.
    fs.writeFaults.length = 0;
    const original = fs.write.bind(fs);
    let writes = 0;
    fs.write = (fd, data, position) => {
      writes++;
      if (writes === 2) throw Object.assign(new Error('EIO injected'), { code: 'EIO' });
      return original(fd, data, position);
    };
    await expect(moving).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats()).toMatchObject({ pending: 3000, claimed: 0, endpoints: { [FROM]: { pending: 3000 - 1024 }, [TO]: { pending: 1024 } } });
    const claimed = (await store.claim({ limit: 5000, now: T0 + 2e9 })).events;
    expect(claimed).toHaveLength(3000);
    expect(new Set(claimed.map((e) => e.id)).size).toBe(3000);
    expect(claimed.filter((e) => e.url === TO)).toHaveLength(1024);
    // A second move takes the rest.
    await store.settle(claimed.map((e) => ({ id: e.id, type: 'release' as const })));
    expect(await store.moveEndpoint(FROM, TO, T0)).toBe(3000 - 1024);
    expect(store.stats()).toMatchObject({ pending: 3000, endpoints: { [TO]: { pending: 3000 } } });
    expect(store.stats().endpoints[FROM]).toBeUndefined();
    await store.close();
  });
});
