import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { LowdbStore } from '../../src/store/lowdb.js';
import type { Transport } from '../../src/transport/transport.js';
import { FAST_RETRY, waitFor } from '../outbox-helpers.js';
import { makeEvent } from './contract.js';
import { fileIds, hangNextWrite } from './lowdb-write-faults.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('lowdb-faults');
const FAR = Date.now() + 1e12;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('LowdbStore around a failed write', () => {
  it('a change made in the tick a write fails is either rejected or on disk, never acknowledged and lost', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('kept')]);
    const { fail } = await hangNextWrite(() => store.append([makeEvent('in-write')]));
    fail();
    // Same tick as the failure: applied to the memory that is about to be rolled back.
    const late = store.append([makeEvent('late')]);
    const verdict = await late.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    if (verdict === 'resolved') {
      // Acknowledged: it must be in the store and in the file.
      expect(store.stats().pending).toBe(2);
      expect(await fileIds(file)).toContain('late');
    }
    await store.close();
    const reopened = new LowdbStore({ file });
    await reopened.open();
    const ids = (await reopened.claim({ now: FAR, limit: 10 })).events.map((e) => e.id);
    await reopened.close();
    if (verdict === 'resolved') expect(ids).toContain('late');
    else expect(verdict).toBe('ERR_STORE_IO');
  });

  it('a failed write does not let an event that is still claimed (in flight) be claimed again', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('in-flight')]);
    const first = await store.claim({ now: FAR, limit: 10 });
    expect(first.events.map((e) => e.id)).toEqual(['in-flight']);
    // An unrelated write fails while 'in-flight' is being delivered.
    const { fail, result: other } = await hangNextWrite(() => store.append([makeEvent('other')]));
    fail();
    await expect(other).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats().claimed).toBe(1);
    const second = await store.claim({ now: FAR, limit: 10 });
    expect(second.events.map((e) => e.id)).not.toContain('in-flight');
    await store.close();
  });

  it('a failed write keeps the claimed event of an ordering key the only one out, though an earlier one was replayed', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('e1', { orderingKey: 'k' }), makeEvent('e2', { orderingKey: 'k' })]);
    await store.claim({ now: FAR, limit: 10 });
    await store.settle([{ id: 'e1', type: 'dead', reason: 'http-status', at: 1 }]);
    expect((await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id)).toEqual(['e2']);
    // e1 is replayed (in the file) while e2 is out; then an unrelated write fails and the store is rebuilt.
    expect(await store.replay(['e1'], 2)).toBe(1);
    const { fail, result } = await hangNextWrite(() => store.append([makeEvent('other')]));
    fail();
    await expect(result).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats()).toMatchObject({ pending: 2, claimed: 1 });
    expect((await store.claim({ now: FAR, limit: 10 })).events).toEqual([]);
    await store.settle([{ id: 'e2', type: 'delivered', attempt: { at: 3, durationMs: 1, status: 200 } }]);
    expect((await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id)).toEqual(['e1']);
    await store.close();
  });

  it('does not hand out the next event of an ordering key while the outcome of the one before is being written', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('a', { orderingKey: 'k' }), makeEvent('b', { orderingKey: 'k' })]);
    expect((await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id)).toEqual(['a']);
    const { fail, result } = await hangNextWrite(() => store.settle([{ id: 'a', type: 'dead', reason: 'max-attempts', at: 1 }]));
    // If that write fails, a is pending again and must go before b.
    expect((await store.claim({ now: FAR, limit: 10 })).events).toEqual([]);
    fail();
    await expect(result).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect((await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id)).toEqual(['a']);
    await store.close();
  });

  it('after a failed write, the outcome of a delivery that was in flight is still recorded', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('e1')]);
    await store.claim({ now: FAR, limit: 10 });
    const { fail, result: other } = await hangNextWrite(() => store.append([makeEvent('other')]));
    fail();
    await expect(other).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    // The receiver answered 2xx for e1; the flusher records it and reports 'delivered'.
    await store.settle([{ id: 'e1', type: 'delivered', attempt: { at: FAR, durationMs: 1, status: 200 } }]);
    expect(store.stats()).toMatchObject({ pending: 0, delivered: 1 });
    await store.close();
  });

  it('a failed write does not reset the delivered counter', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('e1')]);
    await store.claim({ now: FAR, limit: 10 });
    await store.settle([{ id: 'e1', type: 'delivered', attempt: { at: FAR, durationMs: 1, status: 200 } }]);
    expect(store.stats().delivered).toBe(1);
    const { fail, result: other } = await hangNextWrite(() => store.append([makeEvent('other')]));
    fail();
    await expect(other).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect(store.stats().delivered).toBe(1);
    await store.close();
  });

  it('close() does not resolve before an append it accepts is in the file', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    await store.append([makeEvent('first')]);
    const appended = store.append([makeEvent('racing')]);
    appended.catch(() => {});
    await store.close();
    const onDiskAtClose = await fileIds(file);
    const verdict = await appended.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    // Either close() refused it, or it waited for it: an append that resolves must be on disk when close() resolves.
    if (verdict === 'resolved') expect(onDiskAtClose).toContain('racing');
    else expect(verdict).toBe('ERR_OUTBOX_CLOSED');
  });

  it('does not hand out an event whose append is not in the file yet (its append may still be rejected)', async () => {
    const file = join(await newDir(), 'outbox.json');
    const store = new LowdbStore({ file });
    await store.open();
    const { fail, result: appended } = await hangNextWrite(() => store.append([makeEvent('not-durable')]));
    // The flusher claims while the append's write is in progress...
    const claimed = (await store.claim({ now: FAR, limit: 10 })).events.map((e) => e.id);
    fail();
    const verdict = await appended.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    // ...and delivers it; the producer is told the enqueue failed (and retries it under a new generated id).
    if (claimed.includes('not-durable')) expect(verdict).toBe('resolved');
    await store.close();
  });

  it('outbox on LowdbStore: a failed enqueue write does not make an answered delivery be sent again', async () => {
    const file = join(await newDir(), 'outbox.json');
    const sent: string[] = [];
    let release: (() => void) | undefined;
    const transport: Transport = {
      send: async (request) => {
        sent.push(request.headers['webhook-id'] as string);
        // The first request is held until the test lets it answer; the rest answer at once.
        if (sent.length === 1) await new Promise<void>((resolve) => (release = resolve));
        return { status: 200, headers: {}, bodyExcerpt: '' };
      },
    };
    const outbox = await Outbox.open({ store: new LowdbStore({ file }), url: 'http://127.0.0.1:1/hook', transport, retry: FAST_RETRY });
    outbox.on('error', () => {});
    const { id } = await outbox.enqueue({ body: { n: 1 } });
    await waitFor(() => release !== undefined, 5_000, 'the first request');
    // While that request is in flight, the disk fails one write: the next enqueue is rejected, as it must be.
    const { fail, result: failed } = await hangNextWrite(() => outbox.enqueue({ body: { n: 2 } }));
    fail();
    await expect(failed).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    // The receiver answers 2xx to the first request.
    release?.();
    await outbox.drain({ timeoutMs: 5_000 });
    await outbox.close();
    expect(sent.filter((s) => s === id)).toHaveLength(1);
  });

  it('fails to open a JSON file that is not an outbox document with ERR_STORE_IO, not a raw TypeError', async () => {
    const file = join(await newDir(), 'outbox.json');
    // Valid JSON, e.g. another lowdb app's file, or a hand edit that dropped a key the docs invite editing.
    await writeFile(file, '{"version":1,"pending":[]}');
    await expect(new LowdbStore({ file }).open()).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    // An event without its history, or with a time that is not a number.
    const event = { id: 'e1', url: 'http://127.0.0.1:1/hook', headers: {}, body: '', createdAt: 1, nextAttemptAt: 1, attempts: 0, history: [] };
    for (const broken of [{ ...event, history: undefined }, { ...event, nextAttemptAt: 'soon' }, { ...event, body: 7 }]) {
      await writeFile(file, JSON.stringify({ version: 1, pending: [broken], dead: [] }));
      await expect(new LowdbStore({ file }).open()).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    }
    await writeFile(file, JSON.stringify({ version: 1, pending: [event], dead: [] }));
    const store = new LowdbStore({ file });
    await store.open();
    expect(store.stats().pending).toBe(1);
    await store.close();
  });
});
