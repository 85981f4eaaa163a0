/**
 * `webhook-outbox flush`: drain an outbox directory a stopped app left behind, with a progress bar.
 */
import type { Writable } from 'node:stream';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatBar, formatDuration } from '../format.js';
import { ProgressLine } from '../progress.js';
import { assertOutboxDir, openOutbox } from './outbox-dir.js';

/** What `flush` needs. */
export interface FlushArgs {
  dir: string;
  secret: readonly string[] | undefined;
  timeoutMs: number;
  quiet: boolean;
  /** The app's `blockPrivateAddresses`: the URLs pending in the directory may be its customers'. */
  blockPrivateAddresses: boolean | { allow: readonly string[] };
  /** The app's `proxy`: the HTTP proxy every request goes through, or `undefined` for direct connections. */
  proxy?: string | undefined;
}

/**
 * Delivers everything pending: 0 when drained with no new dead letter, 1 when some events were given up
 * on during the flush, 4 when `--timeout` ran out (the rest stays on disk).
 */
export async function flush(args: FlushArgs, out: Writable, err: Writable & { isTTY?: boolean }): Promise<ExitCodeValue> {
  await assertOutboxDir(args.dir);
  const started = Date.now();
  const outbox = await openOutbox(args.dir, { signingSecret: args.secret, blockPrivateAddresses: args.blockPrivateAddresses, proxy: args.proxy });
  const progress = new ProgressLine(err, { silent: args.quiet });
  let delivered = 0;
  let dead = 0;
  let retries = 0;
  let superseded = 0;
  outbox.on('delivered', () => (delivered += 1));
  outbox.on('superseded', () => (superseded += 1));
  outbox.on('dead', () => (dead += 1));
  outbox.on('retry', () => (retries += 1));
  const total = outbox.stats().pending;
  const draw = (): void => {
    const { pending } = outbox.stats();
    progress.update(
      `${formatBar(total === 0 ? 1 : (total - pending) / total)} ${total - pending}/${total}  ` +
        `delivered ${delivered}, ${superseded > 0 ? `superseded ${superseded}, ` : ''}dead ${dead}, retries ${retries}, ${formatDuration(Date.now() - started)}`,
    );
  };
  const ticker = setInterval(draw, 100);
  let timedOut = false;
  try {
    await outbox.drain({ timeoutMs: args.timeoutMs });
  } catch (error) {
    if (!(error instanceof Error && 'code' in error && error.code === 'ERR_DRAIN_TIMEOUT')) throw error;
    timedOut = true;
  } finally {
    clearInterval(ticker);
    draw();
    progress.done();
  }
  const remaining = outbox.stats().pending;
  await outbox.close();
  out.write(
    // Superseded events left unsent (latest state wins) are named only when there were any.
    `${total} pending at start: ${delivered} delivered, ${superseded > 0 ? `${superseded} superseded, ` : ''}${dead} dead-lettered, ${remaining} still pending ` +
      `(${retries} retries, ${formatDuration(Date.now() - started)})\n`,
  );
  if (timedOut) {
    err.write(`timed out after ${formatDuration(args.timeoutMs)}; ${remaining} event(s) stay in ${args.dir}\n`);
    return ExitCode.timeout;
  }
  if (dead > 0) {
    err.write(`${dead} event(s) were given up on: \`webhook-outbox dead list --dir ${args.dir}\`\n`);
    return ExitCode.failure;
  }
  return ExitCode.ok;
}

