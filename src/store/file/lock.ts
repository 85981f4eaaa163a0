import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
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

/**
 * How often the owner rewrites `beat` in its lock file, and how long an owner on another host (whose
 * pid cannot be checked from here) may stay silent before its lock counts as stale.
 */
export const LOCK_HEARTBEAT_MS = 10_000;
export const LOCK_LEASE_MS = 30_000;

interface LockContent {
  pid: number;
  /** Process start time in clock ticks since boot (Linux `/proc/<pid>/stat`), to detect a reused pid. */
  start?: string;
  /** The owner's host name: a container's own unless it shares the host's UTS namespace. */
  host?: string;
  /** The kernel's boot id and the owner's pid namespace (Linux): where its pid means something. */
  boot?: string;
  pidns?: string;
  /** When the owner last wrote the file (ms since the epoch, its clock). */
  beat?: number;
}

/** Where this process's pids mean something (fields are absent where `/proc` does not tell). */
interface PidSpace {
  host: string;
  boot?: string;
  pidns?: string;
}

let pidSpaceHere: PidSpace | undefined;

function procText(read: () => string): string | undefined {
  try {
    return read().trim();
  } catch {
    return undefined;
  }
}

function thisPidSpace(): PidSpace {
  if (pidSpaceHere === undefined) {
    const boot = procText(() => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1'));
    const pidns = procText(() => readlinkSync('/proc/self/ns/pid'));
    pidSpaceHere = { host: hostname(), ...(boot === undefined ? {} : { boot }), ...(pidns === undefined ? {} : { pidns }) };
  }
  return pidSpaceHere;
}

/** Who holds a lock: its pid, and its host when that is not this one. */
export interface LockOwner {
  pid: number;
  host?: string;
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
 * Whether the owner recorded in a lock file is still running. Its pid is checked when it lives in this
 * pid namespace: a pid that exists but started at a different time than recorded is a reused pid, so the
 * lock is stale. An owner on this host in another pid namespace, or before a reboot, is an earlier run of
 * this container or machine: stale. An owner on another host (another container or machine sharing the
 * directory) cannot be checked from here: it is alive while its heartbeat is younger than the lease.
 */
function ownerAlive(content: LockContent, dir: string): boolean {
  const here = thisPidSpace();
  if (content.host !== undefined && content.host !== here.host) {
    return content.beat !== undefined && Date.now() - content.beat < LOCK_LEASE_MS;
  }
  if ((content.boot !== undefined && content.boot !== here.boot) || (content.pidns !== undefined && content.pidns !== here.pidns)) return false;
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

function ownerOf(content: LockContent): LockOwner {
  return content.host === undefined || content.host === thisPidSpace().host ? { pid: content.pid } : { pid: content.pid, host: content.host };
}

let ownIdentity: LockContent | undefined;

/**
 * What this process writes into its lock files, read once: a transient failure to read `/proc` later must
 * not change it (the heartbeat would write another length, and no longer recognise its own lock).
 */
function identity(): LockContent {
  if (ownIdentity === undefined) {
    const start = processStart(process.pid);
    ownIdentity = { pid: process.pid, ...(start === undefined ? {} : { start }), ...thisPidSpace() };
  }
  return ownIdentity;
}

function lockContent(beat: number): Buffer {
  return Buffer.from(JSON.stringify({ ...identity(), beat }));
}

/** Whether a lock file's owner is this very process. */
function isThisProcess(content: LockContent): boolean {
  const me = identity();
  return content.pid === me.pid && content.start === me.start && content.host === me.host && content.boot === me.boot && content.pidns === me.pidns;
}

/** A lock file's owner; `'missing'` when there is no file, `'unreadable'` when it holds no owner (yet). */
async function readLock(fsys: FileSystem, path: string): Promise<LockContent | 'missing' | 'unreadable'> {
  let fd: number;
  try {
    fd = await fsys.open(path, 'r');
  } catch (error) {
    if (isCode(error, 'ENOENT')) return 'missing';
    throw error;
  }
  try {
    const buffer = Buffer.alloc(1024);
    const read = await readFully(fsys, fd, buffer, buffer.length, 0);
    const parsed = JSON.parse(buffer.toString('utf8', 0, read)) as Partial<Record<keyof LockContent, unknown>>;
    if (typeof parsed.pid !== 'number' || !Number.isSafeInteger(parsed.pid) || parsed.pid <= 0) return 'unreadable';
    const content: LockContent = { pid: parsed.pid };
    for (const key of ['start', 'host', 'boot', 'pidns'] as const) {
      const value = parsed[key];
      if (typeof value === 'string') content[key] = value;
    }
    if (typeof parsed.beat === 'number' && Number.isFinite(parsed.beat)) content.beat = parsed.beat;
    return content;
  } catch {
    return 'unreadable';
  } finally {
    await fsys.close(fd);
  }
}

async function readOwner(fsys: FileSystem, path: string): Promise<LockContent | undefined> {
  const owner = await readLock(fsys, path);
  return typeof owner === 'string' ? undefined : owner;
}

/** The live owner of `dir`, or `undefined` when nobody holds the lock. */
export async function lockOwner(fsys: FileSystem, dir: string): Promise<LockOwner | undefined> {
  const owner = await readOwner(fsys, join(dir, LOCK_FILE));
  return owner !== undefined && ownerAlive(owner, dir) ? ownerOf(owner) : undefined;
}

/**
 * Takes the exclusive lock of `dir` (created with `O_EXCL`, holding this pid, its start time, host, boot
 * and pid namespace, and a heartbeat rewritten every `heartbeatMs` while held). A lock left by a dead
 * process, or by an earlier process that had this same pid (a container that restarted as pid 1), is
 * taken over at once; one from another host once its heartbeat is older than {@link LOCK_LEASE_MS}.
 * A heartbeat that finds LOCK taken over (this process was silent past the lease) stops and calls
 * `onLost` with the new owner; `release()` then leaves that owner's file alone.
 */
export async function acquireLock(
  fsys: FileSystem,
  dir: string,
  options: { heartbeatMs?: number; onLost?: (owner: LockOwner | undefined) => void } = {},
): Promise<DirectoryLock> {
  const key = dirKey(dir);
  // Reserved before the first await: two open() calls of this process cannot both get past here.
  if (lockedHere.has(key) || lockingHere.has(key)) throw new OutboxLockedError(dir, process.pid);
  lockingHere.add(key);
  try {
    return await takeLock(fsys, dir, key, options.heartbeatMs ?? LOCK_HEARTBEAT_MS, options.onLost ?? (() => undefined));
  } finally {
    lockingHere.delete(key);
  }
}

async function takeLock(fsys: FileSystem, dir: string, key: string, heartbeatMs: number, onLost: (owner: LockOwner | undefined) => void): Promise<DirectoryLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = await fsys.open(path, 'wx+', 0o600);
    } catch (error) {
      if (!isCode(error, 'EEXIST')) throw error;
      let owner = await readOwner(fsys, path);
      if (owner === undefined) {
        // Empty or unreadable: maybe a live owner between creating the file and writing its pid.
        await delay(UNWRITTEN_LOCK_GRACE_MS);
        owner = await readOwner(fsys, path);
      }
      if ((owner !== undefined && ownerAlive(owner, dir)) || attempt > 0) {
        const holder = owner === undefined ? undefined : ownerOf(owner);
        throw new OutboxLockedError(dir, holder?.pid, holder?.host);
      }
      // Stale: remove it and race for it once more with O_EXCL, so two takers cannot both win.
      try {
        await fsys.unlink(path);
      } catch (unlinkError) {
        if (!isCode(unlinkError, 'ENOENT')) throw unlinkError;
      }
      continue;
    }
    try {
      writeFully(fsys, fd, lockContent(Date.now()), 0);
      await fsys.fsync(fd);
      await fsys.fsyncDir(dir);
    } catch (error) {
      // Not taken after all: a LOCK naming this live process would shut every other opener out.
      await fsys.close(fd).catch(() => undefined);
      await fsys.unlink(path).catch(() => undefined);
      throw error;
    }
    lockedHere.add(key);
    let released = false;
    // Whether LOCK is still this process's: `true`; the owner that took it over (`undefined`: LOCK was
    // deleted); or `'unknown'` when it could not be read or parsed this time (ask again at the next beat).
    const stillOurs = async (): Promise<true | LockOwner | undefined | 'unknown'> => {
      const owner = await readLock(fsys, path).catch(() => 'unreadable' as const);
      if (owner === 'missing') return undefined;
      if (owner === 'unreadable') return 'unknown';
      return isThisProcess(owner) ? true : ownerOf(owner);
    };
    // The heartbeat rewrites this process's own file through its descriptor, never one that replaced it
    // (no fsync: after a crash of this host the beat is old anyway). Finding LOCK taken over or deleted,
    // it stops and reports: another process owns the journal now.
    const heartbeat = setInterval(() => {
      void stillOurs()
        .then(async (owner) => {
          if (released || owner === 'unknown') return;
          if (owner === true) {
            const content = lockContent(Date.now());
            writeFully(fsys, fd, content, 0);
            await fsys.truncate(fd, content.length);
          } else {
            clearInterval(heartbeat);
            onLost(owner);
          }
        })
        .catch(() => undefined);
    }, heartbeatMs);
    heartbeat.unref();
    return {
      async release() {
        if (released) return;
        released = true;
        clearInterval(heartbeat);
        lockedHere.delete(key);
        try {
          // Only our own file: a process that took the lock over keeps its lock.
          if ((await stillOurs()) === true) await fsys.unlink(path);
        } catch (error) {
          if (!isCode(error, 'ENOENT')) throw error;
        } finally {
          await fsys.close(fd).catch(() => undefined);
        }
      },
    };
  }
}
