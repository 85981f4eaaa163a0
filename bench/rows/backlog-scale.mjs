/**
 * Row 4: a backlog of 1,000,000 pending 1 KiB events (quick run: 100,000). Each phase runs in its own
 * child process so its RSS is its own. Bytes on disk (4d), RSS (4b) and reopen-to-first-delivery (4c) are
 * measured on exactly that backlog; the enqueue rate (4a) is measured last, starting from exactly that
 * backlog (topped back up after the reopen delivered some), and its windows add to it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startReceiverProcess } from '../lib/receiver.mjs';
import { fmt, infoRow, missingRow, targetRow } from '../lib/report.mjs';

const CHILD = fileURLToPath(new URL('../lib/backlog-child.mjs', import.meta.url));

function runChild(args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', CHILD, JSON.stringify(args)], { maxBuffer: 1 << 20, timeout: 900_000 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`backlog child (${args.phase}) failed: ${error.message}\n${stderr}`));
        return;
      }
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
    });
  });
}

/** Runs row 4 (4a-4e). */
export async function backlogScaleRows(ctx) {
  const events = ctx.quick ? 100_000 : 1_000_000;
  const scale = `${fmt(events)} pending${ctx.quick ? ' (QUICK: not 1M)' : ''}`;
  if (typeof ctx.pkg.FileStore !== 'function') {
    return [missingRow({ id: '4', what: `backlog of ${scale}`, target: 'see issue 6', reason: 'not measured: FileStore missing' })];
  }
  const receiver = await startReceiverProcess({});
  const dir = mkdtempSync(join(ctx.tmpRoot, 'backlog-'));
  const emptyDir = mkdtempSync(join(ctx.tmpRoot, 'backlog-empty-'));
  try {
    const maxMs = ctx.quick ? 3000 : 6000;
    const fill = await runChild({ phase: 'fill', dir, events, url: receiver.url });
    const reopen = await runChild({ phase: 'reopen', dir, url: receiver.url });
    const enqueue = await runChild({ phase: 'enqueue', dir, emptyDir, events, url: receiver.url, maxMs });
    ctx.figures.backlog = { events, fill, reopen, enqueue };
    const rssMiB = Math.max(fill.rssMiB, reopen.rssAtFirstMiB, reopen.rssMiB);
    const rows = [
      targetRow({
        id: '4a',
        what: `enqueue/s starting at ${scale} vs empty`,
        ours: `${fmt(enqueue.full.rate)}/s`,
        against: `empty: ${fmt(enqueue.empty.rate)}/s`,
        value: enqueue.full.rate / enqueue.empty.rate,
        direction: '>=',
        target: 0.9,
        targetText: '>= 0.90x',
        note: `${enqueue.full.label}, durability 'fsync', 256 producers. Filled ${fmt(fill.pendingAfterFill)} events in ${fmt(fill.fillMs / 1000, 1)} s (FileStore.append, 1,000 per batch); measured after 4b-4d, topped up from ${fmt(enqueue.pendingBeforeTopUp)} to ${fmt(enqueue.pendingAtStart)} pending, ${fmt(enqueue.pendingAtEnd)} pending after the windows. Median of ${enqueue.full.rates.length} interleaved rounds (a fresh empty outbox, then the backlog): empty ${enqueue.empty.rates.map((r) => fmt(r)).join(', ')}/s; backlog ${enqueue.full.rates.map((r) => fmt(r)).join(', ')}/s.`,
      }),
      targetRow({
        id: '4b',
        what: `RSS with ${scale}`,
        ours: `${fmt(rssMiB, 0)} MiB`,
        against: 'limit 200 MiB',
        value: rssMiB / 200,
        direction: '<=',
        target: 1,
        targetText: '<= 1.00x',
        note: `Highest of, each after a GC: ${fmt(fill.rssMiB)} MiB in the process that filled it (store open, ${fmt(fill.pendingAfterFill)} pending); in a process that reopened it, ${fmt(reopen.rssAtFirstMiB)} MiB at the first delivery (${fmt(reopen.pendingAtFirst)} pending) and ${fmt(reopen.rssMiB)} MiB after 2 more s of delivering (${fmt(reopen.pending)} pending); own peak (VmHWM) ${fmt(fill.maxRssMiB)} / ${fmt(reopen.maxRssMiB)} MiB.`,
      }),
    ];
    if (reopen.outbox) {
      rows.push(
        targetRow({
          id: '4c',
          what: `reopen-to-first-delivery with ${scale}`,
          ours: `${fmt(reopen.firstDeliveredMs)} ms`,
          against: 'limit 2,000 ms',
          value: reopen.firstDeliveredMs / 2000,
          direction: '<=',
          target: 1,
          targetText: '<= 1.00x',
          note: `Reopened with ${fmt(fill.pendingAfterFill)} pending; Outbox.open() resolved in ${fmt(reopen.openMs)} ms; ${fmt(reopen.deliveredAfterFirst)} delivered in the 2 s after the first; ${fmt(reopen.pending)} still pending.`,
        }),
      );
    } else {
      rows.push(missingRow({ id: '4c', what: `reopen-to-first-delivery with ${scale}`, target: '<= 2,000 ms', reason: `not measured: Outbox missing (FileStore open + first claim took ${fmt(reopen.firstClaimMs)} ms)` }));
    }
    const payload = fill.pendingAfterFill * 1024;
    rows.push(
      infoRow({
        id: '4d',
        what: `bytes on disk vs payload bytes, ${scale}`,
        ours: `${fmt(fill.bytesOnDisk / 1048576)} MiB`,
        against: `payload ${fmt(payload / 1048576)} MiB`,
        value: fill.bytesOnDisk / payload,
        note: 'Payload = 1 KiB body per event; the rest is id, url, headers, timestamps and framing.',
      }),
      infoRow({
        id: '4e',
        what: `longest append of 1,000 while filling to ${scale}`,
        ours: `${fmt(fill.longestBatchMs, 1)} ms`,
        against: `median append: ${fmt(fill.medianBatchMs, 1)} ms`,
        value: fill.longestBatchMs / fill.medianBatchMs,
        note: 'The longest pause a producer saw while the backlog grew (index growth, GC, a slow fsync); durability fsync.',
      }),
    );
    return rows;
  } finally {
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(emptyDir, { recursive: true, force: true });
  }
}
