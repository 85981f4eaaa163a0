/**
 * Row 5: delivery end to end (enqueue -> delivered 2xx) through the Outbox against a local receiver in
 * another process, vs a bare loop of the same transport at the same concurrency without the outbox. Once
 * with the package's got transport, once with a small undici transport.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runConcurrent, waitFor } from '../lib/load.mjs';
import { startReceiverProcess } from '../lib/receiver.mjs';
import { createUndiciTransport } from '../lib/undici-transport.mjs';
import { BODY_1K } from '../lib/events.mjs';
import { fmt, missingRow, targetRow } from '../lib/report.mjs';

const CONCURRENCY = 16;
const PRODUCERS = 256;
const BODY_BYTES = new TextEncoder().encode(BODY_1K);

async function bareLoop(transport, url, count) {
  let non2xx = 0;
  const result = await runConcurrent({
    concurrency: CONCURRENCY,
    maxOps: count,
    maxMs: 120_000,
    op: async (i) => {
      const response = await transport.send({
        url,
        headers: { 'content-type': 'application/json', 'webhook-id': `bare_${i}`, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) },
        body: BODY_BYTES,
        timeoutMs: 15_000,
      });
      if (response.status < 200 || response.status > 299) non2xx += 1;
    },
  });
  return { ...result, non2xx };
}

async function throughOutbox(ctx, transport, url, count) {
  const dir = mkdtempSync(join(ctx.tmpRoot, 'delivery-'));
  const outbox = await ctx.pkg.Outbox.open({ dir, url, transport, concurrency: CONCURRENCY });
  let delivered = 0;
  outbox.on('delivered', () => {
    delivered += 1;
  });
  outbox.on('error', (error) => {
    ctx.figures.deliveryErrors = (ctx.figures.deliveryErrors ?? 0) + 1;
    console.error('  outbox error:', error?.message);
  });
  try {
    const t0 = performance.now();
    const enqueued = await runConcurrent({ concurrency: PRODUCERS, maxOps: count, maxMs: 120_000, op: () => outbox.enqueue({ body: BODY_1K }) });
    await waitFor(() => delivered >= enqueued.ops, { timeoutMs: 300_000, everyMs: 5, what: `${enqueued.ops} deliveries` });
    const ms = performance.now() - t0;
    return { ops: delivered, ms, rate: delivered / (ms / 1000), enqueueMs: enqueued.ms, failed: enqueued.failed };
  } finally {
    await outbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The median of `values`. */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Runs row 5 (5a: got, 5b: undici). The bare loop and the Outbox take turns, `ROUNDS` times (one in a quick
 * run), and the row reports the round with the median ratio: on a shared machine the rate drifts by tens of
 * percent within a minute, and a bare loop measured a minute apart from the Outbox compares the drift.
 */
export async function deliveryRows(ctx) {
  const count = ctx.quick ? 5_000 : 30_000;
  const rounds = ctx.quick ? 1 : 3;
  const rows = [];
  const receiver = await startReceiverProcess({});
  try {
    const transports = [
      ['5a', 'got', () => ctx.pkg.createGotTransport?.({ maxSockets: CONCURRENCY })],
      ['5b', 'undici', () => createUndiciTransport({ connections: CONCURRENCY })],
    ];
    for (const [id, name, make] of transports) {
      const what = `delivered/s enqueue->2xx, ${name}, concurrency ${CONCURRENCY}`;
      const probe = make();
      if (probe === undefined) {
        rows.push(missingRow({ id, what, target: '>= 0.80x', reason: 'not measured: createGotTransport is not exported' }));
        continue;
      }
      await probe.close?.();
      if (typeof ctx.pkg.Outbox !== 'function') {
        rows.push(missingRow({ id, what, against: `bare ${name} loop`, target: '>= 0.80x', reason: 'not measured: Outbox missing' }));
        continue;
      }
      const results = [];
      for (let round = 0; round < rounds; round++) {
        const bareTransport = make();
        if (round === 0) await bareLoop(bareTransport, receiver.url, Math.min(1000, count));
        const bare = await bareLoop(bareTransport, receiver.url, count);
        await bareTransport.close?.();
        await receiver.clear();
        const transport = make();
        const ours = await throughOutbox(ctx, transport, receiver.url, count);
        await transport.close?.();
        const check = await receiver.summary();
        results.push({ bare, ours, check, ratio: ours.rate / bare.rate });
      }
      const chosen = results.find((r) => r.ratio === median(results.map((x) => x.ratio)));
      const { bare, ours, check } = chosen;
      ctx.figures[`bare_${name}`] = bare;
      ctx.figures[`delivery_${name}`] = ours;
      ctx.figures[`delivery_${name}_rounds`] = results.map((r) => ({ bare: Math.round(r.bare.rate), ours: Math.round(r.ours.rate), ratio: +r.ratio.toFixed(3) }));
      const roundsNote =
        rounds > 1 ? ` Rounds (ours/bare): ${results.map((r) => `${fmt(r.ours.rate)}/${fmt(r.bare.rate)} = ${fmt(r.ratio, 2)}x`).join(', ')}; the median round is shown.` : '';
      rows.push(
        targetRow({
          id,
          what,
          ours: `${fmt(ours.rate)}/s`,
          against: `bare ${name} loop: ${fmt(bare.rate)}/s`,
          value: chosen.ratio,
          direction: '>=',
          target: 0.8,
          targetText: '>= 0.80x',
          note: `${fmt(ours.ops)} events via Outbox (all enqueued in ${fmt(ours.enqueueMs / 1000, 1)} s by ${PRODUCERS} producers, ${ours.failed} enqueue failures); receiver saw ${fmt(check.uniqueDelivered)} unique ids answered 2xx in ${fmt(check.requests)} requests; bare loop: ${fmt(bare.ops)} requests, ${bare.non2xx} non-2xx, ${bare.failed} failed.${roundsNote}`,
        }),
      );
    }
  } finally {
    await receiver.close();
  }
  return rows;
}
