import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SupersededEvent } from '../src/delivery/flusher.js';
import { Outbox } from '../src/outbox.js';
import { createSender } from '../src/sender.js';
import { FileStore } from '../src/store/file/file-store.js';
import { LowdbStore } from '../src/store/lowdb.js';
import { MemoryStore } from '../src/store/memory.js';
import type { OutboxStore } from '../src/store/store.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { closedAfterEach, FAST_RETRY, waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';
import { delegatingStore } from './store/delegating-store.js';

/** Latest state wins end to end: a receiver's outage, then only the latest state of a superseding key. */
const tempDir = tempDirs('outbox-supersede');
const opened = closedAfterEach();

const kinds: { name: string; make(): Promise<OutboxStore> }[] = [
  { name: 'MemoryStore', make: async () => new MemoryStore() },
  { name: 'FileStore', make: async () => new FileStore({ dir: await tempDir() }) },
  { name: 'LowdbStore', make: async () => new LowdbStore({ file: join(await tempDir(), 'outbox.json') }) },
];

const UPDATES = 50;

describe.each(kinds)('Superseding events in the outbox ($name)', (kind) => {
  it('after an outage sends a superseding key only what was in flight plus the latest, in order, and another key all of it', async () => {
    let outage = true;
    /** Ids the receiver saw while it was down. */
    const seenInOutage = new Set<string>();
    const rx = (opened.receiver = await startFlakyReceiver({
      script: (request) => {
        if (!outage) return 200;
        seenInOutage.add(request.id as string);
        return 503;
      },
    }));
    // The store, watched: which events it handed out to be sent (not marked superseded) during the outage.
    const inner = await kind.make();
    const handedOut = new Set<string>();
    const store = delegatingStore(inner, {
      claim: async (request) => {
        const claimed = await inner.claim(request);
        if (outage) for (const event of claimed.events) if (event.supersededBy === undefined) handedOut.add(event.id);
        return claimed;
      },
    });
    const box = (opened.outbox = await Outbox.open({ store, url: rx.url, retry: { ...FAST_RETRY, maxAttempts: 1_000_000 } }));
    const superseded: SupersededEvent[] = [];
    box.on('superseded', (event) => superseded.push(event));
    const update = (n: number): Promise<{ id: string }> => box.enqueue({ body: { customer: 42, n }, orderingKey: 'customer-42', supersede: true });
    const other = (n: number): Promise<{ id: string }> => box.enqueue({ body: { customer: 7, n }, orderingKey: 'customer-7' });
    const latest = [(await update(0)).id];
    const others = [(await other(0)).id];
    // Both keys' first events are tried (and fail) before the rest comes in.
    await waitFor(() => seenInOutage.has(latest[0] as string) && seenInOutage.has(others[0] as string), 10_000, 'first attempts during the outage');
    for (let n = 1; n < UPDATES; n++) {
      const [a, b] = await Promise.all([update(n), other(n)]);
      latest.push(a.id);
      others.push(b.id);
    }
    outage = false;
    await box.drain({ timeoutMs: 30_000 });

    const delivered = rx.requests.filter((r) => r.status === 200);
    const deliveredOf = (customer: number): number[] =>
      delivered.map((r) => JSON.parse(r.body) as { customer: number; n: number }).filter((b) => b.customer === customer).map((b) => b.n);
    // The other key: all of it, once each, in order.
    expect(deliveredOf(7)).toEqual(Array.from({ length: UPDATES }, (_, n) => n));
    // The superseding key: in order, ending with the latest; any other was handed out (in flight or read
    // ahead) before the receiver came back: an update is judged when the store hands it out.
    const sent42 = deliveredOf(42);
    expect(sent42.at(-1)).toBe(UPDATES - 1);
    expect([...sent42].sort((a, b) => a - b)).toEqual(sent42);
    expect(new Set(sent42).size).toBe(sent42.length);
    for (const n of sent42.slice(0, -1)) expect(handedOut.has(latest[n] as string), `update ${n} sent`).toBe(true);
    // One event of a key is out at a time: at most one was out when the receiver came back.
    expect(sent42.length).toBeLessThanOrEqual(2);
    // Every update accounted for: delivered or superseded (by the latest), never both, none lost.
    const supersededIds = superseded.map((event) => event.id);
    expect(new Set([...supersededIds, ...sent42.map((n) => latest[n] as string)])).toEqual(new Set(latest));
    expect(supersededIds.length + sent42.length).toBe(UPDATES);
    for (const event of superseded) {
      expect(event).toEqual({ id: event.id, url: rx.url, orderingKey: 'customer-42', by: event.by });
      // By a later update (the latest pending when its turn came: updates kept coming during the outage).
      expect(latest.indexOf(event.by)).toBeGreaterThan(latest.indexOf(event.id));
    }
    // None superseded was answered 2xx, and none was sent once the receiver was back.
    const ok = new Set(delivered.map((r) => r.id));
    for (const id of supersededIds) expect(ok.has(id), id).toBe(false);
    expect(box.stats()).toMatchObject({ pending: 0, dead: 0, delivered: UPDATES + sent42.length, superseded: supersededIds.length });
    expect(await box.deadLetters()).toEqual([]);
  }, 60_000);
});

describe('Superseding events: validation', () => {
  it('refuses supersede without an ordering key, a non-boolean, and on a sender', async () => {
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    await expect(box.enqueue({ body: 1, supersede: true })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'supersede' });
    await expect(box.enqueue({ body: 1, orderingKey: 'k', supersede: 'yes' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'supersede' });
    await box.enqueue({ body: 1, orderingKey: 'k', supersede: false });
    expect(box.stats().pending).toBe(1);
    expect((await box.find((await box.enqueue({ body: 2, orderingKey: 'k', supersede: true })).id))?.supersede).toBe(true);
    // A sender sends at once, in no order: nothing to supersede, and refused rather than ignored.
    const sender = createSender({ url: 'http://127.0.0.1:9/hook' });
    await expect(sender.send({ body: 1, supersede: true } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'supersede' });
    await sender.close();
  });
});
