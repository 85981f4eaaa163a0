/**
 * A typed array of `capacity` elements starting with `array`'s. The new elements are zero and their pages
 * stay untouched, so capacity that is never used costs address space, not resident memory.
 */
export function grow<T extends Int32Array | Uint32Array | Float64Array | Uint8Array>(array: T, capacity: number): T {
  const next = new (array.constructor as new (n: number) => T)(capacity);
  next.set(array.subarray(0, Math.min(array.length, capacity)));
  return next;
}
