import { describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { EventRecords, FRAME_BYTES, hashBytes, hashText, RecordView } from '../../src/store/file/format.js';
import { makeEvent } from './contract.js';
import { tempDirs } from './temp-dir.js';

const tempDir = tempDirs('file-store-encode');

describe('FileStore append encoding', () => {
  it('hashes an id from its text exactly as recovery hashes its bytes', () => {
    for (const id of ['', 'msg_01J0000000000000000000000', 'order-42', 'ünïcode-€-𝄞', 'a\u007f\u0080b']) {
      const bytes = Buffer.from(id);
      expect(hashText(id)).toBe(hashBytes(bytes, 0, bytes.length));
    }
  });

  it('starts id hashes from a random value per process, so colliding ids cannot be picked in advance', async () => {
    const ids = ['msg_01J0000000000000000000000', 'order-42', 'ünïcode-€-𝄞'];
    vi.resetModules();
    const other = await import('../../src/store/file/format.js');
    const here = ids.map((id) => hashText(id));
    const there = ids.map((id) => other.hashText(id));
    expect(ids.map((id) => hashText(id))).toEqual(here);
    // Three 32-bit hashes all equal by chance: about 1 in 2^96.
    expect(there).not.toEqual(here);
  });

  it('reads back a batch written as one buffer (ordering keys too), and after a reopen still skips its ids, ASCII or not', async () => {
    const dir = await tempDir();
    const ids = ['plain-1', 'ünïcode-€-2', 'plain-3', '𝄞-4'];
    const store = new FileStore({ dir, durability: 'write' });
    await store.open();
    const keyOf = (i: number): string | undefined => (i === 0 ? undefined : i === 1 ? 'ключ-€' : `k${i}`);
    await store.append(ids.map((id, i) => makeEvent(id, { url: i % 2 === 0 ? 'http://127.0.0.1:9/a' : 'http://127.0.0.1:9/é', ...(keyOf(i) === undefined ? {} : { orderingKey: keyOf(i) }) })));
    await store.close();
    const reopened = new FileStore({ dir, durability: 'write' });
    await reopened.open();
    try {
      await reopened.append(ids.map((id) => makeEvent(id, { body: new Uint8Array([1]) })));
      expect(reopened.stats().pending).toBe(ids.length);
      const { events } = await reopened.claim({ limit: 10, now: Date.now() + 1e12 });
      expect(events.map((event) => [event.id, event.url, event.orderingKey, new TextDecoder().decode(event.body)]).sort()).toEqual(
        ids
          .map((id, i) => [id, i % 2 === 0 ? 'http://127.0.0.1:9/a' : 'http://127.0.0.1:9/é', keyOf(i), JSON.stringify({ id, pad: 'x'.repeat(20) })])
          .sort(),
      );
      expect(events.find((event) => event.id === 'plain-1')?.headers).toEqual({ 'content-type': 'application/json', 'x-n': 'plain-1' });
    } finally {
      await reopened.close();
    }
  });
});

describe('FileStore append encoding of headers', () => {
  it('writes each event its own headers when a batch mixes equal, reordered, extra and inherited ones', async () => {
    const inherited = Object.create({ 'x-proto': 'p' }) as Record<string, string>;
    inherited['content-type'] = 'a';
    const headerSets: Record<string, string>[] = [
      { 'content-type': 'a' },
      { 'content-type': 'a' },
      { 'content-type': 'b' },
      { 'content-type': 'a', 'x-1': '1' },
      { 'x-1': '1', 'content-type': 'a' },
      { 'content-type': 'a', 'x-proto': 'p' },
      inherited,
      { 'content-type': 'a' },
      {},
    ];
    const store = new FileStore({ dir: await tempDir(), durability: 'write' });
    await store.open();
    try {
      await store.append(headerSets.map((headers, i) => makeEvent(`h-${i}`, { headers })));
      const { events } = await store.claim({ limit: 20, now: Date.now() + 1e12 });
      const byId = new Map(events.map((event) => [event.id, event.headers]));
      headerSets.forEach((headers, i) => expect(byId.get(`h-${i}`)).toEqual(JSON.parse(JSON.stringify(headers))));
      expect(Object.keys(byId.get('h-4') ?? {})).toEqual(['x-1', 'content-type']);
    } finally {
      await store.close();
    }
  });

  it('writes the supersede flag only with an ordering key, reads it back, and refuses it without one', () => {
    const records = new EventRecords([makeEvent('a', { orderingKey: 'k', supersede: true }), makeEvent('b', { orderingKey: 'k' }), makeEvent('c')]);
    const out = Buffer.alloc(records.size);
    records.encodeInto(out, 0, 7);
    const view = new RecordView();
    const flags: number[] = [];
    const decoded: [string, boolean][] = [];
    for (let at = 0, i = 0; at < out.length; at += records.lengths[i++] as number) {
      expect(view.decode(out, at)).toBe(true);
      flags.push(out[at + FRAME_BYTES + 1] as number);
      decoded.push([out.toString('utf8', view.keyStart, view.keyEnd), view.supersede]);
    }
    expect(flags).toEqual([3, 1, 0]);
    expect(decoded).toEqual([
      ['k', true],
      ['k', false],
      ['', false],
    ]);
    // The flag alone (no key) or an unknown bit is a record that does not add up.
    const third = (records.lengths[0] as number) + (records.lengths[1] as number);
    for (const bad of [2, 4]) {
      out[third + FRAME_BYTES + 1] = bad;
      expect(view.decode(out, third)).toBe(false);
    }
  });
});
