import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { Outbox } from '../src/outbox.js';
import { FileStore } from '../src/store/file/file-store.js';
import { frameLength, HEADER_BYTES } from '../src/store/file/format.js';
import { LowdbStore } from '../src/store/lowdb.js';
import { MemoryStore } from '../src/store/memory.js';
import type { OutboxStore } from '../src/store/store.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { Transport } from '../src/transport/transport.js';
import { closedAfterEach, waitFor } from './outbox-helpers.js';
import { makeEvent } from './store/contract.js';
import { tempDirs } from './store/temp-dir.js';

/** Ordering keys end to end: the flusher must hear of every way a key's next event becomes free. */
const tempDir = tempDirs('outbox-ordering');
const opened = closedAfterEach();

interface Kind {
  name: string;
  /** A store, and a function opening the same data again. */
  make(): Promise<{ store: OutboxStore; again: () => OutboxStore }>;
}

const durable: Kind[] = [
  {
    name: 'FileStore',
    make: async () => {
      const dir = await tempDir();
      return { store: new FileStore({ dir }), again: () => new FileStore({ dir }) };
    },
  },
  {
    name: 'LowdbStore',
    make: async () => {
      const file = join(await tempDir(), 'outbox.json');
      return { store: new LowdbStore({ file }), again: () => new LowdbStore({ file }) };
    },
  },
];
const kinds: Kind[] = [{ name: 'MemoryStore', make: async () => ({ store: new MemoryStore(), again: () => new MemoryStore() }) }, ...durable];

describe.each(kinds)('Ordering keys in the outbox ($name)', (kind) => {
  it('sends the next event of a key once the one before died of old age while it waited', async () => {
    // A clock of our own: the ages are exact, however slow the machine.
    const clock = new FakeClock(Date.now());
    const sent: string[] = [];
    let answerA: ((status: number) => void) | undefined;
    const transport: Transport = {
      send: (request) => {
        const id = request.headers['webhook-id'] as string;
        sent.push(id);
        if (id !== 'a') return Promise.resolve({ status: 200, headers: {}, bodyExcerpt: '' });
        return new Promise((resolve) => (answerA = (status) => resolve({ status, headers: {}, bodyExcerpt: '' })));
      },
    };
    const { store } = await kind.make();
    const box = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:9/hook', transport, clock, retry: { maxAgeMs: 1_000 } }));
    await box.enqueue({ id: 'a', orderingKey: 'K', body: 1 });
    await box.enqueue({ id: 'b', orderingKey: 'K', body: 2 });
    await waitFor(() => answerA !== undefined, 5_000, 'a sent');
    // While a is out, b grows older than maxAgeMs; c comes late and is young.
    clock.advance(1_500);
    await box.enqueue({ id: 'c', orderingKey: 'K', body: 3 });
    answerA?.(400);
    await box.drain({ timeoutMs: 5_000 });
    expect(sent).toEqual(['a', 'c']);
    expect((await box.deadLetters()).map((l) => [l.id, l.reason])).toEqual([
      ['a', 'http-status'],
      ['b', 'max-age'],
    ]);
    expect(box.stats()).toMatchObject({ pending: 0, delivered: 1, dead: 2 });
    // drain() waits on the fake clock: if c were never sent, the test's own timeout ends it.
  }, 15_000);
});

describe.each(durable)('Ordering keys in the outbox after a restart ($name)', (kind) => {
  it('sends the next event of a key after a restart that finds the first one too old', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const { store, again } = await kind.make();
    const now = Date.now();
    await store.open();
    await store.append([
      makeEvent('k1', { url: rx.url, orderingKey: 'K', createdAt: now - 600_000, nextAttemptAt: now - 600_000 }),
      makeEvent('k2', { url: rx.url, orderingKey: 'K', createdAt: now, nextAttemptAt: now }),
    ]);
    await store.close();
    const box = (opened.outbox = await Outbox.open({ store: again(), url: rx.url, retry: { maxAgeMs: 60_000 } }));
    // Nothing else is pending: only the burial of k1 can lead to k2.
    await waitFor(() => rx.deliveredIds().has('k2') && box.stats().pending === 0, 5_000, 'k2 delivered');
    expect(box.stats()).toMatchObject({ pending: 0, dead: 1 });
  }, 15_000);
});

describe('Ordering keys in the outbox (FileStore, damaged record)', () => {
  it('sends the next event of a key once the first turned out corrupt when read and was dropped', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const dir = await tempDir();
    const now = Date.now();
    const fill = new FileStore({ dir, segmentBytes: 4096 });
    await fill.open();
    const K = { url: rx.url, orderingKey: 'K', createdAt: now, nextAttemptAt: now };
    await fill.append([makeEvent('k1', { ...K, body: new Uint8Array(3000).fill(7) }), makeEvent('k2', { ...K, body: new Uint8Array(3000).fill(8) })]);
    // A later segment, so that k1's payload is checked when read back rather than at open.
    await fill.append([makeEvent('filler', { url: 'http://127.0.0.1:9/x', createdAt: now, nextAttemptAt: now })]);
    await fill.claim({ limit: 10, now, endpoint: 'http://127.0.0.1:9/x' });
    await fill.settle([{ id: 'filler', type: 'dead', reason: 'invalid', at: now }]);
    await fill.close();
    const first = (await readdir(dir)).filter((n) => n.startsWith('segment-')).sort()[0] as string;
    const bytes = await readFile(join(dir, first));
    const end = HEADER_BYTES + frameLength(bytes, HEADER_BYTES);
    bytes[end - 10] = (bytes[end - 10] as number) ^ 0x5a;
    await writeFile(join(dir, first), bytes);

    const box = (opened.outbox = await Outbox.open({ store: new FileStore({ dir, segmentBytes: 4096 }), url: rx.url }));
    await waitFor(() => rx.deliveredIds().has('k2') && box.stats().pending === 0, 5_000, 'k2 delivered');
    expect(box.stats()).toMatchObject({ corrupt: 1, pending: 0 });
    expect(rx.requests.map((r) => r.id)).toEqual(['k2']);
  }, 15_000);
});
