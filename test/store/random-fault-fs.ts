import { nodeFileSystem } from '../../src/store/file/file-system.js';
import type { FileSystem } from '../../src/store/file/file-system.js';
import { seededRandom } from './seeded-random.js';

export type FaultKind = 'create' | 'write' | 'fsync' | 'fsyncDir' | 'unlink' | 'truncate' | 'read' | 'rename';

function sysError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall });
}

/**
 * A `FileSystem` over the real one that fails calls at random (seeded): creating a segment, writing
 * (after a random part of the data reached the file), fsync, fsync of the directory, unlink, truncate,
 * read. `enabled` switches the faults on and off; `log` says which ones fired.
 */
export class RandomFaultFs implements FileSystem {
  enabled = true;
  readonly log: string[] = [];
  readonly #random: () => number;
  readonly #rates: Partial<Record<FaultKind, number>>;

  constructor(seed: number, rates: Partial<Record<FaultKind, number>>) {
    this.#random = seededRandom(seed);
    this.#rates = rates;
  }

  /** A number in [0, 1) from the seeded sequence (for the caller's own choices too). */
  random(): number {
    return this.#random();
  }

  #fault(kind: FaultKind): string | undefined {
    if (!this.enabled) return undefined;
    const rate = this.#rates[kind] ?? 0;
    if (rate === 0 || this.#random() >= rate) return undefined;
    const code = kind === 'write' || kind === 'create' ? (this.#random() < 0.5 ? 'ENOSPC' : 'EIO') : 'EIO';
    this.log.push(`${kind}:${code}`);
    return code;
  }

  mkdir = (path: string, mode: number): Promise<void> => nodeFileSystem.mkdir(path, mode);
  readdir = (path: string): Promise<string[]> => nodeFileSystem.readdir(path);
  size = (fd: number): Promise<number> => nodeFileSystem.size(fd);
  close = (fd: number): Promise<void> => nodeFileSystem.close(fd);
  readSync = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number =>
    nodeFileSystem.readSync(fd, buffer, offset, length, position);

  async read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const code = this.#fault('read');
    if (code !== undefined) throw sysError(code, 'read');
    return nodeFileSystem.read(fd, buffer, offset, length, position);
  }

  async open(path: string, flags: 'r' | 'r+' | 'wx' | 'wx+', mode?: number): Promise<number> {
    if (flags === 'wx+' && path.endsWith('.log')) {
      const code = this.#fault('create');
      if (code !== undefined) throw sysError(code, 'open');
    }
    return nodeFileSystem.open(path, flags, mode);
  }

  write(fd: number, data: Uint8Array, position: number): number {
    const code = this.#fault('write');
    if (code !== undefined) {
      const partial = Math.floor(this.#random() * data.byteLength);
      if (partial > 0) nodeFileSystem.write(fd, data.subarray(0, partial), position);
      throw sysError(code, 'write');
    }
    return nodeFileSystem.write(fd, data, position);
  }

  async fsync(fd: number): Promise<void> {
    const code = this.#fault('fsync');
    if (code !== undefined) throw sysError(code, 'fsync');
    return nodeFileSystem.fsync(fd);
  }

  async fsyncDir(path: string): Promise<void> {
    const code = this.#fault('fsyncDir');
    if (code !== undefined) throw sysError(code, 'fsync');
    return nodeFileSystem.fsyncDir(path);
  }

  async truncate(fd: number, length: number): Promise<void> {
    const code = this.#fault('truncate');
    if (code !== undefined) throw sysError(code, 'ftruncate');
    return nodeFileSystem.truncate(fd, length);
  }

  async unlink(path: string): Promise<void> {
    if (path.endsWith('.log')) {
      const code = this.#fault('unlink');
      if (code !== undefined) throw sysError(code, 'unlink');
    }
    return nodeFileSystem.unlink(path);
  }

  async rename(from: string, to: string): Promise<void> {
    const code = this.#fault('rename');
    if (code !== undefined) throw sysError(code, 'rename');
    return nodeFileSystem.rename(from, to);
  }
}
