/**
 * Row 4's child process, so its RSS is its own. argv[2] is JSON: { phase: 'fill' | 'reopen', dir,
 * emptyDir, events, url, maxMs }. Prints one JSON line with its figures on stdout.
 *
 * fill: enqueue rate on an empty outbox; fill `dir` to `events` pending 1 KiB events (FileStore.append
 * in batches of 1,000); enqueue rate with that backlog; RSS after a GC; bytes on disk.
 * reopen: time from Outbox.open() on that directory to the first delivered event; RSS after a GC.
 */
import { performance } from 'node:perf_hooks';
import { rmSync } from 'node:fs';
import { loadPackage, dirBytes } from './components.mjs';
import { medianWindow, runConcurrent, waitFor } from './load.mjs';
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

async function enqueueRate(dir) {
  const producer = await openProducer(pkg, { dir, durability: 'fsync' });
  try {
    await runConcurrent({ concurrency: PRODUCERS, maxOps: 2000, maxMs: 300, op: producer.enqueue });
    return { ...(await medianWindow({ concurrency: PRODUCERS, maxOps: 5_000_000, maxMs: args.maxMs / 3, op: producer.enqueue })), label: producer.label };
  } finally {
    await producer.close();
  }
}

async function fill() {
  const empty = await enqueueRate(args.emptyDir);
  rmSync(args.emptyDir, { recursive: true, force: true });
  const store = new pkg.FileStore({ dir: args.dir });
  await store.open();
  const t0 = performance.now();
  for (let n = 0; n < args.events; n += 1000) {
    await store.append(newEvents(Math.min(1000, args.events - n), args.url));
  }
  const fillMs = performance.now() - t0;
  const pendingAfterFill = store.stats().pending;
  await store.close();
  const bytesOnDisk = dirBytes(args.dir);
  const full = await enqueueRate(args.dir);
  const rssFull = rss();
  return { empty, full, fillMs, pendingAfterFill, bytesOnDisk, rssMiB: rssFull, maxRssMiB: process.resourceUsage().maxRSS / 1024 };
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
    return { outbox: false, firstClaimMs, claimed: claimed.events.length, pending, rssMiB, maxRssMiB: process.resourceUsage().maxRSS / 1024 };
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
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const pending = outbox.stats().pending;
  const rssMiB = rss();
  await outbox.close();
  return { outbox: true, openMs, firstDeliveredMs, deliveredIn2s: delivered, pending, rssMiB, maxRssMiB: process.resourceUsage().maxRSS / 1024 };
}

const result = args.phase === 'fill' ? await fill() : await reopen();
process.stdout.write(`${JSON.stringify(result)}\n`);
