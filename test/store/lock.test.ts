import { readFileSync, readlinkSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { nodeFileSystem } from '../../src/store/file/file-system.js';
import { LOCK_FILE, LOCK_HEARTBEAT_MS, LOCK_LEASE_MS, acquireLock } from '../../src/store/file/lock.js';
import { makeEvent } from './contract.js';
import { FaultFs } from './fault-fs.js';
import { waitFor } from '../outbox-helpers.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('lock');

/** Leaves a lock file as another owner would have written it. */
async function leaveLock(dir: string, content: Record<string, unknown>): Promise<void> {
  await writeFile(join(dir, LOCK_FILE), JSON.stringify(content), { mode: 0o600 });
}

async function lockContent(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as Record<string, unknown>;
}

const BOOT = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
const PIDNS = readlinkSync('/proc/self/ns/pid');

describe('Directory lock', () => {
  it('keeps a lock held on another host while its heartbeat is younger than the lease, and takes it over after', async () => {
    const dir = await newDir();
    // Pid 1 runs here (init), so a pid check alone would not tell; the host says it is someone else's pid.
    await leaveLock(dir, { pid: 1, start: '1', host: 'sibling-host', boot: 'b', pidns: 'pid:[1]', beat: Date.now() - 5_000 });
    const refused = new FileStore({ dir }).open();
    await expect(refused).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED', pid: 1, host: 'sibling-host' });
    await expect(refused).rejects.toThrow(/locked by pid 1 on host sibling-host/);
    expect(await FileStore.inspect(dir)).toMatchObject({ ownerPid: 1, ownerHost: 'sibling-host' });
    expect((await lockContent(dir)).host).toBe('sibling-host');

    await leaveLock(dir, { pid: 1, host: 'sibling-host', beat: Date.now() - LOCK_LEASE_MS - 1_000 });
    expect(await FileStore.inspect(dir)).toMatchObject({ ownerPid: undefined, ownerHost: undefined });
    const store = new FileStore({ dir });
    await store.open();
    expect(await lockContent(dir)).toMatchObject({ pid: process.pid, host: hostname(), boot: BOOT });
    await store.close();
  });

  it('takes over at once a lock of this host from another boot or pid namespace (an earlier run of this machine or container)', async () => {
    for (const other of [{ boot: 'an-earlier-boot', pidns: PIDNS }, { boot: BOOT, pidns: 'pid:[1]' }]) {
      const dir = await newDir();
      // Pid 1 runs here, and with no start time recorded a pid check alone would call it alive.
      await leaveLock(dir, { pid: 1, host: hostname(), beat: Date.now(), ...other });
      const store = new FileStore({ dir });
      await store.open();
      expect(await lockContent(dir)).toMatchObject({ pid: process.pid, boot: BOOT, pidns: PIDNS });
      await store.close();
    }
  });

  it('rewrites its heartbeat while held, and stops with release', async () => {
    const dir = await newDir();
    const lock = await acquireLock(nodeFileSystem, dir, { heartbeatMs: 20 });
    const first = (await lockContent(dir)).beat as number;
    expect(Math.abs(first - Date.now())).toBeLessThan(5_000);
    let latest = first;
    await waitFor(() => {
      latest = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).beat as number;
      return latest > first;
    }, 5_000, 'a newer heartbeat');
    await lock.release();
    await expect(readFile(join(dir, LOCK_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(dir, { recursive: true, force: true });
  });
});

describe('Directory lock taken over while held', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** What another host leaves after taking the lock over as stale (a longer JSON than ours). */
  const theirs = { pid: 7, start: '123456', host: `replica-${'x'.repeat(40)}`, boot: 'b'.repeat(36), pidns: 'pid:[4026532999]', beat: Date.now() };

  it('stops its heartbeat without touching the new owner\'s file, reports the owner, and release leaves that file', async () => {
    const dir = await newDir();
    const lost: unknown[] = [];
    const lock = await acquireLock(nodeFileSystem, dir, { heartbeatMs: 20, onLost: (owner) => lost.push(owner) });
    // This process stalled past the lease (a paused VM, a blocked event loop); another host took the lock.
    await rm(join(dir, LOCK_FILE));
    await leaveLock(dir, theirs);
    await waitFor(() => lost.length > 0, 5_000, 'the loss to be noticed');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(lost).toEqual([{ pid: 7, host: theirs.host }]);
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(JSON.stringify(theirs));
    await lock.release();
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(JSON.stringify(theirs));
    expect(await FileStore.inspect(dir)).toMatchObject({ ownerPid: 7, ownerHost: theirs.host });
  });

  it('fails every FileStore operation with ERR_OUTBOX_LOCKED after the next heartbeat; what it accepted stays', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('before')]);
    await rm(join(dir, LOCK_FILE));
    await leaveLock(dir, theirs);
    vi.advanceTimersByTime(LOCK_HEARTBEAT_MS);
    // The heartbeat reads LOCK asynchronously: poll with a claim of nothing until the store refuses.
    let failure: unknown;
    for (let i = 0; i < 500 && failure === undefined; i++) {
      failure = await store.claim({ limit: 0, now: Date.now() }).then(() => undefined, (error: unknown) => error);
      if (failure === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(failure).toMatchObject({ code: 'ERR_OUTBOX_LOCKED', pid: 7, host: theirs.host });
    await expect(store.append([makeEvent('after')])).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED' });
    await store.close();
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(JSON.stringify(theirs));
    await rm(join(dir, LOCK_FILE));
    const reopened = new FileStore({ dir });
    await reopened.open();
    expect(reopened.stats().pending).toBe(1);
    await reopened.close();
  });
});

describe('Directory lock heartbeat and a transient read error', () => {
  it('does not report its own live lock as lost when one read of LOCK fails (EIO) or comes back short', async () => {
    for (const fault of ['EIO', 'short'] as const) {
      const dir = await newDir();
      let failNextRead = false;
      const fsys = {
        ...nodeFileSystem,
        read: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> => {
          if (failNextRead) {
            failNextRead = false;
            if (fault === 'EIO') return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
            return Promise.resolve(0);
          }
          return nodeFileSystem.read(fd, buffer, offset, length, position);
        },
      };
      const lost: unknown[] = [];
      let beats = 0;
      const lock = await acquireLock(fsys, dir, { heartbeatMs: 20, onLost: (owner) => lost.push(owner) });
      failNextRead = true;
      const first = (await lockContent(dir)).beat as number;
      await waitFor(() => {
        const beat = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).beat as number;
        if (beat > first) beats++;
        return beats > 0 || lost.length > 0;
      }, 5_000, 'a heartbeat or a loss');
      await new Promise((resolve) => setTimeout(resolve, 100));
      await lock.release();
      expect({ fault, lost }).toEqual({ fault, lost: [] });
    }
  });
});

describe('Directory lock that cannot be made durable', () => {
  it('leaves no LOCK behind when its fsync fails, so the next open (here or elsewhere) can take it', async () => {
    const dir = await newDir();
    const fs = new FaultFs();
    fs.fsyncFaults.push('EIO');
    await expect(acquireLock(fs, dir)).rejects.toMatchObject({ code: 'EIO' });
    await expect(readFile(join(dir, LOCK_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
    const lock = await acquireLock(nodeFileSystem, dir);
    await lock.release();
  });
});
