/**
 * `webhook-outbox send <url> --data <json|@file>`: enqueue one event durably in an outbox directory and
 * deliver it, with the exit code telling the outcome.
 */
import type { Writable } from 'node:stream';
import { openOutbox } from './outbox-dir.js';
import type { DeadEvent, DeliveredEvent, RetryEvent, SupersededEvent } from '../../delivery/flusher.js';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatDuration, printable } from '../format.js';
import { prepareMessage } from '../../message.js';
import { normalizeSenderOptions } from '../../options.js';

/** What `send` needs. */
export interface SendArgs {
  url: string;
  body: unknown;
  dir: string;
  secret: readonly string[] | undefined;
  headers: Record<string, string>;
  id: string | undefined;
  orderingKey: string | undefined;
  /** Latest state wins: the key's earlier waiting events are not sent (needs `orderingKey`). */
  supersede?: boolean;
  timeoutMs: number;
  /** The app's `blockPrivateAddresses`: opening the directory also delivers what the app left there. */
  blockPrivateAddresses: boolean | { allow: readonly string[] };
  /** The app's `proxy`: the HTTP proxy every request goes through, or `undefined` for direct connections. */
  proxy?: string | undefined;
}

/**
 * Enqueues and waits for the outcome: 0 delivered, 1 dead-lettered (permanent failure), 4 still pending
 * at `--timeout` (it stays on disk; `flush` keeps trying).
 */
export async function send(args: SendArgs, out: Writable, err: Writable): Promise<ExitCodeValue> {
  // --data is JSON: a JSON string goes out as JSON text too, not as text/plain.
  const body = typeof args.body === 'string' ? Buffer.from(JSON.stringify(args.body)) : args.body;
  const headers = typeof args.body === 'string' ? { 'content-type': 'application/json', ...args.headers } : args.headers;
  // Checked before the directory is opened: a bad id or header creates nothing on disk (exit 2).
  const key = {
    ...(args.orderingKey === undefined ? {} : { orderingKey: args.orderingKey }),
    ...(args.supersede === true ? { supersede: true } : {}),
  };
  const message = prepareMessage(
    { url: args.url, body, headers, ...(args.id === undefined ? {} : { id: args.id }), ...key },
    { url: args.url, maxBodyBytes: normalizeSenderOptions({}).maxBodyBytes, orderingKeys: true },
  );
  const outbox = await openOutbox(args.dir, { url: args.url, signingSecret: args.secret, blockPrivateAddresses: args.blockPrivateAddresses, proxy: args.proxy });
  try {
    const { id } = await outbox.enqueue({ url: args.url, body, headers, id: message.id, ...key });
    const [letter] = await outbox.deadLetters({ ids: [id] });
    if (letter !== undefined) {
      // An id is accepted once: this one is already a dead letter, so nothing new was enqueued.
      err.write(`${id} is already a dead letter (${letter.reason}); nothing was enqueued. Use \`webhook-outbox dead replay ${id}\` to send it again\n`);
      return ExitCode.failure;
    }
    err.write(`enqueued ${id} (durable in ${args.dir})\n`);
    // Attempts made by this run: the event's own count leaves out failures that were the endpoint's.
    let failed = 0;
    const outcome = await new Promise<DeliveredEvent | DeadEvent | SupersededEvent | undefined>((resolve) => {
      // setTimeout's longest delay (about 24.8 days); a longer one would fire at once.
      const timer = setTimeout(() => finish(undefined), Math.min(args.timeoutMs, 2 ** 31 - 1));
      const onDelivered = (event: DeliveredEvent): void => {
        if (event.id === id) finish(event);
      };
      const onDead = (event: DeadEvent): void => {
        if (event.id === id) finish(event);
      };
      const onRetry = (event: RetryEvent): void => {
        if (event.id !== id) return;
        const why = event.status === undefined ? event.error : `HTTP ${event.status}`;
        failed += 1;
        err.write(`attempt ${failed} failed (${why}); next try in ${formatDuration(event.nextAttemptAt - Date.now())}\n`);
      };
      // Earlier events of its key left in the directory, not sent because this one supersedes them.
      // This one too, when it was already waiting in the directory (the id is accepted once) behind a later one.
      const onSuperseded = (event: SupersededEvent): void => {
        err.write(`${event.id} superseded by ${event.by} (not sent)\n`);
        if (event.id === id) finish(event);
      };
      function finish(value: DeliveredEvent | DeadEvent | SupersededEvent | undefined): void {
        clearTimeout(timer);
        outbox.off('delivered', onDelivered);
        outbox.off('dead', onDead);
        outbox.off('retry', onRetry);
        outbox.off('superseded', onSuperseded);
        resolve(value);
      }
      outbox.on('delivered', onDelivered);
      outbox.on('dead', onDead);
      outbox.on('retry', onRetry);
      outbox.on('superseded', onSuperseded);
    });
    if (outcome === undefined) {
      err.write(
        `still pending after ${formatDuration(args.timeoutMs)}: ${id} stays in ${args.dir}; ` +
          `run \`webhook-outbox flush --dir ${args.dir}\` to keep trying\n`,
      );
      return ExitCode.timeout;
    }
    if ('by' in outcome) return ExitCode.failure;
    if ('reason' in outcome) {
      // Without an answer, what went wrong (ENOTFOUND, EPRIVATEADDRESS, a proxy's refusal) is in the history.
      const [letter] = outcome.status === undefined ? await outbox.deadLetters({ ids: [id] }) : [];
      const error = letter?.history.at(-1)?.error;
      const last = outcome.status !== undefined ? `, last answer HTTP ${outcome.status}` : error === undefined ? '' : ` (${printable(error)})`;
      err.write(`dead letter ${id}: ${outcome.reason} after ${outcome.attempts} attempt(s)${last}; see \`webhook-outbox dead list\`\n`);
      return ExitCode.failure;
    }
    out.write(`delivered ${id}: HTTP ${outcome.status} after ${failed + 1} attempt(s)\n`);
    return ExitCode.ok;
  } finally {
    await outbox.close();
  }
}
