import * as fs from 'node:fs';

/**
 * The file operations `FileStore` uses, as a seam: the default is `node:fs`; tests wrap it to inject
 * EIO on fsync, ENOSPC on write, or a crash that drops everything not yet fsync'd. Paths are absolute.
 */
export interface FileSystem {
  /** Creates a directory (and its parents) with `mode`; succeeds when it exists. */
  mkdir(path: string, mode: number): Promise<void>;
  /** Lists the names in a directory. */
  readdir(path: string): Promise<string[]>;
  /** Opens a file and returns its descriptor. `flags` as for `fs.open` (`'r'`, `'r+'`, `'wx'`, `'wx+'`). */
  open(path: string, flags: 'r' | 'r+' | 'wx' | 'wx+', mode?: number): Promise<number>;
  /**
   * Writes `data` at `position` and returns the number of bytes written (may be fewer). Synchronous: a
   * write only copies into the page cache, and handing that to libuv's thread pool costs more than the
   * copy (on a 2-vCPU VM about 60 us of CPU per call against 5 us; docs/12). fsync stays asynchronous.
   */
  write(fd: number, data: Uint8Array, position: number): number;
  /** Reads into `buffer[offset, offset + length)` from `position`; resolves with the bytes read. */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** The same, synchronously: for bytes this process wrote recently, which the page cache holds. */
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  /**
   * Flushes a file's data, and the metadata needed to read it back (its size), to stable storage: the
   * default is `fdatasync`, which skips timestamps (about 8% less time per group commit here, docs/12).
   */
  fsync(fd: number): Promise<void>;
  /** Cuts a file to `length` bytes. */
  truncate(fd: number, length: number): Promise<void>;
  /** The size of an open file in bytes. */
  size(fd: number): Promise<number>;
  /** Closes a descriptor. */
  close(fd: number): Promise<void>;
  /** Renames a file (atomic within one file system). */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file. */
  unlink(path: string): Promise<void>;
  /** Makes a directory's entries (created, renamed, deleted files) durable. Best effort where unsupported. */
  fsyncDir(path: string): Promise<void>;
}

function call<T>(fn: (callback: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((error, value) => (error ? reject(error) : resolve(value)));
  });
}

/** The real file system (`node:fs`, callback API, no `FileHandle` objects to leak). */
export const nodeFileSystem: FileSystem = {
  mkdir: (path, mode) => call<string | undefined>((cb) => fs.mkdir(path, { recursive: true, mode }, cb)).then(() => undefined),
  readdir: (path) => call<string[]>((cb) => fs.readdir(path, cb)),
  open: (path, flags, mode = 0o600) => call<number>((cb) => fs.open(path, flags, mode, cb)),
  write: (fd, data, position) => fs.writeSync(fd, data, 0, data.byteLength, position),
  read: (fd, buffer, offset, length, position) => call<number>((cb) => fs.read(fd, buffer, offset, length, position, cb)),
  readSync: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  fsync: (fd) => call<void>((cb) => fs.fdatasync(fd, (error) => cb(error, undefined))),
  truncate: (fd, length) => call<void>((cb) => fs.ftruncate(fd, length, (error) => cb(error, undefined))),
  size: (fd) => call<fs.Stats>((cb) => fs.fstat(fd, cb)).then((stats) => stats.size),
  close: (fd) => call<void>((cb) => fs.close(fd, (error) => cb(error, undefined))),
  rename: (from, to) => call<void>((cb) => fs.rename(from, to, (error) => cb(error, undefined))),
  unlink: (path) => call<void>((cb) => fs.unlink(path, (error) => cb(error, undefined))),
  async fsyncDir(path) {
    let fd: number;
    try {
      fd = await call<number>((cb) => fs.open(path, 'r', cb));
    } catch (error) {
      if (isCode(error, 'EISDIR') || isCode(error, 'EPERM') || isCode(error, 'EACCES')) return;
      throw error;
    }
    try {
      await call<void>((cb) => fs.fsync(fd, (error) => cb(error, undefined)));
    } catch (error) {
      // Some platforms (Windows, some network file systems) refuse fsync on a directory.
      if (!isCode(error, 'EINVAL') && !isCode(error, 'EPERM') && !isCode(error, 'EISDIR') && !isCode(error, 'EBADF')) throw error;
    } finally {
      await call<void>((cb) => fs.close(fd, (error) => cb(error, undefined)));
    }
  },
};

/** Whether `error` is a system error with this `code`. */
export function isCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/** Writes all of `data` at `position`, looping over short writes. */
export function writeFully(fsys: FileSystem, fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.byteLength) {
    const written = fsys.write(fd, done === 0 ? data : data.subarray(done), position + done);
    if (written <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += written;
  }
}

/** Reads exactly `length` bytes at `position` (fewer only at end of file), synchronously. */
export function readFullySync(fsys: FileSystem, fd: number, buffer: Uint8Array, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const read = fsys.readSync(fd, buffer, done, length - done, position + done);
    if (read === 0) break;
    done += read;
  }
  return done;
}

/** Reads exactly `length` bytes at `position` (fewer only at end of file); resolves with the bytes read. */
export async function readFully(fsys: FileSystem, fd: number, buffer: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const read = await fsys.read(fd, buffer, done, length - done, position + done);
    if (read === 0) break;
    done += read;
  }
  return done;
}
