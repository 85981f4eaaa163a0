import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { Outbox } from '../src/outbox.js';
import { FileStore } from '../src/store/file/file-store.js';
import { closedAfterEach } from './outbox-helpers.js';
import { FaultFs } from './store/fault-fs.js';
import { tempDirs } from './store/temp-dir.js';

const opened = closedAfterEach();
const tempDir = tempDirs('supersede-fault');

describe('FileStore on a full disk with a superseded event to remove', () => {
  it('the flusher pauses after the failed write instead of re-claiming and re-failing at I/O speed', async () => {
    const clock = new FakeClock();
    const fs = new FaultFs();
    const dir = await tempDir();
    const store = new FileStore({ dir, fs });
    const box = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:9/hook', clock, autoFlush: false }));
    let errors = 0;
    box.on('error', () => errors++);
    await box.enqueue({ orderingKey: 'k', body: { n: 1 } });
    await box.enqueue({ orderingKey: 'k', supersede: true, body: { n: 2 } });
    // The disk is full from now on (100 writes).
    fs.writeFaults = Array.from({ length: 100 }, () => ({ code: 'ENOSPC', partial: 0 }));
    const draining = box.drain({ timeoutMs: 60_000 }).catch(() => undefined);
    // The fake clock never moves: a flusher that pauses after a store fault fails once or twice.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const seen = { errors, writeFaultsLeft: fs.writeFaults.length, files: (await readdir(dir)).length };
    fs.writeFaults = [];
    clock.advance(60_000);
    await draining;
    expect(seen.errors, JSON.stringify(seen)).toBeLessThanOrEqual(2);
  });
});
