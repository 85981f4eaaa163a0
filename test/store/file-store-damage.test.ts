import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../../src/store/file/file-system.js';
import { frameLength, HEADER_BYTES } from '../../src/store/file/format.js';
import { FileStore } from '../../src/store/file/file-store.js';
import type { FileStoreOptions } from '../../src/store/file/file-store.js';
import { makeEvent } from './contract.js';
import { FaultFs } from './fault-fs.js';
import { tempDirs } from './temp-dir.js';

/*
 * FileStore under faults and on-disk damage: each case was a defect a review found by fault injection;
 * the comment above it says the scenario, what docs/05-durability.md promises, what happened before the
 * fix, and why a user would care.
 */

const newDir = tempDirs('rev-defects');
const T0 = 1_700_000_000_000;
const ok = { at: T0, durationMs: 1, status: 200 };

async function segments(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('segment-')).sort();
}

/** A store on a FaultFs with 4 KiB segments, its first segment filled with `count` events. */
async function firstSegmentFull(): Promise<{ dir: string; fs: FaultFs; store: FileStore; count: number }> {
  const dir = await newDir();
  const fs = new FaultFs();
  const store = new FileStore({ dir, fs, segmentBytes: 4096 });
  await store.open();
  let count = 0;
  while (store.stats().bytesOnDisk < 4096) await store.append([makeEvent(`e${count++}`)]);
  return { dir, fs, store, count };
}

describe('FileStore: fault and damage cases found by a review', () => {
  /*
   * Scenario: a commit finds the active segment at its target size and starts a new one; the fsync of the
   * segment being left (it holds records written without an fsync: every record with durability 'write',
   * outcomes with 'fsync') fails once with EIO. The disk is fine afterwards.
   * Expected (docs/05 "Failures while running"): "fsync fails: the commit's promises reject ... the store
   * ... truncates it back to the last durable byte and starts a new segment"; only "if that repair fails
   * too" does the store enter its failed state. A failed fsync of outcomes "takes the fsync-failure path
   * above: the store goes on in a new segment".
   * Before the fix: `#roll()` rejects, `#commit` treats any roll failure as fatal and sets the failed state without
   * trying the repair: every later call rejects with ERR_STORE_IO "cannot start a new segment" until the
   * process reopens the store. (The rejected commit is also reported as "writing the journal".)
   * Why it matters: one transient EIO on fsync at the wrong moment (with 'write', every roll fsyncs) stops
   * all enqueues and deliveries until a restart, where the documented path would have gone on.
   */
  it('a failed fsync of the segment being left at a roll rejects that commit and the store goes on (the documented repair)', async () => {
    const results: Record<string, string> = {};
    for (const durability of ['write', 'fsync'] as const) {
      const dir = await newDir();
      const fs = new FaultFs();
      const store = new FileStore({ dir, fs, segmentBytes: 4096, durability });
      await store.open();
      let n = 0;
      if (durability === 'write') {
        while (store.stats().bytesOnDisk < 4096) await store.append([makeEvent(`e${n++}`)]);
      } else {
        while (store.stats().bytesOnDisk < 3800) await store.append([makeEvent(`e${n++}`)]);
        // Outcomes (written, fsync'd only within 100 ms) take the segment past its target.
        const { events } = await store.claim({ limit: 100, now: T0 });
        await store.settle(events.map((e) => ({ id: e.id, type: 'retry' as const, attempt: { ...ok, status: 500 }, nextAttemptAt: T0, countsAsAttempt: true })));
        expect(store.stats().bytesOnDisk).toBeGreaterThan(4096);
      }
      fs.fsyncFaults.push('EIO');
      await expect(store.append([makeEvent('rejected')])).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
      // The disk works again: the store should go on.
      results[durability] = await store.append([makeEvent('later')]).then(
        () => 'accepted',
        (error: Error) => error.message,
      );
      await store.close().catch(() => undefined);
    }
    expect(results).toEqual({ write: 'accepted', fsync: 'accepted' });
  });

  /*
   * Scenario: two dead letters; `replay()` reads each one's history from disk before writing; the read of
   * the second fails once (EIO: a bad sector, a network file system hiccup), so replay() rejects. The
   * operator runs replay() again once the disk answers.
   * Expected: the failed replay changed nothing (docs/05: failures reject and the store goes on); the second
   * replay() replays both dead letters, purge() can delete them.
   * Before the fix: replay() marked the first dead letter busy before the read of the second failed, and the throw
   * skips the code that clears it: until the store is reopened that dead letter is skipped by replay(),
   * purge() and moveEndpoint() (they resolve with 0 for it, no error), while deadLetters() still lists it.
   * Why it matters: an operator's replay or purge of dead letters silently does nothing for them, for as
   * long as the process runs.
   */
  it('a replay() that fails on a read leaves the dead letters free: a later replay() and purge() take them', async () => {
    const dir = await newDir();
    const first = new FileStore({ dir });
    await first.open();
    await first.append([makeEvent('d1'), makeEvent('d2')]);
    await first.claim({ limit: 10, now: T0 });
    await first.settle(['d1', 'd2'].map((id) => ({ id, type: 'dead' as const, reason: 'http-status' as const, at: T0 })));
    await first.close();
    // Reopened: its segment was not written by this process, so its records are read with fs.read.
    const fs = new FaultFs();
    let failReadsFrom = Infinity;
    let reads = 0;
    fs.read = (fd, buffer, offset, length, position) => {
      if (++reads >= failReadsFrom) {
        failReadsFrom = Infinity;
        return Promise.reject(Object.assign(new Error('EIO: injected fault, read'), { code: 'EIO' }));
      }
      return nodeFileSystem.read(fd, buffer, offset, length, position);
    };
    const store = new FileStore({ dir, fs });
    await store.open();
    // d1: its event record and its state record; the third read (d2's event record) fails.
    failReadsFrom = reads + 3;
    await expect(store.replay(undefined, T0)).rejects.toMatchObject({ code: 'ERR_STORE_IO' });
    expect((await store.deadLetters()).map((d) => d.id)).toEqual(['d1', 'd2']);
    const purged = await store.purge(['d1']);
    const replayed = await store.replay(['d1', 'd2'], T0);
    await store.close();
    expect({ purged, replayed }).toEqual({ purged: 1, replayed: 1 });
  });

  /*
   * Scenario: a segment is fully settled but its deletion failed while running (the store carries on, as
   * documented: "can wait for the next commit or the next open"). At the next open, deleting it fails again
   * (EPERM: e.g. an immutable flag set by a backup tool, or a file system that refuses unlink for a while).
   * Expected (docs/05 "Recovery"): "Recovery never refuses to start"; a settled segment that cannot be
   * deleted yet holds nothing live and can stay until a later try, as it does while running.
   * Before the fix: `#recover` ends with `await this.#collect()`, whose unlink error propagates: open() rejects with
   * ERR_STORE_IO, and keeps rejecting for as long as that one garbage file cannot be deleted, although every
   * event could be read and new ones appended.
   * Why it matters: the outbox does not start at all (no enqueue, no delivery) because of a file it only
   * wanted to clean up.
   */
  it('open() starts when deleting an already settled segment fails', async () => {
    const { dir, fs, store } = await firstSegmentFull();
    await store.append([makeEvent('kept')]);
    const { events } = await store.claim({ limit: 1000, now: T0 });
    fs.unlinkFaults.push('EIO');
    await store.settle(events.filter((e) => e.id !== 'kept').map((e) => ({ id: e.id, type: 'delivered' as const, attempt: ok })));
    await store.close();
    expect(await segments(dir)).toEqual(['segment-0000000001.log', 'segment-0000000002.log']);
    const stubborn = new FaultFs();
    stubborn.unlinkFaults.push('EPERM', 'EPERM', 'EPERM');
    const reopened = new FileStore({ dir, fs: stubborn, segmentBytes: 4096 });
    const opened = await reopened.open().then(
      () => 'opened',
      (error: { code?: string }) => error.code,
    );
    const pending = opened === 'opened' ? reopened.stats().pending : undefined;
    await reopened.close();
    expect({ opened, pending }).toEqual({ opened: 'opened', pending: 1 });
  });

  /*
   * Scenario: the event record of a retried event is intact; the payload (the attempt history, a JSON list
   * of past attempts) of its newest state record, in an older segment, has one flipped byte.
   * Expected (docs/05 "Recovery"): "one damaged record costs one record"; the promise is that no accepted
   * event is lost to something that is not its own damage. The same damage in the newest segment (where
   * payloads are checked at open) skips the state record, and the event falls back to its previous state
   * and is delivered.
   * Before the fix: claim() reads the state record, its payload checksum fails, and the whole event (whose request
   * is intact on disk) is counted corrupt and dropped for good with a purge tombstone; it is never
   * delivered. (docs/05 says a payload that fails when read back drops "the event"; that rule is right for
   * the event record's own payload, but here it destroys an intact request because of diagnostic data.)
   * Why it matters: a bit flip in a retry's history loses a webhook that could have been sent as it was.
   */
  it('a damaged history in an older segment does not drop an event whose own record is intact', async () => {
    const dir = await newDir();
    const options: FileStoreOptions = { dir, segmentBytes: 4096 };
    const store = new FileStore(options);
    await store.open();
    await store.append([makeEvent('victim')]);
    await store.claim({ limit: 1, now: T0 });
    await store.settle([{ id: 'victim', type: 'retry', attempt: { at: T0, durationMs: 1, status: 500, error: 'MARKER-history-MARKER' }, nextAttemptAt: T0 + 1, countsAsAttempt: true }]);
    for (let i = 0; i < 40; i++) await store.append([makeEvent(`later${i}`, { body: new Uint8Array(200) })]);
    await store.close();
    const names = await segments(dir);
    expect(names.length).toBeGreaterThanOrEqual(3);
    const oldest = join(dir, names[0] as string);
    const bytes = await readFile(oldest);
    const at = bytes.indexOf('history');
    expect(at).toBeGreaterThan(0);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await writeFile(oldest, bytes);
    const reopened = new FileStore(options);
    await reopened.open();
    const claimed = (await reopened.claim({ limit: 100, now: T0 + 10 })).events.map((e) => e.id);
    await reopened.close();
    expect(claimed).toContain('victim');
  });

  /*
   * Scenario: durability 'write' or a crash before an fsync on a file system that extends the file before
   * its data reaches the disk (XFS, ext4 data=writeback): after the crash the newest segment ends with
   * zeros where the unsynced records were, a torn tail that was never acknowledged with 'fsync'.
   * Expected (docs/05 "Recovery"): a torn write at the tail "is cut off ... It is not counted: it was never
   * acknowledged." `stats().corrupt` counts damage.
   * Before the fix: the zeros are searched for a frame, none is found, and the tail counts as one corrupt record
   * (it is cut off, so nothing is lost): every such crash reports damage that is not there.
   * Why it matters: `corrupt` (in `stats()` and `webhook-outbox status`, docs/08) is what an operator
   * watches for damaged data; an ordinary crash raises it.
   */
  it('a zero-filled tail of the newest segment (an unsynced tail after a crash) is cut off, not counted as corrupt', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir });
    await store.open();
    await store.append([makeEvent('a'), makeEvent('b')]);
    await store.close();
    const [name] = await segments(dir);
    await appendFile(join(dir, name as string), Buffer.alloc(4096));
    const reopened = new FileStore({ dir });
    await reopened.open();
    const pending = (await reopened.claim({ limit: 10, now: T0 })).events.map((e) => e.id);
    const { corrupt } = reopened.stats();
    await reopened.close();
    expect({ pending, corrupt }).toEqual({ pending: ['a', 'b'], corrupt: 0 });
  });

  /*
   * Scenario: an older segment (complete and fsync'd before the next one started) is cut short in the
   * middle of a record: file system damage, a bad copy or restore of the directory.
   * Expected (docs/05 "Recovery"): only the newest segment can have a torn tail ("A record the file ends
   * inside (a torn write at the tail) is cut off ... not counted: it was never acknowledged"); "with
   * durability 'fsync' an older segment was complete and synced when the next one started, so a failure
   * there is real damage", and damage is counted in `stats().corrupt`.
   * Before the fix: the scan treats the cut record in the older segment as a torn tail too: the cut event (and any
   * after the cut) vanishes, although it was acknowledged and fsync'd, and `corrupt` stays 0.
   * Why it matters: acknowledged webhooks are lost without any sign; `corrupt` (and `webhook-outbox status`)
   * say the journal is fine.
   */
  it('an older segment cut short in the middle of a record counts its lost record as corrupt', async () => {
    const dir = await newDir();
    const store = new FileStore({ dir, segmentBytes: 4096 });
    await store.open();
    const all = Array.from({ length: 40 }, (_, i) => `e${i}`);
    for (const id of all) await store.append([makeEvent(id, { body: new Uint8Array(200) })]);
    await store.close();
    const names = await segments(dir);
    expect(names.length).toBeGreaterThanOrEqual(3);
    const first = join(dir, names[0] as string);
    const bytes = await readFile(first);
    // Cut 100 bytes into the segment's last record.
    let at = HEADER_BYTES;
    let last = at;
    while (at < bytes.length) {
      last = at;
      at += frameLength(bytes, at);
    }
    await writeFile(first, bytes.subarray(0, last + 100));
    const reopened = new FileStore({ dir, segmentBytes: 4096 });
    await reopened.open();
    const pending = (await reopened.claim({ limit: 100, now: T0 })).events.map((e) => e.id);
    const { corrupt } = reopened.stats();
    await reopened.close();
    const lost = all.filter((id) => !pending.includes(id));
    expect(lost).toHaveLength(1);
    expect({ lost, corrupt }).toEqual({ lost, corrupt: 1 });
  });

  /*
   * Scenario: a roll's header write fails after 7 bytes (ENOSPC) and removing the half-made file fails too
   * (both errors are swallowed by `#roll`, which "resolves false, with nothing changed and the half-made
   * file removed"); the next commit starts the following segment fine.
   * Expected: a segment whose creation was cut short never held a record; at open it is removed without
   * being counted (as `#recover` does when it is the newest file).
   * Before the fix: it is no longer the newest file, so it is moved aside as `*.corrupt` and counted in
   * `stats().corrupt`: a full disk for a moment reports damaged data that never existed.
   */
  it('a half-made segment left by a failed roll is removed at the next open, not counted as corrupt', async () => {
    const { dir, fs, store, count: n } = await firstSegmentFull();
    fs.writeFaults.push({ code: 'ENOSPC', partial: 7 });
    fs.unlinkFaults.push('EIO');
    await store.append([makeEvent('still-accepted')]);
    await store.append([makeEvent('next-segment')]);
    await store.close();
    expect(await segments(dir)).toEqual(['segment-0000000001.log', 'segment-0000000002.log', 'segment-0000000003.log']);
    const reopened = new FileStore({ dir, segmentBytes: 4096 });
    await reopened.open();
    const { corrupt, pending } = reopened.stats();
    await reopened.close();
    expect({ pending, corrupt }).toEqual({ pending: n + 2, corrupt: 0 });
  });
});
