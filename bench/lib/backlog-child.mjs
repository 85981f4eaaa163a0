/**
 * Row 4's child process, so its RSS is its own. argv[2] is JSON: { phase: 'fill' | 'reopen' | 'enqueue',
 * dir, emptyDir, events, url, maxMs }. Prints one JSON line with its figures on stdout. The phases run in
 * this order, so that the fill and the reopen see exactly `events` pending and only the last phase adds more:
 *
 * fill: fill `dir` to exactly `events` pending 1 KiB events (FileStore.append in batches of 1,000), with
 * the longest and the median batch; RSS after a GC with that store still open; bytes on disk.
 * reopen: time from Outbox.open() on that directory to the first delivered event; RSS after a GC at the
 * first delivery and again after 2 s of delivering, with the pending count at each.
 * enqueue: top `dir` back up to exactly `events` pending (the reopen delivered some), then three rounds of
 * one window on a fresh empty outbox and one on the outbox holding that backlog (which grows by what its
 * windows enqueue), interleaved like row 3's levels so that the shared machine's drift hits both alike;
 * the median window of each.
 */
import { performance } from 'node:perf_hooks';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadPackage, dirBytes } from './components.mjs';
import { runConcurrent, waitFor } from './load.mjs';
import { openProducer } from './producer.mjs';
import { newEvents } from './events.mjs';

const args = JSON.parse(process.argv[2]);
const pkg = await loadPackage();
const PRODUCERS = 256;
const mib = (bytes) => bytes / 1048576;

function rss() {
  globalThis.gc?.();
  return mib(process.memoryUsage().rss);
}

/**
 * This process's peak RSS. On Linux `process.resourceUsage().maxRSS` of a spawned child starts at its
 * parent's peak (it survives exec), so the bench read 388 MiB there; /proc's VmHWM is this process's own.
 */
function peakRss() {
  try {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib !== undefined) return Number(kib) / 1024;
  } catch {
    // Not Linux: the getrusage figure, with that caveat.
  }
  return process.resourceUsage().maxRSS / 1024;
}

const WINDOWS = 3;

/** Opens a producer-only outbox on `dir`, warmed up. */
async function warmProducer(dir) {
  const producer = await openProducer(pkg, { dir, durability: 'fsync' });
  await runConcurrent({ concurrency: PRODUCERS, maxOps: 2000, maxMs: 300, op: producer.enqueue });
  return producer;
}

function enqueueWindow(producer) {
  return runConcurrent({ concurrency: PRODUCERS, maxOps: 5_000_000, maxMs: args.maxMs / WINDOWS, op: producer.enqueue });
}

/** The median window, with every window's rate and all failures. */
function median(windows, label) {
  const sorted = [...windows].sort((a, b) => a.rate - b.rate);
  const failed = windows.reduce((sum, w) => sum + w.failed, 0);
  return { ...sorted[Math.floor(sorted.length / 2)], failed, rates: windows.map((w) => Math.round(w.rate)), label };
}

/** Appends in batches of 1,000 up to `events` pending; resolves with each batch's duration in ms. */
async function appendUpTo(store, events) {
  const batchMs = [];
  for (let n = store.stats().pending; n < events; n += 1000) {
    const t0 = performance.now();
    await store.append(newEvents(Math.min(1000, events - n), args.url));
    batchMs.push(performance.now() - t0);
  }
  return batchMs;
}

async function fill() {
  const store = new pkg.FileStore({ dir: args.dir });
  await store.open();
  const t0 = performance.now();
  const batchMs = (await appendUpTo(store, args.events)).sort((a, b) => a - b);
  const fillMs = performance.now() - t0;
  const pendingAfterFill = store.stats().pending;
  const rssMiB = rss();
  await store.close();
  const bytesOnDisk = dirBytes(args.dir);
  const longestBatchMs = batchMs.at(-1);
  const medianBatchMs = batchMs[Math.floor(batchMs.length / 2)];
  return { fillMs, longestBatchMs, medianBatchMs, pendingAfterFill, bytesOnDisk, rssMiB, maxRssMiB: peakRss() };
}

async function enqueue() {
  const store = new pkg.FileStore({ dir: args.dir });
  await store.open();
  const pendingBeforeTopUp = store.stats().pending;
  await appendUpTo(store, args.events);
  const pendingAtStart = store.stats().pending;
  await store.close();
  const emptyWindows = [];
  const fullWindows = [];
  const backlog = await warmProducer(args.dir);
  try {
    for (let round = 0; round < WINDOWS; round++) {
      const dir = mkdtempSync(join(args.emptyDir, 'round-'));
      const empty = await warmProducer(dir);
      try {
        emptyWindows.push(await enqueueWindow(empty));
      } finally {
        await empty.close();
        rmSync(dir, { recursive: true, force: true });
      }
      fullWindows.push(await enqueueWindow(backlog));
    }
  } finally {
    await backlog.close();
  }
  const empty = median(emptyWindows, backlog.label);
  const full = median(fullWindows, backlog.label);
  const check = new pkg.FileStore({ dir: args.dir });
  await check.open();
  const pendingAtEnd = check.stats().pending;
  await check.close();
  return { empty, full, pendingBeforeTopUp, pendingAtStart, pendingAtEnd };
}

async function reopen() {
  if (typeof pkg.Outbox !== 'function') {
    const t0 = performance.now();
    const store = new pkg.FileStore({ dir: args.dir });
    await store.open();
    const claimed = await store.claim({ limit: 1, now: Date.now() });
    const firstClaimMs = performance.now() - t0;
    const pending = store.stats().pending;
    const rssMiB = rss();
    await store.close();
    return { outbox: false, firstClaimMs, claimed: claimed.events.length, pendingAtFirst: pending, rssAtFirstMiB: rssMiB, pending, rssMiB, maxRssMiB: peakRss() };
  }
  let firstDeliveredMs;
  let delivered = 0;
  const t0 = performance.now();
  const outbox = await pkg.Outbox.open({ dir: args.dir, url: args.url });
  const openMs = performance.now() - t0;
  outbox.on('delivered', () => {
    delivered += 1;
    firstDeliveredMs ??= performance.now() - t0;
  });
  outbox.on('error', (error) => console.error('outbox error:', error?.message));
  await waitFor(() => firstDeliveredMs !== undefined, { timeoutMs: 120_000, everyMs: 1, what: 'the first delivery' });
  const pendingAtFirst = outbox.stats().pending;
  const rssAtFirstMiB = rss();
  const deliveredAtFirst = delivered;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const pending = outbox.stats().pending;
  const rssMiB = rss();
  await outbox.close();
  return {
    outbox: true,
    openMs,
    firstDeliveredMs,
    pendingAtFirst,
    rssAtFirstMiB,
    deliveredAfterFirst: delivered - deliveredAtFirst,
    pending,
    rssMiB,
    maxRssMiB: peakRss(),
  };
}

const PHASES = { fill, reopen, enqueue };
const result = await PHASES[args.phase]();
process.stdout.write(`${JSON.stringify(result)}\n`);
