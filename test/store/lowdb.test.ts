import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Low } from 'lowdb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LowdbStore } from '../../src/store/lowdb.js';
import { describeStoreContract, makeEvent } from './contract.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('lowdb-store');

afterEach(() => {
  vi.restoreAllMocks();
});

describeStoreContract('LowdbStore', {
  durable: true,
  fresh: async (options) => {
    const file = join(await newDir(), 'outbox.json');
    return { store: new LowdbStore({ file, ...options }), reopen: () => new LowdbStore({ file }) };
  },
});

describe('LowdbStore', () => {
  it('keeps a human-readable JSON file with base64 bodies, even when NODE_ENV=test', async () => {
    expect(process.env.NODE_ENV).toBe('test');
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('e1', { body: new TextEncoder().encode('{"hello":1}') })]);
    const document = JSON.parse(await readFile(file, 'utf8')) as { pending: { id: string; body: string }[] };
    expect(document.pending.map((e) => [e.id, Buffer.from(e.body, 'base64').toString()])).toEqual([['e1', '{"hello":1}']]);
    expect(store.stats().bytesOnDisk).toBe((await readFile(file)).length);
    await store.close();
  });

  it('fails to open a file that is not JSON, with ERR_STORE_IO, and leaves it alone', async () => {
    const file = join(await newDir(), 'outbox.json');
    await writeFile(file, '{ not json');
    await expect(new LowdbStore({ file }).open()).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(await readFile(file, 'utf8')).toBe('{ not json');
  });

  it('rejects a write it cannot make with ERR_STORE_IO and keeps the previous state', async () => {
    const dir = await newDir();
    const store = new LowdbStore({ file: join(dir, 'missing', 'outbox.json') });
    await store.open();
    await expect(store.append([makeEvent('e1')])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats().pending).toBe(0);
    await store.close();
  });

  it('writes concurrent changes together, and each caller resolves once its change is in the file', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    const writes = vi.spyOn(Low.prototype, 'write');
    const ids = Array.from({ length: 50 }, (_, i) => `e${i}`);
    await Promise.all(
      ids.map(async (id) => {
        await store.append([makeEvent(id)]);
        const document = JSON.parse(await readFile(file, 'utf8')) as { pending: { id: string }[] };
        expect(document.pending.map((e) => e.id)).toContain(id);
      }),
    );
    expect(writes.mock.calls.length).toBeLessThanOrEqual(2);
    expect(store.stats().bytesOnDisk).toBe((await readFile(file)).length);
    await store.close();
    const reopened = new LowdbStore({ file });
    await reopened.open();
    expect(reopened.stats().pending).toBe(50);
    await reopened.close();
  });

  it('after a failed write, undoes and rejects every change the file does not hold, queued ones included', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('kept')]);
    let fail!: (error: Error) => void;
    const write = vi.spyOn(Low.prototype, 'write').mockImplementationOnce(
      () => new Promise<void>((_resolve, reject) => (fail = reject)),
    );
    const inWrite = store.append([makeEvent('in-write')]);
    await vi.waitFor(() => expect(write).toHaveBeenCalledTimes(1));
    // Made while the failing write is in progress: queued for the next one.
    const queued = store.append([makeEvent('queued')]);
    expect(store.stats().pending).toBe(3);
    fail(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    await expect(inWrite).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    await expect(queued).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats().pending).toBe(1);
    expect((await store.claim({ now: Date.now() + 1e12, limit: 10 })).events.map((e) => e.id)).toEqual(['kept']);
    // Writes work again afterwards.
    await store.append([makeEvent('later')]);
    await store.close();
    const reopened = new LowdbStore({ file });
    await reopened.open();
    expect((await reopened.claim({ now: Date.now() + 1e12, limit: 10 })).events.map((e) => e.id).sort()).toEqual(['kept', 'later']);
    await reopened.close();
  });

  it('rejects unknown options', () => {
    expect(() => new LowdbStore({ file: 'x.json', dir: 'y' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
