/**
 * Test helpers for LowdbStore around a failed write: a write that hangs until told to fail, and the ids
 * the file holds.
 */
import { readFile } from 'node:fs/promises';
import { Low } from 'lowdb';
import { expect, vi } from 'vitest';

/** Makes the next lowdb write hang until `fail()` is called, then reject with ENOSPC. */
export function failNextWrite(): { fail: () => void; started: () => boolean } {
  let reject: ((error: Error) => void) | undefined;
  vi.spyOn(Low.prototype, 'write').mockImplementationOnce(() => new Promise<void>((_resolve, r) => (reject = r)));
  return {
    started: () => reject !== undefined,
    fail: () => reject?.(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })),
  };
}

/**
 * Starts `op` with the next lowdb write hanging; resolves once that write is under way, with `fail()` and
 * the op's promise (a rejection of it is handled here, so a test may leave it unobserved).
 */
export async function hangNextWrite<T>(op: () => Promise<T>): Promise<{ fail: () => void; result: Promise<T> }> {
  const write = failNextWrite();
  const result = op();
  result.catch(() => {});
  await vi.waitFor(() => expect(write.started()).toBe(true));
  return { fail: write.fail, result };
}

/** The ids of the pending events in the lowdb file. */
export async function fileIds(file: string): Promise<string[]> {
  const document = JSON.parse(await readFile(file, 'utf8')) as { pending: { id: string }[] };
  return document.pending.map((e) => e.id);
}
