/**
 * Row 3: does accepting an event get slower as the backlog grows? FileStore vs LowdbStore, store-level
 * appends of one 1 KiB event each from 256 concurrent producers, on a store already holding 0, 1k, 10k
 * and 100k pending events. lowdb rewrites its whole file on every write, so it stops where even filling
 * it becomes unbearable; the row says where.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runConcurrent } from '../lib/load.mjs';
import { newEvent, newEvents } from '../lib/events.mjs';
import { fmt, infoRow, missingRow, targetRow } from '../lib/report.mjs';

const LEVELS = [0, 1_000, 10_000, 100_000];
const PRODUCERS = 256;
/** Appends per FileStore window: the store ends a window at most this far above its level. */
const WINDOW_OPS = 40_000;
/** Appends per lowdb window. */
const LOWDB_WINDOW_OPS = 2_000;

async function openFilled(tmpRoot, makeStore, level, producers = PRODUCERS) {
  const dir = mkdtempSync(join(tmpRoot, 'flat-'));
  const store = makeStore(dir);
  await store.open();
  const t0 = performance.now();
  for (let n = 0; n < level; n += 1000) await store.append(newEvents(Math.min(1000, level - n)));
  const fillMs = performance.now() - t0;
  const op = () => store.append([newEvent()]);
  await runConcurrent({ concurrency: producers, maxOps: 2000, maxMs: 300, op });
  // The fill's batches are the bench's garbage, not the store's: collected now, not inside the window (the
  // bench runs with --expose-gc).
  globalThis.gc?.();
  return {
    level,
    fillMs,
    window: (maxMs, concurrency = producers, maxOps = 5_000_000) => runConcurrent({ concurrency, maxOps, maxMs, op }),
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function median(results) {
  const sorted = [...results].sort((a, b) => a.rate - b.rate);
  return { ...sorted[Math.floor(sorted.length / 2)], rates: results.map((r) => Math.round(r.rate)), failed: results.reduce((n, r) => n + r.failed, 0) };
}

/**
 * FileStore: in each round, one window per level (0, 1k, 10k, 100k, 0, ...), each on a fresh store filled to
 * that level and bounded to `WINDOW_OPS` appends, so that a level means what it says (a 2 s window alone
 * adds some 150k events) and load from other processes drifting over time hits every level alike; median
 * per level.
 */
async function fileStoreLevels(ctx, FileStore, maxMs, rounds) {
  const warm = await openFilled(ctx.tmpRoot, (dir) => new FileStore({ dir }), 0);
  await warm.window(maxMs);
  await warm.close();
  const windows = LEVELS.map(() => []);
  const fills = LEVELS.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, level] of LEVELS.entries()) {
      const store = await openFilled(ctx.tmpRoot, (dir) => new FileStore({ dir }), level);
      try {
        fills[i].push(store.fillMs);
        windows[i].push(await store.window(maxMs, PRODUCERS, WINDOW_OPS));
      } finally {
        await store.close();
      }
    }
  }
  return LEVELS.map((level, i) => ({ level, fillMs: Math.min(...fills[i]), ...median(windows[i]) }));
}

/**
 * lowdb: one level after the other, with 256 producers as for FileStore (appends made while a write is in
 * progress share the next one). Each window is bounded to `LOWDB_WINDOW_OPS` appends: lowdb accepts a few
 * thousand events per second near 0 pending, and a level should mean what it says. Filling costs
 * O(level^2) (every batch rewrites the whole file), so it stops before a level whose fill would take longer
 * than `fillBudgetMs`, estimated from the last fill.
 */
async function lowdbLevels(ctx, LowdbStore, maxMs, fillBudgetMs) {
  const levels = [];
  for (const level of LEVELS) {
    const previous = levels.at(-1);
    if (previous !== undefined && previous.level > 0) {
      const projectedMs = previous.fillMs * (level / previous.level) ** 2;
      if (projectedMs > fillBudgetMs) {
        return { levels, stop: `lowdb stopped before ${fmt(level)} pending: filling it would take about ${fmt(projectedMs / 1000)} s (from the ${fmt(previous.fillMs / 1000, 1)} s fill to ${fmt(previous.level)}), and at ${fmt(previous.level)} pending it accepted ${fmt(previous.rate, 1)} enqueues/s.` };
      }
    }
    const store = await openFilled(ctx.tmpRoot, (dir) => new LowdbStore({ file: join(dir, 'outbox.json') }), level);
    try {
      levels.push({ level, fillMs: store.fillMs, ...(await store.window(maxMs, PRODUCERS, LOWDB_WINDOW_OPS)) });
    } finally {
      await store.close();
    }
  }
  return { levels, stop: undefined };
}

/** Runs row 3 (3a FileStore flatness, 3b-3e lowdb and FileStore per level). */
export async function storeFlatRows(ctx) {
  const maxMs = ctx.quick ? 1000 : 2000;
  const rounds = ctx.quick ? 3 : 9;
  const { FileStore, LowdbStore } = ctx.pkg;
  const rows = [];
  const file = typeof FileStore === 'function' ? await fileStoreLevels(ctx, FileStore, maxMs, rounds) : [];
  ctx.figures.fileStoreLevels = file;
  const { levels: lowdb, stop: lowdbStop } = typeof LowdbStore === 'function' ? await lowdbLevels(ctx, LowdbStore, maxMs, ctx.quick ? 20_000 : 60_000) : { levels: [], stop: undefined };
  ctx.figures.lowdbLevels = lowdb;

  const what = 'FileStore enqueue/s at 100k pending vs at 0';
  if (file.length === 0) {
    rows.push(missingRow({ id: '3', what, target: '>= 0.90x', reason: 'not measured: FileStore missing' }));
  } else {
    const first = file[0];
    const last = file.at(-1);
    rows.push(
      targetRow({
        id: '3',
        what,
        ours: `${fmt(last.rate)}/s`,
        against: `at 0 pending: ${fmt(first.rate)}/s`,
        value: last.rate / first.rate,
        direction: '>=',
        target: 0.9,
        targetText: '>= 0.90x',
        note: `Store-level append of one event per call, 256 producers, durability 'fsync' (default); median of ${rounds} interleaved windows per level, each on a fresh store filled to its level (plus 2,000 warm-up appends) and at most ${fmt(WINDOW_OPS)} appends or ${fmt(maxMs / 1000, 1)} s long. Per level: ${file.map((r) => `${fmt(r.level)}: ${fmt(r.rate)}/s`).join(', ')}.${file.some((r) => r.failed) ? ' Some appends FAILED.' : ''}`,
      }),
    );
  }
  LEVELS.forEach((level, i) => {
    const id = `3${String.fromCharCode(98 + i)}`;
    const rowWhat = `FileStore vs LowdbStore enqueue/s at ${fmt(level)} pending`;
    const f = file[i];
    const l = lowdb[i];
    if (f === undefined || (l === undefined && lowdbStop === undefined)) {
      rows.push(missingRow({ id, what: rowWhat, reason: `not measured: ${f === undefined ? 'FileStore' : 'LowdbStore'} missing` }));
      return;
    }
    rows.push(
      infoRow({
        id,
        what: rowWhat,
        ours: `${fmt(f.rate)}/s`,
        against: l === undefined ? 'lowdb: stopped (unbearable)' : `lowdb: ${fmt(l.rate, l.rate < 100 ? 1 : 0)}/s`,
        value: l === undefined ? undefined : f.rate / l.rate,
        valueText: l === undefined ? '-' : undefined,
        note:
          l === undefined
            ? i === lowdb.length
              ? lowdbStop
              : undefined
            : `Both with 256 producers: lowdb filled to ${fmt(level)} in ${fmt(l.fillMs / 1000, 1)} s, then ${fmt(l.ops)} appends in ${fmt(l.ms / 1000, 1)} s (at most ${fmt(LOWDB_WINDOW_OPS)} per window).`,
      }),
    );
  });
  return rows;
}
