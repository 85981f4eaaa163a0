import { readFileSync as realReadFileSync } from 'node:fs';
import type * as NodeFs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { nodeFileSystem } from '../../src/store/file/file-system.js';
import { LOCK_FILE, acquireLock } from '../../src/store/file/lock.js';
import { waitFor } from '../outbox-helpers.js';
import { tempDirs } from './temp-dir.js';

/** While set, reads of this process's /proc/<pid>/stat fail (EMFILE: a process out of descriptors for a moment). */
const procFault = vi.hoisted(() => ({ failing: false }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof NodeFs>();
  const readFileSync = ((path: unknown, ...rest: unknown[]) => {
    if (path === `/proc/${process.pid}/stat` && procFault.failing) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
    return (fs.readFileSync as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readFileSync;
  return { ...fs, default: { ...fs, readFileSync }, readFileSync };
});

const newDir = tempDirs('lock-proc');

describe('Directory lock heartbeat and a transient /proc read failure', () => {
  it('keeps LOCK parseable and its own, and reports no loss, while /proc/<pid>/stat cannot be read', async () => {
    const dir = await newDir();
    const lost: unknown[] = [];
    const lock = await acquireLock(nodeFileSystem, dir, { heartbeatMs: 20, onLost: (owner) => lost.push(owner) });
    const read = (): { pid: number; start?: string; beat: number } => JSON.parse(realReadFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number; start?: string; beat: number };
    const before = read();
    procFault.failing = true;
    try {
      // Two heartbeats while /proc fails: each checks ownership and rewrites the file.
      let beats = 0;
      let last = before.beat;
      await waitFor(() => {
        const beat = read().beat;
        if (beat > last) {
          beats++;
          last = beat;
        }
        return beats >= 2 || lost.length > 0;
      }, 5_000, 'two heartbeats');
    } finally {
      procFault.failing = false;
    }
    const after = read();
    await lock.release();
    expect(lost).toEqual([]);
    expect({ pid: after.pid, start: after.start }).toEqual({ pid: process.pid, start: before.start });
  });
});
