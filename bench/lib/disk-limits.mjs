/**
 * This disk's raw limits, measured with the simplest code that could write the same bytes: a tight
 * synchronous loop appending `batch` records of `recordBytes` per write(), with or without an fdatasync
 * after each write. Files roll every 64 MiB (appends grow the file, as a journal's do) and are deleted.
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const ROLL_BYTES = 64 * 1024 * 1024;

function loop({ dir, batch, recordBytes, maxMs, maxBytes, sync }) {
  const chunk = Buffer.alloc(batch * recordBytes, 0x61);
  let file = 0;
  let fd = openSync(join(dir, `raw-${file}`), 'a', 0o600);
  let inFile = 0;
  let written = 0;
  let writes = 0;
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  while (performance.now() < deadline && written < maxBytes) {
    writeSync(fd, chunk);
    if (sync) fdatasyncSync(fd);
    writes += 1;
    written += chunk.length;
    inFile += chunk.length;
    if (inFile >= ROLL_BYTES) {
      closeSync(fd);
      rmSync(join(dir, `raw-${file}`));
      file += 1;
      fd = openSync(join(dir, `raw-${file}`), 'a', 0o600);
      inFile = 0;
    }
  }
  const ms = performance.now() - t0;
  closeSync(fd);
  return { records: writes * batch, writes, ms, recordsPerSec: (writes * batch) / (ms / 1000), mibPerSec: written / 1048576 / (ms / 1000) };
}

/**
 * Measures records/s for `batch` x `recordBytes` per write, with fdatasync after every write when `sync`.
 * A short warm-up run is discarded.
 */
export function rawAppendLimit({ tmpRoot, batch = 256, recordBytes = 1024, maxMs, maxBytes = 4 * 1024 ** 3, sync }) {
  const dir = mkdtempSync(join(tmpRoot, sync ? 'raw-fsync-' : 'raw-write-'));
  try {
    loop({ dir, batch, recordBytes, maxMs: Math.min(300, maxMs), maxBytes: maxBytes / 8, sync });
    return loop({ dir, batch, recordBytes, maxMs, maxBytes, sync });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
