type Numbers = Uint8Array | Uint32Array | Float64Array;

const CHUNK_BITS = 16;
/** Elements per full chunk. */
export const CHUNK = 1 << CHUNK_BITS;
const MASK = CHUNK - 1;

/**
 * A growable array of numbers kept in typed-array chunks of {@link CHUNK} elements. Past the first chunk,
 * growing adds chunks and never copies what is stored: a flat array doubling at a million events copies
 * tens of MiB into fresh pages and blocked the event loop for about half a second on our test VM
 * (docs/12). The first chunk starts small and doubles up to a full chunk, so a small store stays small.
 * New elements are zero and their pages stay untouched (not resident) until written.
 * One subclass per element type: {@link Uint8Chunks}, {@link Uint32Chunks}, {@link Float64Chunks}.
 */
export abstract class ChunkedArray<T extends Numbers> {
  readonly #make: new (length: number) => T;
  protected readonly chunks: T[];
  #capacity: number;

  constructor(make: new (length: number) => T, capacity: number) {
    this.#make = make;
    this.#capacity = Math.max(16, Math.min(CHUNK, capacity));
    this.chunks = [new make(this.#capacity)];
    this.reserve(capacity);
  }

  abstract get(i: number): number;
  abstract set(i: number, value: number): void;

  /** Elements that can be stored without growing. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Makes room for at least `capacity` elements. */
  reserve(capacity: number): void {
    if (capacity <= this.#capacity) return;
    if (this.#capacity < CHUNK) {
      let size = this.#capacity * 2;
      while (size < Math.min(capacity, CHUNK)) size *= 2;
      const first = new this.#make(Math.min(size, CHUNK));
      first.set(this.chunks[0]!);
      this.chunks[0] = first;
      this.#capacity = first.length;
    }
    while (this.#capacity < capacity) {
      this.chunks.push(new this.#make(CHUNK));
      this.#capacity += CHUNK;
    }
  }

  /** Moves elements `[start, end)` to `target` (as `copyWithin`). */
  copyWithin(target: number, start: number, end: number): void {
    if (this.chunks.length === 1) {
      this.chunks[0]!.copyWithin(target, start, end);
      return;
    }
    if (target <= start) for (let i = 0; i < end - start; i++) this.set(target + i, this.get(start + i));
    else for (let i = end - start - 1; i >= 0; i--) this.set(target + i, this.get(start + i));
  }
}

// The same two lines in each class on purpose: V8 keeps inline caches per function, so one `get` shared by
// three element types made every index access polymorphic (a drain spent ~1 us more per event; a class
// factory did not help, its closures share their caches).

/** Chunked `Uint8Array`. */
export class Uint8Chunks extends ChunkedArray<Uint8Array> {
  constructor(capacity = 16) {
    super(Uint8Array, capacity);
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }
}

/** Chunked `Uint32Array`. */
export class Uint32Chunks extends ChunkedArray<Uint32Array> {
  constructor(capacity = 16) {
    super(Uint32Array, capacity);
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }
}

/** Chunked `Float64Array`. */
export class Float64Chunks extends ChunkedArray<Float64Array> {
  constructor(capacity = 16) {
    super(Float64Array, capacity);
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }
}

/** Elements per chunk of a {@link SparseChunks}: small, so that a few written slots allocate little. */
const SPARSE_BITS = 12;
const SPARSE_MASK = (1 << SPARSE_BITS) - 1;

/**
 * An array of numbers that are mostly `fill` (0 unless given), for columns most slots never write (the
 * retry state of events that were never retried): a chunk of 4,096 elements is allocated on the first
 * write of another value in its range, so unwritten ranges cost no memory at all. Not for hot loops: one
 * class serves every element type, so its accesses are polymorphic.
 */
export class SparseChunks<T extends Numbers> {
  readonly #make: new (length: number) => T;
  readonly #fill: number;
  readonly #chunks: (T | undefined)[] = [];

  constructor(make: new (length: number) => T, fill = 0) {
    this.#make = make;
    this.#fill = fill;
  }

  get(i: number): number {
    const chunk = this.#chunks[i >>> SPARSE_BITS];
    return chunk === undefined ? this.#fill : chunk[i & SPARSE_MASK]!;
  }

  set(i: number, value: number): void {
    let chunk = this.#chunks[i >>> SPARSE_BITS];
    if (chunk === undefined) {
      if (Object.is(value, this.#fill)) return;
      chunk = new this.#make(1 << SPARSE_BITS);
      if (this.#fill !== 0) chunk.fill(this.#fill);
      this.#chunks[i >>> SPARSE_BITS] = chunk;
    }
    chunk[i & SPARSE_MASK] = value;
  }

  /** Chunks allocated so far (for tests). */
  get chunks(): number {
    return this.#chunks.filter((chunk) => chunk !== undefined).length;
  }
}
