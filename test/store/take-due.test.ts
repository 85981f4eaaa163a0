import { describe, expect, it } from 'vitest';
import { takeDue } from '../../src/store/take-due.js';
import { seededRandom } from './seeded-random.js';

interface Item {
  due: number;
  seq: number;
}

describe('takeDue', () => {
  it('takes what a full sort would, earliest due then arrival, and returns the queue holding the earliest rest', () => {
    const next = seededRandom(11);
    for (let round = 0; round < 300; round++) {
      let seq = 0;
      const queues: Item[][] = Array.from({ length: 1 + Math.floor(next() * 12) }, () =>
        Array.from({ length: 1 + Math.floor(next() * 6) }, () => ({ due: Math.floor(next() * 20), seq: seq++ })).sort((a, b) => a.due - b.due || a.seq - b.seq),
      );
      const now = Math.floor(next() * 25);
      const limit = Math.floor(next() * 30);
      const order = (a: Item, b: Item): number => a.due - b.due || a.seq - b.seq;
      const all = queues.flat().sort(order);
      const expected = all.filter((item) => item.due <= now).slice(0, limit);
      const rest = all.filter((item) => !expected.includes(item));

      const taken: Item[] = [];
      const first = takeDue([...queues], {
        full: () => taken.length >= limit,
        before: (a, b) => order(a[0] as Item, b[0] as Item) < 0,
        due: (queue) => (queue[0] as Item).due <= now,
        take: (queue) => {
          taken.push(queue.shift() as Item);
          return queue.length > 0;
        },
      });
      expect(taken, `round ${round}`).toEqual(expected);
      expect(first?.[0], `round ${round}`).toBe(rest[0]);
    }
  });

  it('compares O(queues + taken x log queues) times, not taken x queues', () => {
    const queues = Array.from({ length: 4096 }, (_, i) => [i, i + 4096]);
    let comparisons = 0;
    let taken = 0;
    takeDue(queues, {
      full: () => taken >= 256,
      before: (a, b) => {
        comparisons++;
        return (a[0] as number) < (b[0] as number);
      },
      due: () => true,
      take: (queue) => {
        taken++;
        queue.shift();
        return queue.length > 0;
      },
    });
    expect(taken).toBe(256);
    // Heapify <= 2 x 4096, then <= 2 x log2(4096) = 24 per item taken: about 14,000. Scanning: over a million.
    expect(comparisons).toBeLessThan(2 * 4096 + 256 * 24);
  });
});
