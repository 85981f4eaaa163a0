import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { LowdbStore } from '../../src/store/lowdb.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { NewEvent, OutboxStore } from '../../src/store/store.js';
import { A, B, flush, setup } from './flusher-harness.js';
import { tempDirs } from '../store/temp-dir.js';

/** The sweep of a gone URL on every built-in store: ordering keys, batch edges, nothing sent. */
const newDir = tempDirs('flusher-gone-stores');
const HOUR = 3_600_000;

function ev(id: string, url: string, now: number, extra: Partial<NewEvent> = {}): NewEvent {
  return { id, url, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now, ...extra };
}

const stores: [string, () => Promise<OutboxStore>][] = [
  ['MemoryStore', async () => new MemoryStore()],
  ['FileStore', async () => new FileStore({ dir: await newDir(), durability: 'write' })],
  ['LowdbStore', async () => new LowdbStore({ file: join(await newDir(), 'db.json') })],
];

describe.each(stores)('sweep of a gone URL over %s', (_name, make) => {
  it.each([255, 256, 257, 600])('buries %i events waiting for a retry at once, keyed ones included; nothing sent, nothing else touched', async (waiting) => {
    const store = await make();
    await store.open();
    const t = await setup({ store, concurrency: 1 });
    const now = t.clock.now();
    await store.append([ev('g', A, now)]);
    await store.append(Array.from({ length: waiting }, (_, i) => ev(`w${i}`, A, now, { nextAttemptAt: now + HOUR })));
    // A key whose head waits for a retry, its followers behind it.
    await store.append([ev('k0', A, now, { orderingKey: 'K', nextAttemptAt: now + HOUR }), ev('k1', A, now, { orderingKey: 'K' }), ev('k2', A, now, { orderingKey: 'K' })]);
    await store.append(Array.from({ length: 5 }, (_, i) => ev(`b${i}`, B, now, { nextAttemptAt: now + HOUR })));
    t.flusher.start();
    await flush();
    const first = t.calls.find((c) => c.event.id === 'g');
    expect(first).toBeDefined();
    first?.answer(410);
    const total = 1 + waiting + 3;
    for (let i = 0; i < 3_000 && (store.stats().endpoints[A]?.dead ?? 0) < total; i++) await flush();
    expect(store.stats().endpoints[A]).toMatchObject({ pending: 0, dead: total });
    expect(store.stats().endpoints[B]).toMatchObject({ pending: 5, dead: 0 });
    expect(t.calls.map((c) => c.event.id)).toEqual(['g']);
    await t.flusher.stop(0);
    await store.close();
  });
});
