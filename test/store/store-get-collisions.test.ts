import { afterEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { hashText } from '../../src/store/file/format.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Outbox } from '../../src/outbox.js';
import type { NewEvent } from '../../src/store/store.js';
import { tempDirs } from './temp-dir.js';

const T0 = 1_700_000_000_000;
const tempDir = tempDirs('rev-find3');
const ev = (id: string, url = 'http://127.0.0.1:1/a'): NewEvent => ({ id, url, headers: {}, body: new TextEncoder().encode(`{"id":"${id}"}`), createdAt: T0, nextAttemptAt: T0 });

function collidingIds(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const id = `evt_${i}`;
    const other = seen.get(hashText(id));
    if (other !== undefined) return [other, id];
    seen.set(hashText(id), id);
  }
}

const stores: FileStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => undefined)));
});

describe('FileStore.get with ids that share a hash', () => {
  it('tells apart two ids with the same hash, pending, claimed and dead, across a reopen', async () => {
    const [a, b] = collidingIds();
    expect(hashText(a)).toBe(hashText(b));
    const dir = await tempDir();
    const store = new FileStore({ dir, durability: 'write' });
    await store.open();
    stores.push(store);
    await store.append([ev(a, 'http://127.0.0.1:1/a'), ev(b, 'http://127.0.0.1:1/b')]);
    expect((await store.get(a))?.url).toBe('http://127.0.0.1:1/a');
    expect((await store.get(b))?.url).toBe('http://127.0.0.1:1/b');
    await store.claim({ limit: 1, now: T0, endpoint: 'http://127.0.0.1:1/a' });
    expect((await store.get(a))?.state).toBe('claimed');
    expect((await store.get(b))?.state).toBe('pending');
    await store.settle([{ id: a, type: 'dead', reason: 'http-status', at: T0 + 1, attempt: { at: T0, durationMs: 1, status: 400, error: 'HTTP 400' } }]);
    await store.close();
    const again = new FileStore({ dir, durability: 'write' });
    await again.open();
    stores.push(again);
    expect(await again.get(a)).toMatchObject({ id: a, state: 'dead', reason: 'http-status' });
    expect(await again.get(b)).toMatchObject({ id: b, state: 'pending', url: 'http://127.0.0.1:1/b' });
    expect(await again.get(`${a}x`)).toBeUndefined();
  });

  it('Outbox.find rejects odd ids cleanly and answers undefined for unknown long ids', async () => {
    const outbox = await Outbox.open({ store: new MemoryStore() });
    try {
      await expect(outbox.find('')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      await expect(outbox.find(42 as unknown as string)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      expect(await outbox.find('x'.repeat(100_000))).toBeUndefined();
      expect(await outbox.find('evt_\u001b[2J')).toBeUndefined();
    } finally {
      await outbox.close();
    }
    await expect(outbox.find('evt_1')).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
  });
});
