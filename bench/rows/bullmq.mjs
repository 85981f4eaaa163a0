/**
 * Row 6: the peer a user would pick instead of a local outbox for a durable retrying queue: BullMQ on a
 * real Redis that fsyncs every write before replying (`appendonly yes`, `appendfsync always`). The same
 * 1 KiB events, the same 256 concurrent producers, compared with row 1's durable enqueue rate.
 */
import { Queue } from 'bullmq';
import { runConcurrent } from '../lib/load.mjs';
import { startRedis } from '../lib/redis.mjs';
import { BODY_1K } from '../lib/events.mjs';
import { fmt, missingRow, skippedRow, targetRow } from '../lib/report.mjs';

const PRODUCERS = 256;

/** Runs row 6. */
export async function bullmqRows(ctx) {
  const what = "enqueue/s vs BullMQ queue.add (Redis AOF fsync always)";
  const redis = await startRedis(ctx.tmpRoot);
  if (redis === undefined) {
    return [skippedRow({ id: '6', what, target: '>= 3.00x', reason: 'redis-server is not installed: `sudo apt-get install redis-server` (Debian/Ubuntu), then run the bench again.' })];
  }
  let peer;
  try {
    const queue = new Queue('bench', { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      await queue.waitUntilReady();
      const add = () => queue.add('event', { body: BODY_1K });
      await runConcurrent({ concurrency: PRODUCERS, maxOps: 2000, maxMs: 300, op: add });
      peer = await runConcurrent({ concurrency: PRODUCERS, maxOps: 5_000_000, maxMs: ctx.quick ? 3000 : 8000, op: add });
    } finally {
      await queue.close();
    }
  } finally {
    await redis.stop();
  }
  ctx.figures.bullmq = { ...peer, redis: redis.version };
  const ours = ctx.figures.enqueue_fsync;
  if (ours === undefined) {
    return [missingRow({ id: '6', what, target: '>= 3.00x', against: `BullMQ ${fmt(peer.rate)} adds/s`, reason: 'not measured: Outbox and FileStore missing' })];
  }
  return [
    targetRow({
      id: '6',
      what,
      ours: `${fmt(ours.rate)}/s`,
      against: `BullMQ ${fmt(peer.rate)} adds/s`,
      value: ours.rate / peer.rate,
      direction: '>=',
      target: 3,
      targetText: '>= 3.00x',
      note: `BullMQ: ${fmt(peer.ops)} adds in ${fmt(peer.ms / 1000, 1)} s, ${peer.failed} failed; ${redis.version.split(' ').slice(0, 3).join(' ')} on 127.0.0.1, appendfsync always. Ours: ${ours.label}, durability 'fsync'.`,
    }),
  ];
}
