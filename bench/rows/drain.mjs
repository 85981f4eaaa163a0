/**
 * Row 7: drain after an outage. The receiver refuses connections while a backlog is enqueued into a
 * running outbox; then it comes back with capacity C (more than C requests in progress are answered 429
 * at once) and a service time S per request. The ideal drain time is backlog * S / C: the receiver busy
 * at exactly its capacity from the moment it is back, with no 429 and no gap. The outbox may use up to
 * 64 connections (above C), so what keeps it near C is its own slow start and AIMD, not a cap. C/S
 * (400/s) is kept well below what the sender itself can push on this machine (row 5), so the receiver,
 * not the sender's CPU, is the bottleneck the ideal assumes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runConcurrent, waitFor } from '../lib/load.mjs';
import { startReceiverProcess } from '../lib/receiver.mjs';
import { lineChartSvg } from '../lib/svg-plot.mjs';
import { BODY_1K } from '../lib/events.mjs';
import { fmt, infoRow, missingRow, targetRow } from '../lib/report.mjs';

const CAPACITY = 20;
const SERVICE_MS = 50;
const OUTBOX_CONCURRENCY = 64;
const PRODUCERS = 256;

/** Runs row 7 (7a time vs ideal, 7b share of 429s, 7c peak concurrency). */
export async function drainRows(ctx) {
  const backlog = ctx.quick ? 5_000 : 100_000;
  const idealMs = (backlog * SERVICE_MS) / CAPACITY;
  const what = `drain ${fmt(backlog)} backlog after outage, C=${CAPACITY}, S=${SERVICE_MS} ms`;
  if (typeof ctx.pkg.Outbox !== 'function') {
    return [missingRow({ id: '7', what, against: `ideal ${fmt(idealMs / 1000, 1)} s`, target: '>= 0.80x', reason: 'not measured: Outbox missing' })];
  }
  const receiver = await startReceiverProcess({ capacity: CAPACITY, latencyMs: SERVICE_MS, bucketMs: 250 });
  const dir = mkdtempSync(join(ctx.tmpRoot, 'drain-'));
  let outbox;
  try {
    await receiver.refuse();
    outbox = await ctx.pkg.Outbox.open({
      dir,
      url: receiver.url,
      concurrency: OUTBOX_CONCURRENCY,
      retry: { baseDelayMs: 100, maxDelayMs: 2000 },
    });
    let delivered = 0;
    let retries = 0;
    let dead = 0;
    outbox.on('delivered', () => {
      delivered += 1;
    });
    outbox.on('retry', () => {
      retries += 1;
    });
    outbox.on('dead', () => {
      dead += 1;
    });
    outbox.on('error', (error) => console.error('  outbox error:', error?.message));
    const enqueued = await runConcurrent({ concurrency: PRODUCERS, maxOps: backlog, maxMs: 300_000, op: () => outbox.enqueue({ body: BODY_1K }) });
    const retriesDuringOutage = retries;
    const upAt = Date.now();
    const t0 = performance.now();
    await receiver.accept();
    await waitFor(() => delivered + dead >= enqueued.ops, { timeoutMs: idealMs * 10 + 60_000, everyMs: 10, what: 'the drain' });
    const ms = performance.now() - t0;
    const seen = await receiver.summary(upAt);
    const firstOkMs = seen.timeline.findIndex((b) => b.ok > 0) * seen.bucketMs;
    const throttleShare = seen.requests === 0 ? 0 : seen.throttled / seen.requests;
    ctx.figures.drain = {
      backlog: enqueued.ops,
      capacity: CAPACITY,
      serviceMs: SERVICE_MS,
      outboxConcurrency: OUTBOX_CONCURRENCY,
      idealMs,
      ms,
      delivered,
      dead,
      retriesDuringOutage,
      retriesAfterRecovery: retries - retriesDuringOutage,
      receiver: { ...seen, timeline: undefined },
      timeline: seen.timeline,
    };
    const points = seen.timeline.map((b) => ({ x: b.t / 1000, left: b.maxConcurrency, right: b.ok / (seen.bucketMs / 1000) }));
    const svg = lineChartSvg({
      points,
      labels: {
        title: `Drain of ${fmt(enqueued.ops)} events after an outage (receiver capacity ${CAPACITY}, ${SERVICE_MS} ms each)${ctx.quick ? ' [quick run]' : ''}`,
        x: 'seconds since the receiver came back',
        left: 'requests in progress at the receiver (max per 250 ms)',
        right: 'delivered per second',
      },
      markers: [{ y: CAPACITY, label: `capacity ${CAPACITY}` }],
    });
    const svgName = ctx.quick ? 'drain-quick.svg' : 'drain.svg';
    writeFileSync(new URL(`../results/${svgName}`, import.meta.url), svg);
    const detail = `${fmt(delivered)} delivered, ${dead} dead, receiver saw ${fmt(seen.uniqueDelivered)} unique ids; first 2xx ${fmt(firstOkMs)} ms after recovery; ${fmt(seen.requests)} requests after recovery; plot: bench/results/${svgName}.`;
    return [
      targetRow({
        id: '7a',
        what: `${what}: ideal/actual time`,
        ours: `${fmt(ms / 1000, 1)} s`,
        against: `ideal backlog*S/C ${fmt(idealMs / 1000, 1)} s`,
        value: idealMs / ms,
        direction: '>=',
        target: 0.8,
        targetText: '>= 0.80x (bench)',
        note: `The issue sets no number for the drain; the bench's bar: within 1.25x of the ideal. Outbox concurrency ${OUTBOX_CONCURRENCY}, retry base 100 ms / max 2 s (shortened so the bench is bounded). ${detail}`,
      }),
      targetRow({
        id: '7b',
        what: 'drain: share of requests answered 429',
        ours: `${fmt(seen.throttled)} of ${fmt(seen.requests)}`,
        against: 'all requests after recovery',
        value: throttleShare,
        valueText: `${fmt(throttleShare * 100, 1)}%`,
        direction: '<=',
        target: 0.05,
        targetText: '<= 5% (bench)',
        note: `"a capacity-limited receiver sees few 429s" (issue 4); the bench reads "few" as at most 5%. ${fmt(retries - retriesDuringOutage)} retry events after recovery.`,
      }),
      infoRow({
        id: '7c',
        what: 'drain: peak requests in progress at receiver',
        ours: fmt(seen.peakConcurrency),
        against: `capacity ${CAPACITY}, outbox max ${OUTBOX_CONCURRENCY}`,
        value: seen.peakConcurrency / CAPACITY,
        note: 'Counts requests refused with 429 too (they are in progress for an instant).',
      }),
    ];
  } finally {
    await outbox?.close();
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
