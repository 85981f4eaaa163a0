import { readdir } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { nodeFileSystem } from '../../src/store/file/file-system.js';
import type { FileSystem } from '../../src/store/file/file-system.js';
import type { NewEvent } from '../../src/store/store.js';
import { tempDirs } from './temp-dir.js';

const T0 = 1_700_000_000_000;
const tempDir = tempDirs('rev-find2');
const ev = (id: string, text: string): NewEvent => ({ id, url: 'http://127.0.0.1:1/a', headers: {}, body: new TextEncoder().encode(text), createdAt: T0, nextAttemptAt: T0 });

const stores: FileStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => undefined)));
});

describe('FileStore.get while the segment it reads is reclaimed', () => {
  it('answers undefined (delivered), not ERR_STORE_IO, when the event is delivered and its segment deleted during the read', async () => {
    const dir = await tempDir();
    const first = new FileStore({ dir, durability: 'write', segmentBytes: 4096 });
    await first.open();
    await first.append([ev('evt_A', JSON.stringify({ pad: 'a'.repeat(5000) }))]); // fills segment 1 alone
    await first.append([ev('evt_D', '{"d":1}')]); // segment 2
    await first.close();

    let armed = -1;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const blocked = new Promise<void>((r) => (reached = r));
    const fs: FileSystem = {
      ...nodeFileSystem,
      async read(fd, buffer, offset, length, position) {
        if (armed >= 0 && ++armed === 2) {
          reached();
          await gate; // the read is issued after the wait: on whatever the descriptor is by then
        }
        return nodeFileSystem.read(fd, buffer, offset, length, position);
      },
    };
    const store = new FileStore({ dir, durability: 'write', fs, segmentBytes: 4096 });
    await store.open();
    stores.push(store);

    armed = 0;
    const found = store.get('evt_A').then(
      (value) => ({ value }),
      (error: unknown) => ({ error: String((error as { code?: string }).code) + ' ' + String(error) }),
    );
    await blocked;
    expect((await store.claim({ limit: 1, now: T0 })).events.map((e) => e.id)).toEqual(['evt_A']);
    await store.settle([{ id: 'evt_A', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    // The writer reclaims segment 1 (it held nothing else): deleted, its descriptor closed.
    for (let i = 0; i < 50 && (await readdir(dir)).includes('segment-0000000001.log'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await readdir(dir)).not.toContain('segment-0000000001.log');
    release();
    expect(await found).toEqual({ value: undefined });
  });
});
