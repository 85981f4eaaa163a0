import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import type { FileStoreOptions } from '../../src/store/file/file-store.js';
import { makeEvent } from './contract.js';
import { seededRandom } from './seeded-random.js';
import { tempDirs } from './temp-dir.js';
import { RandomFaultFs } from './random-fault-fs.js';

/*
 * random I/O faults at every step of every operation (segment creation, partial
 * writes with ENOSPC/EIO, fsync, fsync of the directory, unlink of doomed segments, truncate while
 * recovering from a failure, reads), with tiny segments (maxBytes 48 KB: 6 KB segments, a roll every few
 * commits; or segmentBytes 4096), in both durability modes, with appends, all outcomes, replays, purges and
 * reopens (open itself under faults too). A store in its failed state is reopened. After every reopen the
 * pending and dead events must be what the model allows: every acknowledged append is pending or as its
 * last acknowledged outcome left it, nothing delivered or purged comes back, dead letters stay dead. A
 * rejected operation may or may not have happened. The existing suite injects one fault at a time.
 *
 * Known defects it runs into and tolerates here (each has a failing test in
 * file-store-fault-defects.test.ts): a replay() whose read fails leaves dead letters busy (replay/purge
 * then do fewer than asked: treated as "may or may not have happened"); `corrupt` counts half-made
 * segments (not checked here); a failed fsync at a roll puts the store in its failed state (reopened).
 */

const newDir = tempDirs('rev-fault-model');
const T0 = 1_700_000_000_000;

type Where = 'pending' | 'dead' | 'gone';

async function run(seed: number, options: Partial<FileStoreOptions>, steps: number): Promise<{ problems: string[]; faults: number; failedStates: number; reopens: number }> {
  const dir = await newDir();
  const fs = new RandomFaultFs(seed, { create: 0.05, write: 0.03, fsync: 0.04, fsyncDir: 0.03, unlink: 0.1, truncate: 0.1, read: 0.02 });
  const random = seededRandom(seed * 7919 + 17);
  /** For each id, where it may be after the next reopen. */
  const model = new Map<string, Set<Where>>();
  const problems: string[] = [];
  let failedStates = 0;
  let reopens = 0;
  let n = 0;

  const open = async (): Promise<FileStore> => {
    for (let tries = 0; ; tries++) {
      fs.enabled = tries < 3;
      const store = new FileStore({ dir, fs, ...options });
      try {
        await store.open();
        fs.enabled = true;
        return store;
      } catch (error) {
        // Under injected faults open() may fail; without any it must start.
        if (!fs.enabled) throw new Error(`open() refused to start without faults: ${String(error)}`);
      }
    }
  };

  const check = async (s: FileStore, when: string): Promise<void> => {
    fs.enabled = false;
    const { events } = await s.claim({ limit: 100_000, now: Number.MAX_SAFE_INTEGER });
    await s.settle(events.map((e) => ({ id: e.id, type: 'release' as const })));
    const pending = new Set(events.map((e) => e.id));
    const dead = new Set(await s.deadLetterIds({}));
    for (const id of [...pending, ...dead]) if (!model.has(id)) problems.push(`${when}: ${id} was never appended`);
    for (const [id, allowed] of model) {
      if (pending.has(id) && dead.has(id)) problems.push(`${when}: ${id} is both pending and dead`);
      const where: Where = pending.has(id) ? 'pending' : dead.has(id) ? 'dead' : 'gone';
      if (!allowed.has(where)) problems.push(`${when}: ${id} is ${where}, expected ${[...allowed].join(' or ')}`);
      if (where === 'gone') model.delete(id);
      else model.set(id, new Set([where]));
    }
    fs.enabled = true;
  };

  let store = await open();
  const reopen = async (why: string): Promise<void> => {
    fs.enabled = false;
    await store.close().catch(() => undefined);
    reopens++;
    store = await open();
    await check(store, `step ${why}`);
  };
  /** After a rejected call: a store in its failed state is reopened. */
  const afterReject = async (step: number): Promise<void> => {
    fs.enabled = false;
    const failed = await store.claim({ limit: 0, now: T0 }).then(
      () => false,
      () => true,
    );
    fs.enabled = true;
    if (failed) {
      failedStates++;
      await reopen(`${step} (failed state)`);
    }
  };

  for (let step = 0; step < steps; step++) {
    const r = random();
    if (r < 0.4) {
      const batch = Array.from({ length: 1 + Math.floor(random() * 3) }, () => makeEvent(`s${seed}-${n++}`, { body: new Uint8Array(Math.floor(random() * 300)) }));
      for (const e of batch) model.set(e.id, new Set(['pending', 'gone']));
      try {
        await store.append(batch);
        for (const e of batch) model.set(e.id, new Set(['pending']));
      } catch {
        await afterReject(step);
      }
    } else if (r < 0.8) {
      let claimed;
      try {
        claimed = (await store.claim({ limit: 1 + Math.floor(random() * 6), now: T0 + 1_000_000 })).events;
      } catch {
        await afterReject(step);
        continue;
      }
      const outcomes = claimed.map((e) => {
        const pick = random();
        if (pick < 0.6) return { outcome: { id: e.id, type: 'delivered' as const, attempt: { at: T0, durationMs: 1, status: 200 } }, to: 'gone' as const };
        if (pick < 0.85) {
          const nextAttemptAt = T0 + Math.floor(random() * 2_000_000);
          return { outcome: { id: e.id, type: 'retry' as const, attempt: { at: T0, durationMs: 1, status: 500 }, nextAttemptAt, countsAsAttempt: true }, to: 'pending' as const };
        }
        return { outcome: { id: e.id, type: 'dead' as const, reason: 'http-status' as const, at: T0 }, to: 'dead' as const };
      });
      for (const { outcome, to } of outcomes) model.set(outcome.id, new Set<Where>(['pending', to]));
      try {
        await store.settle(outcomes.map(({ outcome }) => outcome));
        for (const { outcome, to } of outcomes) model.set(outcome.id, new Set([to]));
      } catch {
        await afterReject(step);
      }
    } else if (r < 0.88) {
      let dead: string[];
      try {
        dead = await store.deadLetterIds({});
      } catch {
        await afterReject(step);
        continue;
      }
      const chosen = dead.filter(() => random() < 0.7);
      const purge = random() < 0.6;
      const to: Where = purge ? 'gone' : 'pending';
      for (const id of chosen) model.set(id, new Set<Where>(['dead', to]));
      try {
        const count = purge ? await store.purge(chosen) : await store.replay(chosen, T0);
        // Fewer than asked: the replay-busy defect; which ones is not said, so they stay uncertain.
        if (count === chosen.length) for (const id of chosen) model.set(id, new Set([to]));
      } catch {
        await afterReject(step);
      }
    } else if (r < 0.92) {
      await reopen(`${step} (reopen)`);
    } else {
      // Now and then let the 100 ms fsync of outcomes run.
      await new Promise((resolve) => setTimeout(resolve, random() < 0.2 ? 110 : 0));
    }
  }
  await reopen('end');
  fs.enabled = false;
  await store.close();
  return { problems, faults: fs.log.length, failedStates, reopens };
}

describe('FileStore under random I/O faults with tiny segments, against a model', () => {
  it('loses no acknowledged event, brings back nothing delivered or purged, keeps dead letters dead, and always reopens', async () => {
    const configs: Partial<FileStoreOptions>[] = [{ maxBytes: 48_000 }, { segmentBytes: 4096 }, { maxBytes: 48_000, durability: 'write' }];
    const problems: string[] = [];
    let faults = 0;
    let failedStates = 0;
    const started = Date.now();
    let runs = 0;
    for (let seed = 1; seed <= 10 && Date.now() - started < 90_000; seed++) {
      for (const options of configs) {
        const result = await run(seed, options, 250);
        runs++;
        faults += result.faults;
        failedStates += result.failedStates;
        problems.push(...result.problems.map((p) => `seed ${seed} ${JSON.stringify(options)}: ${p}`));
      }
    }
    expect(problems).toEqual([]);
    expect(runs).toBeGreaterThanOrEqual(9);
    expect(faults).toBeGreaterThan(runs * 5);
    expect(failedStates).toBeGreaterThan(0);
  }, 150_000);
});
