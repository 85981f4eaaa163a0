/**
 * Test helpers for LowdbStore around a failed write: a write that hangs until told to fail, and the ids
 * the file holds.
 */
import { readFile } from 'node:fs/promises';
import { Low } from 'lowdb';
import { vi } from 'vitest';

/** Makes the next lowdb write hang until `fail()` is called, then reject with ENOSPC. */
export function failNextWrite(): { fail: () => void; started: () => boolean } {
  let reject: ((error: Error) => void) | undefined;
  vi.spyOn(Low.prototype, 'write').mockImplementationOnce(() => new Promise<void>((_resolve, r) => (reject = r)));
  return {
    started: () => reject !== undefined,
    fail: () => reject?.(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })),
  };
}

/** The ids of the pending events in the lowdb file. */
export async function fileIds(file: string): Promise<string[]> {
  const document = JSON.parse(await readFile(file, 'utf8')) as { pending: { id: string }[] };
  return document.pending.map((e) => e.id);
}
