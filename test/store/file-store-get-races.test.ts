import { readdir } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { nodeFileSystem } from '../../src/store/file/file-system.js';
import type { FileSystem } from '../../src/store/file/file-system.js';
import type { NewEvent } from '../../src/store/store.js';
import { tempDirs } from './temp-dir.js';

const T0 = 1_700_000_000_000;
const tempDir = tempDirs('file-store-get');

function ev(id: string, url: string, text: string): NewEvent {
  return { id, url, headers: { 'content-type': 'application/json' }, body: new TextEncoder().encode(text), createdAt: T0, nextAttemptAt: T0 };
}

/**
 * node:fs with a gate: the `block`-th async read (1-based, counted from `arm()`) waits for `release()`,
 * having read its bytes already (`after`: what was on disk when get() asked) or not yet (`before`: on
 * whatever its descriptor is by then).
 */
function gatedFs(when: 'after' | 'before' = 'after'): { fs: FileSystem; arm(block: number): void; release(): void; blocked: Promise<void> } {
  let count = -1;
  let blockAt = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let reached!: () => void;
  const blocked = new Promise<void>((r) => (reached = r));
  const fs: FileSystem = {
    ...nodeFileSystem,
    async read(fd, buffer, offset, length, position) {
      if (count >= 0) {
        count++;
        if (count === blockAt && when === 'after') {
          const n = await nodeFileSystem.read(fd, buffer, offset, length, position);
          reached();
          await gate;
          return n;
        }
        if (count === blockAt) {
          reached();
          await gate;
        }
      }
      return nodeFileSystem.read(fd, buffer, offset, length, position);
    },
  };
  return { fs, arm: (block) => { count = 0; blockAt = block; }, release: () => open(), blocked };
}

const stores: FileStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => undefined)));
});

/** A store written with `batches` (one append each), closed, and opened again through `fs`; and its directory. */
async function reopened(batches: NewEvent[][] | NewEvent[], fs: FileSystem, segmentBytes?: number): Promise<{ store: FileStore; dir: string }> {
  const dir = await tempDir();
  const options = segmentBytes === undefined ? { dir, durability: 'write' as const } : { dir, durability: 'write' as const, segmentBytes };
  const first = new FileStore(options);
  await first.open();
  for (const batch of Array.isArray(batches[0]) ? (batches as NewEvent[][]) : [batches as NewEvent[]]) await first.append(batch);
  await first.close();
  const store = new FileStore({ ...options, fs });
  await store.open();
  stores.push(store);
  return { store, dir };
}

describe('FileStore.get under concurrency', () => {
  it('does not answer a delivered event as pending when its slot is reused by a new event during the read', async () => {
    // Reopened: evt_A's segment was found at open, so it is read asynchronously (a cold read).
    const gated = gatedFs();
    const { store } = await reopened([ev('evt_A', 'http://127.0.0.1:1/customer-a', '{"for":"A"}')], gated.fs);

    gated.arm(2); // read 1: #slotOf's id check; read 2: get()'s own read of the record
    const found = store.get('evt_A');
    await gated.blocked;

    // Meanwhile the flusher delivers evt_A and the app enqueues evt_B, which takes the freed slot.
    const { events } = await store.claim({ limit: 10, now: T0 });
    expect(events.map((e) => e.id)).toEqual(['evt_A']);
    await store.settle([{ id: 'evt_A', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    await store.append([ev('evt_B', 'http://127.0.0.1:1/customer-b', '{"for":"B"}')]);

    gated.release();
    const answer = await found;
    // Delivered before get() answered: it must be undefined (or at least not a chimera of A and B).
    expect(await store.get('evt_A')).toBeUndefined();
    expect(answer === undefined ? undefined : { id: answer.id, state: answer.state, url: answer.url }).toBeUndefined();
  });

  it('claimed event: a get() racing delivery + reuse of the slot by a claimed event answers the old id as claimed', async () => {
    const gated = gatedFs();
    const { store } = await reopened([ev('evt_A', 'http://127.0.0.1:1/customer-a', '{"for":"A"}')], gated.fs);
    await store.claim({ limit: 10, now: T0 });

    gated.arm(1); // claimed: found by name, get()'s read is the first
    const found = store.get('evt_A');
    await gated.blocked;
    await store.settle([{ id: 'evt_A', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    await store.append([ev('evt_B', 'http://127.0.0.1:1/customer-b', '{"for":"B"}')]);
    await store.claim({ limit: 10, now: T0 });
    gated.release();
    const answer = await found;
    expect(answer === undefined ? undefined : { id: answer.id, state: answer.state, url: answer.url }).toBeUndefined();
  });

  it('answers undefined (delivered), not ERR_STORE_IO, when the event is delivered and its segment deleted during the read', async () => {
    const gated = gatedFs('before');
    // evt_A fills segment 1 alone; evt_D goes to segment 2.
    const { store, dir } = await reopened([[ev('evt_A', 'http://127.0.0.1:1/a', JSON.stringify({ pad: 'a'.repeat(5000) }))], [ev('evt_D', 'http://127.0.0.1:1/a', '{"d":1}')]], gated.fs, 4096);
    gated.arm(2);
    const found = store.get('evt_A').then(
      (value) => ({ value }),
      (error: unknown) => ({ error: String((error as { code?: string }).code) + ' ' + String(error) }),
    );
    await gated.blocked;
    expect((await store.claim({ limit: 1, now: T0 })).events.map((e) => e.id)).toEqual(['evt_A']);
    await store.settle([{ id: 'evt_A', type: 'delivered', attempt: { at: T0, durationMs: 1, status: 200 } }]);
    // The writer reclaims segment 1 (it held nothing else): deleted, its descriptor closed.
    for (let i = 0; i < 50 && (await readdir(dir)).includes('segment-0000000001.log'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await readdir(dir)).not.toContain('segment-0000000001.log');
    gated.release();
    expect(await found).toEqual({ value: undefined });
  });
});
