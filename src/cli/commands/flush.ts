/**
 * `webhook-outbox flush`: drain an outbox directory a stopped app left behind, or an outbox table, with a
 * progress bar.
 */
import type { Writable } from 'node:stream';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatBar, formatDuration } from '../format.js';
import { ProgressLine } from '../progress.js';
import { describeTarget, targetArgs, withOutbox } from './outbox-target.js';
import type { OutboxTarget } from './outbox-target.js';

/** What `flush` needs. */
export interface FlushArgs {
  target: OutboxTarget;
  secret: readonly string[] | undefined;
  timeoutMs: number;
  quiet: boolean;
  /** The app's `blockPrivateAddresses`: the URLs pending in the outbox may be its customers'. */
  blockPrivateAddresses: boolean | { allow: readonly string[] };
  /** The app's `proxy`: the HTTP proxy every request goes through, or `undefined` for direct connections. */
  proxy?: string | undefined;
}

/**
 * Delivers everything pending: 0 when drained with no new dead letter, 1 when some events were given up
 * on during the flush, 4 when `--timeout` ran out (the rest stays in the outbox).
 */
export async function flush(args: FlushArgs, out: Writable, err: Writable & { isTTY?: boolean }): Promise<ExitCodeValue> {
  const started = Date.now();
  const options = { signingSecret: args.secret, blockPrivateAddresses: args.blockPrivateAddresses, proxy: args.proxy };
  const { total, delivered, superseded, dead, retries, remaining, timedOut } = await withOutbox(args.target, options, async (outbox) => {
    const progress = new ProgressLine(err, { silent: args.quiet });
    const counts = { total: outbox.stats().pending, delivered: 0, superseded: 0, dead: 0, retries: 0, remaining: 0, timedOut: false };
    outbox.on('delivered', () => (counts.delivered += 1));
    outbox.on('superseded', () => (counts.superseded += 1));
    outbox.on('dead', () => (counts.dead += 1));
    outbox.on('retry', () => (counts.retries += 1));
    const draw = (): void => {
      const { pending } = outbox.stats();
      const done = Math.max(0, counts.total - pending);
      progress.update(
        `${formatBar(counts.total === 0 ? 1 : done / counts.total)} ${done}/${counts.total}  ` +
          `delivered ${counts.delivered}, ${counts.superseded > 0 ? `superseded ${counts.superseded}, ` : ''}dead ${counts.dead}, retries ${counts.retries}, ${formatDuration(Date.now() - started)}`,
      );
    };
    const ticker = setInterval(draw, 100);
    try {
      await outbox.drain({ timeoutMs: args.timeoutMs });
    } catch (error) {
      if (!(error instanceof Error && 'code' in error && error.code === 'ERR_DRAIN_TIMEOUT')) throw error;
      counts.timedOut = true;
    } finally {
      clearInterval(ticker);
      draw();
      progress.done();
    }
    counts.remaining = outbox.stats().pending;
    return counts;
  });
  out.write(
    // Superseded events left unsent (latest state wins) are named only when there were any.
    `${total} pending at start: ${delivered} delivered, ${superseded > 0 ? `${superseded} superseded, ` : ''}${dead} dead-lettered, ${remaining} still pending ` +
      `(${retries} retries, ${formatDuration(Date.now() - started)})\n`,
  );
  if (timedOut) {
    err.write(`timed out after ${formatDuration(args.timeoutMs)}; ${remaining} event(s) stay in ${describeTarget(args.target)}\n`);
    return ExitCode.timeout;
  }
  if (dead > 0) {
    err.write(`${dead} event(s) were given up on: \`webhook-outbox dead list ${targetArgs(args.target)}\`\n`);
    return ExitCode.failure;
  }
  return ExitCode.ok;
}
