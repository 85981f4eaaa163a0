/**
 * Rows 1 and 2: enqueue throughput of 256 concurrent producers of 1 KiB events against this disk's raw
 * limit for the same bytes: 256 x 1 KiB per write() plus fdatasync (row 1, durability 'fsync'), or without
 * fsync (row 2, durability 'write').
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { rawAppendLimit } from '../lib/disk-limits.mjs';
import { medianWindow, runConcurrent } from '../lib/load.mjs';
import { openProducer } from '../lib/producer.mjs';
import { fmt, missingRow, targetRow } from '../lib/report.mjs';

const PRODUCERS = 256;

/** Measures enqueue/s with `PRODUCERS` producers on a fresh directory; undefined when nothing to measure. */
export async function measureEnqueue(ctx, { durability, maxMs }) {
  const dir = mkdtempSync(join(ctx.tmpRoot, `enqueue-${durability}-`));
  try {
    const producer = await openProducer(ctx.pkg, { dir, durability });
    if (producer === undefined) return undefined;
    try {
      await runConcurrent({ concurrency: PRODUCERS, maxOps: 2000, maxMs: 300, op: producer.enqueue });
      const result = await medianWindow({ concurrency: PRODUCERS, maxOps: 5_000_000, maxMs: maxMs / 3, op: producer.enqueue });
      return { ...result, label: producer.label };
    } finally {
      await producer.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function errorNote(result) {
  return result.failed > 0 ? ` ${result.failed} enqueues FAILED (first: ${result.firstError?.code ?? result.firstError?.message}).` : '';
}

/** Runs rows 1 and 2. */
export async function enqueueRows(ctx) {
  const maxMs = ctx.quick ? 3000 : 8000;
  const rows = [];
  const rawFsync = rawAppendLimit({ tmpRoot: ctx.tmpRoot, maxMs, sync: true });
  const rawWrite = rawAppendLimit({ tmpRoot: ctx.tmpRoot, maxMs, sync: false, maxBytes: 2 * 1024 ** 3 });
  ctx.figures.rawFsyncLimit = rawFsync;
  ctx.figures.rawWriteLimit = rawWrite;

  for (const [id, durability, raw, rawText] of [
    ['1', 'fsync', rawFsync, 'raw 256x1KiB write+fdatasync'],
    ['2', 'write', rawWrite, 'raw 256x1KiB write(), no fsync'],
  ]) {
    const what = `enqueue/s, durability '${durability}', 256 producers, 1 KiB`;
    const ours = await measureEnqueue(ctx, { durability, maxMs });
    if (ours === undefined) {
      rows.push(missingRow({ id, what, against: `${rawText}: ${fmt(raw.recordsPerSec)}/s`, reason: 'not measured: Outbox and FileStore missing', target: '>= 0.50x' }));
      continue;
    }
    ctx.figures[`enqueue_${durability}`] = ours;
    rows.push(
      targetRow({
        id,
        what,
        ours: `${fmt(ours.rate)}/s`,
        against: `${rawText}: ${fmt(raw.recordsPerSec)}/s`,
        value: ours.rate / raw.recordsPerSec,
        direction: '>=',
        target: 0.5,
        targetText: '>= 0.50x',
        note: `${ours.label}; median of 3 windows (${ours.rates.map((r) => fmt(r)).join(', ')}/s); raw limit ${fmt(raw.mibPerSec, 1)} MiB/s over ${fmt(raw.writes)} writes.${errorNote(ours)}`,
      }),
    );
  }
  return rows;
}
