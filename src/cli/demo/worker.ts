/**
 * The demo's producer: a child process that opens the outbox directory, enqueues its share of the events
 * at a steady rate, reports each durable batch to the demo, then drains and exits. The demo SIGKILLs one
 * midway and starts another on the same directory.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { openOutbox } from '../commands/outbox-dir.js';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { SECRET_ENV, demoEventId } from './protocol.js';
import type { WorkerArgs, WorkerMessage } from './protocol.js';

function report(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Runs one producer; `raw` is the JSON {@link WorkerArgs}. */
export async function runDemoWorker(raw: string): Promise<ExitCodeValue> {
  const args = JSON.parse(raw) as WorkerArgs;
  const outbox = await openOutbox(args.dir, {
    url: args.url,
    signingSecret: process.env[SECRET_ENV],
    concurrency: args.concurrency,
    retry: { baseDelayMs: 50, maxDelayMs: args.maxDelayMs, maxRetryAfterMs: 2_000 },
  });
  // About twenty batches a second: each batch shares one fsync.
  const batch = Math.max(1, Math.min(200, Math.round(args.rate / 20)));
  const started = Date.now();
  for (let from = args.from; from < args.total; ) {
    const to = Math.min(args.total, from + batch);
    const pending: Promise<unknown>[] = [];
    for (let n = from; n < to; n++) {
      pending.push(outbox.enqueue({ id: demoEventId(n), body: { seq: n, createdAt: Date.now() } }));
    }
    await Promise.all(pending);
    await report({ type: 'enqueued', from, to });
    from = to;
    const due = started + ((from - args.from) / args.rate) * 1_000;
    if (due > Date.now()) await delay(due - Date.now());
  }
  await outbox.drain({ timeoutMs: args.drainTimeoutMs });
  const stats = outbox.stats();
  await report({ type: 'drained', dead: stats.dead, pending: stats.pending });
  await outbox.close();
  process.disconnect?.();
  return ExitCode.ok;
}
