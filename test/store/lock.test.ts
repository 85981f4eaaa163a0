import { readFileSync, readlinkSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { nodeFileSystem } from '../../src/store/file/file-system.js';
import { LOCK_FILE, LOCK_LEASE_MS, acquireLock } from '../../src/store/file/lock.js';
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
    const lock = await acquireLock(nodeFileSystem, dir, 20);
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
