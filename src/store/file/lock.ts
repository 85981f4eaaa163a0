import { readFileSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { OutboxLockedError } from '../../errors.js';
import type { FileSystem } from './file-system.js';
import { isCode, readFully, writeFully } from './file-system.js';

/** Name of the lock file inside an outbox directory. */
export const LOCK_FILE = 'LOCK';

/**
 * Directories (by real path) locked by this process, or being locked right now: a second `open()` in the
 * same process is refused too, also one started before the first finished, or through another path.
 */
const lockedHere = new Set<string>();
const lockingHere = new Set<string>();

/** The key of `dir` in {@link lockedHere}: its real path (a symlink is the same directory). */
function dirKey(dir: string): string {
  try {
    return realpathSync.native(dir);
  } catch {
    return resolve(dir);
  }
}

/** How long a lock file that does not hold an owner yet gets to be written by the process that made it. */
const UNWRITTEN_LOCK_GRACE_MS = 50;

interface LockContent {
  pid: number;
  /** Process start time in clock ticks since boot (Linux `/proc/<pid>/stat`), to detect a reused pid. */
  start?: string;
}

/** A held lock on an outbox directory. */
export interface DirectoryLock {
  release(): Promise<void>;
}

function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 22 (starttime); the command name (field 2) may contain spaces, so count from its closing paren.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether the owner recorded in a lock file is still running. A pid that exists but started at a
 * different time than recorded is a reused pid, so the lock is stale.
 */
function ownerAlive(content: LockContent, dir: string): boolean {
  if (content.pid === process.pid) return lockedHere.has(dirKey(dir));
  try {
    process.kill(content.pid, 0);
  } catch (error) {
    if (!isCode(error, 'EPERM')) return false;
  }
  if (content.start === undefined) return true;
  const start = processStart(content.pid);
  return start === undefined || start === content.start;
}

async function readOwner(fsys: FileSystem, path: string): Promise<LockContent | undefined> {
  let fd: number;
  try {
    fd = await fsys.open(path, 'r');
  } catch (error) {
    if (isCode(error, 'ENOENT')) return undefined;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(256);
    const read = await readFully(fsys, fd, buffer, buffer.length, 0);
    const parsed = JSON.parse(buffer.toString('utf8', 0, read)) as Partial<LockContent>;
    return typeof parsed.pid === 'number' && Number.isSafeInteger(parsed.pid) && parsed.pid > 0
      ? { pid: parsed.pid, ...(typeof parsed.start === 'string' ? { start: parsed.start } : {}) }
      : undefined;
  } catch {
    return undefined;
  } finally {
    await fsys.close(fd);
  }
}

/** Reads the pid of a live owner of `dir`, or `undefined` when nobody holds the lock. */
export async function lockOwner(fsys: FileSystem, dir: string): Promise<number | undefined> {
  const owner = await readOwner(fsys, join(dir, LOCK_FILE));
  return owner !== undefined && ownerAlive(owner, dir) ? owner.pid : undefined;
}

/**
 * Takes the exclusive lock of `dir` (created with `O_EXCL`, holding this pid and its start time).
 * A lock left by a dead process, or by an earlier process that had this same pid (a container that
 * restarted as pid 1), is taken over at once.
 */
export async function acquireLock(fsys: FileSystem, dir: string): Promise<DirectoryLock> {
  const key = dirKey(dir);
  // Reserved before the first await: two open() calls of this process cannot both get past here.
  if (lockedHere.has(key) || lockingHere.has(key)) throw new OutboxLockedError(dir, process.pid);
  lockingHere.add(key);
  try {
    return await takeLock(fsys, dir, key);
  } finally {
    lockingHere.delete(key);
  }
}

async function takeLock(fsys: FileSystem, dir: string, key: string): Promise<DirectoryLock> {
  const path = join(dir, LOCK_FILE);
  const start = processStart(process.pid);
  const content = Buffer.from(JSON.stringify({ pid: process.pid, ...(start === undefined ? {} : { start }) }));
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = await fsys.open(path, 'wx', 0o600);
    } catch (error) {
      if (!isCode(error, 'EEXIST')) throw error;
      let owner = await readOwner(fsys, path);
      if (owner === undefined) {
        // Empty or unreadable: maybe a live owner between creating the file and writing its pid.
        await delay(UNWRITTEN_LOCK_GRACE_MS);
        owner = await readOwner(fsys, path);
      }
      if ((owner !== undefined && ownerAlive(owner, dir)) || attempt > 0) throw new OutboxLockedError(dir, owner?.pid);
      // Stale: remove it and race for it once more with O_EXCL, so two takers cannot both win.
      try {
        await fsys.unlink(path);
      } catch (unlinkError) {
        if (!isCode(unlinkError, 'ENOENT')) throw unlinkError;
      }
      continue;
    }
    try {
      writeFully(fsys, fd, content, 0);
      await fsys.fsync(fd);
    } finally {
      await fsys.close(fd);
    }
    await fsys.fsyncDir(dir);
    lockedHere.add(key);
    let released = false;
    return {
      async release() {
        if (released) return;
        released = true;
        lockedHere.delete(key);
        try {
          await fsys.unlink(path);
        } catch (error) {
          if (!isCode(error, 'ENOENT')) throw error;
        }
      },
    };
  }
}
