import { nodeFileSystem } from '../../src/store/file/file-system.js';
import type { FileSystem } from '../../src/store/file/file-system.js';

function sysError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall });
}

/**
 * A `FileSystem` over the real one that can inject faults and simulate a machine crash: it tracks how
 * much of each file was covered by an fsync, and `crash()` cuts every file back to that (optionally
 * keeping a torn part of what was not synced), as a power loss would.
 */
export class FaultFs implements FileSystem {
  /** Next fsync calls fail with this code (each entry is one call). */
  fsyncFaults: string[] = [];
  /** Next write calls fail with this code after writing `partial` bytes. */
  writeFaults: { code: string; partial: number }[] = [];
  /** Truncate calls fail with this code while set. */
  truncateFault: string | undefined;
  /** Next unlink calls of segment files fail with this code (each entry is one call). */
  unlinkFaults: string[] = [];
  /** Next creations of segment files fail with this code (each entry is one call). */
  createFaults: string[] = [];
  #paths = new Map<number, string>();
  #synced = new Map<string, number>();
  #sizes = new Map<string, number>();
  #crashed = false;

  mkdir = (path: string, mode: number) => this.#guard(() => nodeFileSystem.mkdir(path, mode));
  readdir = (path: string) => this.#guard(() => nodeFileSystem.readdir(path));
  read = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) =>
    this.#guard(() => nodeFileSystem.read(fd, buffer, offset, length, position));
  size = (fd: number) => this.#guard(() => nodeFileSystem.size(fd));

  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
    if (this.#crashed) throw sysError('EIO', 'after crash');
    return nodeFileSystem.readSync(fd, buffer, offset, length, position);
  }
  close = (fd: number) => this.#guard(() => nodeFileSystem.close(fd));
  rename = (from: string, to: string) => this.#guard(() => nodeFileSystem.rename(from, to));
  fsyncDir = (path: string) => this.#guard(() => nodeFileSystem.fsyncDir(path));

  async unlink(path: string): Promise<void> {
    const fault = path.endsWith('.log') ? this.unlinkFaults.shift() : undefined;
    if (fault !== undefined) throw sysError(fault, 'injected, unlink');
    await this.#guard(() => nodeFileSystem.unlink(path));
    this.#synced.delete(path);
    this.#sizes.delete(path);
  }

  async open(path: string, flags: 'r' | 'r+' | 'wx' | 'wx+', mode?: number): Promise<number> {
    const fault = flags === 'wx+' && path.endsWith('.log') ? this.createFaults.shift() : undefined;
    if (fault !== undefined) throw sysError(fault, 'injected, open');
    const fd = await this.#guard(() => nodeFileSystem.open(path, flags, mode));
    this.#paths.set(fd, path);
    if (!this.#sizes.has(path)) {
      const size = await nodeFileSystem.size(fd);
      this.#sizes.set(path, size);
      this.#synced.set(path, size);
    }
    return fd;
  }

  write(fd: number, data: Uint8Array, position: number): number {
    const fault = this.writeFaults.shift();
    const path = this.#paths.get(fd) as string;
    if (fault !== undefined) {
      if (fault.partial > 0) nodeFileSystem.write(fd, data.subarray(0, Math.min(fault.partial, data.byteLength)), position);
      this.#sizes.set(path, Math.max(this.#sizes.get(path) ?? 0, position + Math.min(fault.partial, data.byteLength)));
      throw sysError(fault.code, 'write');
    }
    if (this.#crashed) throw sysError('EIO', 'after crash');
    const written = nodeFileSystem.write(fd, data, position);
    this.#sizes.set(path, Math.max(this.#sizes.get(path) ?? 0, position + written));
    return written;
  }

  /** fsync calls started so far (successful or not). */
  fsyncsStarted = 0;
  /** The highest `fsyncsStarted` number of an fsync that returned successfully before a crash. */
  lastSyncedStart = 0;

  async fsync(fd: number): Promise<void> {
    const start = ++this.fsyncsStarted;
    const fault = this.fsyncFaults.shift();
    if (fault !== undefined) throw sysError(fault, 'fsync');
    await this.#guard(() => nodeFileSystem.fsync(fd));
    // A crash while the fsync ran: the machine went down before anyone could hear that it returned.
    if (this.#crashed) throw sysError('EIO', 'crash during fsync');
    const path = this.#paths.get(fd) as string;
    this.#synced.set(path, this.#sizes.get(path) ?? 0);
    this.lastSyncedStart = Math.max(this.lastSyncedStart, start);
  }

  async truncate(fd: number, length: number): Promise<void> {
    if (this.truncateFault !== undefined) throw sysError(this.truncateFault, 'ftruncate');
    await this.#guard(() => nodeFileSystem.truncate(fd, length));
    const path = this.#paths.get(fd) as string;
    this.#sizes.set(path, length);
    this.#synced.set(path, Math.min(this.#synced.get(path) ?? 0, length));
  }

  /**
   * Simulates a crash: every later call fails with EIO, and each file is cut back to its fsync'd
   * length plus `torn(unsynced)` bytes of what was written after it.
   */
  async crash(torn: (unsynced: number) => number = () => 0): Promise<void> {
    this.#crashed = true;
    const { truncate } = await import('node:fs/promises');
    for (const [path, size] of this.#sizes) {
      const synced = this.#synced.get(path) ?? 0;
      const keep = synced + Math.max(0, Math.min(size - synced, torn(size - synced)));
      if (keep < size) await truncate(path, keep).catch(() => undefined);
    }
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#crashed) throw sysError('EIO', 'after crash');
    return fn();
  }
}
