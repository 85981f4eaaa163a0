import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { LowdbStore } from '../../src/store/lowdb.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { AttemptRecord, OutboxStore } from '../../src/store/store.js';
import { makeEvent } from './contract.js';
import { tempDirs } from './temp-dir.js';

const T0 = 1_700_000_000_000;
const A = 'http://127.0.0.1:1/a';
const B = 'http://127.0.0.1:1/b';
const C = 'http://127.0.0.1:2/moved-here';
const tempDir = tempDirs('supersede-supersede');

const kinds: { name: string; make(): Promise<OutboxStore> }[] = [
  { name: 'MemoryStore', make: async () => new MemoryStore() },
  { name: 'FileStore', make: async () => new FileStore({ dir: await tempDir() }) },
  { name: 'LowdbStore', make: async () => new LowdbStore({ file: join(await tempDir(), 'outbox.json') }) },
];

function attempt(n: number, status = 503): AttemptRecord {
  return { at: T0 + n, durationMs: 5, status, error: `HTTP ${status}` };
}

describe.each(kinds)('supersede across URLs ($name)', (kind) => {
  it('an event to URL A is not superseded by a later superseding event of its key to URL B (fan-out: A must get its latest state)', async () => {
    const store = await kind.make();
    await store.open();
    try {
      const S = { orderingKey: 'customer-42', supersede: true };
      // The same state change fanned out to two receivers, with one key (docs/03: the key is per outbox, whatever the URL).
      await store.append([makeEvent('a1', { ...S, url: A }), makeEvent('b1', { ...S, url: B })]);
      const claimed = (await store.claim({ limit: 10, now: T0 })).events.map((e) => [e.id, e.url, e.supersededBy]);
      // a1 is A's latest (only) state: it must be sent, not removed because b1 goes to B.
      expect(claimed).toEqual([['a1', A, undefined]]);
    } finally {
      await store.close();
    }
  });

  it('a superseder replayed to another URL does not make the original URL lose its events', async () => {
    const store = await kind.make();
    await store.open();
    try {
      const K = { orderingKey: 'k', url: A };
      const S = { orderingKey: 'k', supersede: true, url: A };
      await store.append([makeEvent('e1', K)]);
      expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['e1']);
      await store.settle([{ id: 'e1', type: 'dead', reason: 'http-status', attempt: attempt(1, 410), at: T0 + 1 }]);
      await store.append([makeEvent('s2', S)]);
      expect((await store.claim({ limit: 10, now: T0 + 1 })).events.map((e) => e.id)).toEqual(['s2']);
      await store.settle([{ id: 's2', type: 'dead', reason: 'http-status', attempt: attempt(2, 410), at: T0 + 2 }]);
      // s2 now goes to C from now on; e1 still goes to A.
      expect(await store.replay(['s2'], T0 + 3, C)).toBe(1);
      expect(await store.replay(['e1'], T0 + 3)).toBe(1);
      const claimed = (await store.claim({ limit: 10, now: T0 + 3 })).events.map((e) => [e.id, e.url, e.supersededBy]);
      // e1 is the only state A has: it is not replaced by anything A will receive.
      expect(claimed).toEqual([['e1', A, undefined]]);
    } finally {
      await store.close();
    }
  });
});
