import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LowdbStore } from '../../src/store/lowdb.js';
import { describeStoreContract, makeEvent } from './contract.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('lowdb-store');

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

  it('rejects unknown options', () => {
    expect(() => new LowdbStore({ file: 'x.json', dir: 'y' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
