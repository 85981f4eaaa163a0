import { describe, expect, it } from 'vitest';
import { CHUNK, Float64Chunks, SparseChunks, Uint32Chunks, Uint8Chunks } from '../../src/store/chunked-array.js';

describe('ChunkedArray', () => {
  it('keeps every element while growing from 16 elements past several chunks, and new elements are zero', () => {
    const array = new Float64Chunks();
    expect(array.capacity).toBe(16);
    const size = 3 * CHUNK + 123;
    for (let i = 0; i < size; i++) {
      array.reserve(i + 1);
      if (array.get(i) !== 0) expect.fail(`new element ${i} is ${array.get(i)}`);
      array.set(i, i * 1.5);
    }
    expect(array.capacity).toBeGreaterThanOrEqual(size);
    for (let i = 0; i < size; i++) if (array.get(i) !== i * 1.5) expect.fail(`element ${i} is ${array.get(i)}`);
  });

  it('starts with the first chunk sized to the capacity asked for, and fills whole chunks past it', () => {
    expect(new Uint8Chunks(1000).capacity).toBe(1000);
    expect(new Uint8Chunks(CHUNK + 1).capacity).toBe(2 * CHUNK);
    const array = new Uint32Chunks(1000);
    array.set(999, 7);
    array.reserve(1001);
    expect(array.capacity).toBe(2000);
    expect(array.get(999)).toBe(7);
  });

  it.each([
    ['down, within the first chunk', 100, 0, 10, 60],
    ['up, within the first chunk', 100, 30, 10, 60],
    ['down, across chunks', 3 * CHUNK, 5, CHUNK - 10, 2 * CHUNK + 7],
    ['up, across chunks', 3 * CHUNK, CHUNK + 3, 20, CHUNK + 50],
  ])('moves elements like Array.prototype.copyWithin (%s)', (_, size, target, start, end) => {
    const array = new Uint32Chunks(size);
    const model = Array.from({ length: size }, (_, i) => (i * 7919) % 65_521);
    model.forEach((value, i) => array.set(i, value));
    array.copyWithin(target, start, end);
    model.copyWithin(target, start, end);
    const got = Array.from({ length: size }, (_, i) => array.get(i));
    expect(got).toEqual(model);
  });
});

describe('SparseChunks', () => {
  it('reads its fill where nothing was written, and allocates a chunk only for another value', () => {
    const array = new SparseChunks(Uint32Array);
    for (let i = 0; i < 100_000; i += 7) array.set(i, 0);
    expect(array.chunks).toBe(0);
    expect(array.get(123_456)).toBe(0);
    array.set(50_000, 9);
    array.set(50_001, 10);
    expect(array.chunks).toBe(1);
    expect([array.get(49_999), array.get(50_000), array.get(50_001)]).toEqual([0, 9, 10]);
    array.set(50_000, 0);
    expect(array.get(50_000)).toBe(0);
    array.set(900_000, 1);
    expect(array.chunks).toBe(2);
  });

  it('keeps NaN as a fill value: unwritten elements of a new chunk read NaN too', () => {
    const array = new SparseChunks(Float64Array, NaN);
    array.set(5, NaN);
    expect(array.chunks).toBe(0);
    array.set(5, 1.5);
    expect(array.chunks).toBe(1);
    expect(array.get(5)).toBe(1.5);
    expect(array.get(6)).toBeNaN();
    expect(array.get(10_000_000)).toBeNaN();
  });
});
