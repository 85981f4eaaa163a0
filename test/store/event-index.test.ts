import { describe, expect, it } from 'vitest';
import { EventIndex, PENDING } from '../../src/store/file/event-index.js';
import { hashBytes } from '../../src/store/file/format.js';
import { seededRandom } from './seeded-random.js';

describe('EventIndex id hash set', () => {
  it('finds exactly the live slots of a hash through inserts and deletes with colliding, wrapping hashes', () => {
    const index = new EventIndex();
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    // Few distinct hashes, some at the end of a table as it grows (16, 32, ... entries), so probe runs collide
    // and wrap around; the top bits pick one of 64 tables: most share the first, two the last.
    const hashes = [0, 1, 2, 15, 31, 1023, 1024 + 1023, 2048, 0xfc00000f, 0xfc00001f];
    const live = new Map<number, number>();
    const next = seededRandom(7);
    for (let step = 0; step < 20_000; step++) {
      if (live.size < 400 && (live.size === 0 || next() < 0.55)) {
        const hash = hashes[Math.floor(next() * hashes.length)] as number;
        live.set(index.add(hash, endpoint, 0, 0), hash);
      } else {
        const slots = [...live.keys()];
        const slot = slots[Math.floor(next() * slots.length)] as number;
        index.remove(slot);
        live.delete(slot);
      }
      if (step % 97 === 0) {
        for (const hash of hashes) {
          const expected = [...live].filter(([, h]) => h === hash).map(([slot]) => slot).sort((a, b) => a - b);
          expect(index.slotsWithHash(hash).sort((a, b) => a - b), `step ${step}, hash ${hash}`).toEqual(expected);
        }
      }
    }
    for (const slot of live.keys()) expect(index.status.get(slot)).toBe(PENDING);
  });

  it('keeps every slot and id past several chunks of slots, with slots freed and reused on the way', () => {
    const index = new EventIndex();
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    const next = seededRandom(11);
    const hashOf = new Map<number, number>();
    for (let i = 0; i < 200_000; i++) {
      const hash = Math.floor(next() * 2 ** 32);
      const slot = index.add(hash, endpoint, i, i * 2);
      index.evOff.set(slot, i);
      hashOf.set(slot, hash);
      // Every third event is delivered at once: its slot is reused by the next one.
      if (i % 3 === 0) {
        index.remove(slot);
        hashOf.delete(slot);
      }
    }
    expect(index.pending).toBe(hashOf.size);
    expect([...hashOf.keys()].reduce((a, b) => Math.max(a, b))).toBeGreaterThan(2 * 65_536);
    for (const [slot, hash] of hashOf) {
      const i = index.evOff.get(slot);
      if (index.createdAt(slot) !== i || index.next.get(slot) !== i * 2 || index.status.get(slot) !== PENDING || !index.slotsWithHash(hash).includes(slot)) {
        expect.fail(`slot ${slot} (event ${i}) lost its fields or its id`);
      }
    }
  });

  it('claims by due time, then arrival, through random arrivals and claims', () => {
    const index = new EventIndex();
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    const next = seededRandom(5);
    // The model: pending events as [due, arrival, slot].
    let model: [number, number, number][] = [];
    for (let step = 0, arrival = 0; step < 3000; step++) {
      if (next() < 0.6) {
        // Few distinct due times, so ties between equal due times are common.
        const due = Math.floor(next() * 50);
        const slot = index.add(step, endpoint, 0, due);
        index.schedule(slot);
        model.push([due, arrival++, slot]);
      } else {
        const now = Math.floor(next() * 60);
        const limit = 1 + Math.floor(next() * 8);
        model.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        const expected = model.filter(([due]) => due <= now).slice(0, limit).map(([, , slot]) => slot);
        const { slots } = index.claim(limit, now, () => true);
        expect(slots, `step ${step}`).toEqual(expected);
        for (const slot of slots) index.remove(slot);
        model = model.filter(([, , slot]) => !slots.includes(slot));
      }
    }
  });

  it('claims look only at endpoints with something scheduled, and an endpoint without events is forgotten', () => {
    const index = new EventIndex();
    index.finishRecovery();
    // 5,000 one-off URLs (per-event callback URLs), each delivered in turn.
    for (let i = 0; i < 5_000; i++) {
      const slot = index.add(i, index.endpointOf(`http://127.0.0.1:1/callback/${i}`), 0, 0);
      index.schedule(slot);
      const { slots } = index.claim(10, 0, () => true);
      expect(slots).toEqual([slot]);
      index.remove(slot);
    }
    expect(index.endpoints.length).toBe(1);
    // 1,000 endpoints with a pending event each, 999 of them claimed: a claim asks about one endpoint.
    const slots = Array.from({ length: 1_000 }, (_, i) => {
      const slot = index.add(i, index.endpointOf(`http://127.0.0.1:1/hook/${i}`), 0, i);
      index.schedule(slot);
      return slot;
    });
    expect(index.claim(999, 1_000, () => true).slots).toEqual(slots.slice(0, 999));
    let asked = 0;
    const last = index.claim(10, 1_000, () => {
      asked++;
      return true;
    });
    expect(last.slots).toEqual([slots[999]]);
    expect(asked).toBe(1);
    // A forgotten endpoint's index is reused for a new URL, and the old URL gets an index of its own.
    for (const slot of slots) index.remove(slot);
    const reused = index.endpointOf('http://127.0.0.1:1/new');
    expect(reused).toBeLessThan(1_000);
    expect(index.endpoints[reused]?.url).toBe('http://127.0.0.1:1/new');
    expect(index.endpointOf('http://127.0.0.1:1/hook/0')).not.toBe(reused);
    expect(index.endpointOfBytes(Buffer.from('x http://127.0.0.1:1/new'), 2, 24)).toBe(reused);
  });

  it('keeps arrival order between equal due times across arrival-number compaction', () => {
    const index = new EventIndex(8);
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    const order: number[] = [];
    for (let i = 0; i < 30; i++) {
      const slot = index.add(i, endpoint, 0, 5);
      index.schedule(slot);
      order.push(slot);
    }
    // Take two out and bring them back (as a dead letter and a replay): they arrive again, last.
    const { slots } = index.claim(2, 5, () => true);
    for (const slot of slots) {
      index.markDead(slot, 1);
      index.revive(slot, 0, 5);
      index.schedule(slot);
    }
    const expected = [...order.slice(2), ...slots];
    expect(slots).toEqual(order.slice(0, 2));
    expect(index.claim(100, 5, () => true).slots).toEqual(expected);
  });

  it('hashes equal bytes equally wherever they are in a buffer', () => {
    const id = Buffer.from('evt_123');
    const framed = Buffer.concat([Buffer.from('xx'), id, Buffer.from('yy')]);
    expect(hashBytes(framed, 2, 2 + id.length)).toBe(hashBytes(id, 0, id.length));
  });
});

describe('EventIndex times and retry state', () => {
  it('keeps the creation time while the due time moves (retry, death, revival), and a reused slot starts afresh', () => {
    const index = new EventIndex();
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    const slot = index.add(1, endpoint, 1000, 1000);
    const times = (): [number, number] => [index.createdAt(slot), index.next.get(slot)];
    expect(times()).toEqual([1000, 1000]);
    index.setNext(slot, 5000);
    expect(times()).toEqual([1000, 5000]);
    index.markDead(slot, 7000);
    expect(times()).toEqual([1000, 7000]);
    index.revive(slot, 8000, 8000);
    expect(times()).toEqual([8000, 8000]);
    index.setNext(slot, 9000);
    expect(times()).toEqual([8000, 9000]);
    index.setTimes(slot, 100, 200);
    expect(times()).toEqual([100, 200]);
    index.remove(slot);
    expect(index.add(2, endpoint, 300, 300)).toBe(slot);
    expect(times()).toEqual([300, 300]);
    // A clock at 0 (as in tests) is a time like any other.
    const zero = index.add(3, endpoint, 0, 0);
    index.setNext(zero, 50);
    expect([index.createdAt(zero), index.next.get(zero)]).toEqual([0, 50]);
  });

  it('stores no retry state and one time per event for a backlog that was never tried', () => {
    const index = new EventIndex();
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    const slots: number[] = [];
    const hash = (i: number): number => Math.imul(i, 0x9e3779b1) >>> 0;
    for (let i = 0; i < 100_000; i++) slots.push(index.add(hash(i), endpoint, 1000 + i, 1000 + i));
    for (const slot of slots.slice(0, 50_000)) index.remove(slot);
    for (let i = 0; i < 50_000; i++) index.add(hash(100_000 + i), endpoint, 200_000, 200_000);
    expect(index.sparseChunks()).toBe(0);
    index.setNext(slots[70_000] as number, 99_999);
    expect(index.sparseChunks()).toBe(1);
    expect(index.createdAt(slots[70_000] as number)).toBe(71_000);
  });
});

describe('EventIndex oldest pending creation time', () => {
  it('costs O(1) amortised per delivery over a 20k-event FIFO drain with a read after each, and stays exact', () => {
    const index = new EventIndex();
    index.finishRecovery();
    const endpoint = index.endpointOf('http://127.0.0.1:1/a');
    const total = 20_000;
    // Creation times in arrival order: FIFO delivery removes them from the front.
    const created: number[] = [];
    const arrive = (hash: number, createdAt: number): void => {
      index.schedule(index.add(hash, endpoint, createdAt, 0));
      created.push(createdAt);
    };
    for (let i = 0; i < total; i++) arrive(i, 1000 + i);
    let delivered = 0;
    while (index.pending > 0) {
      const { slots } = index.claim(10, 0, () => true);
      for (const slot of slots) {
        expect(index.createdAt(slot)).toBe(created[delivered]);
        index.remove(slot);
        delivered++;
        expect(index.oldestPendingAt()).toBe(created[delivered]);
        // Arrivals during the drain reuse freed slots.
        if (delivered % 4 === 0 && delivered < total / 2) arrive(total + delivered, 1e9 + delivered);
      }
    }
    expect(delivered).toBe(total + total / 8 - 1);
    // A scan of every slot per read would be ~total^2 / 2 = 2e8 visits.
    expect(index.oldestVisits).toBeLessThan(4 * delivered);
  });
});
