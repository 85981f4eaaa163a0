/**
 * `webhook-outbox show <id>`: where one event of an outbox directory or table stands (pending, claimed or
 * dead), with its attempts, read without taking the lock or a lease.
 */
import type { Writable } from 'node:stream';
import type { FoundEvent } from '../../store/store.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatTable, printable } from '../format.js';
import { viewEvent } from './dead.js';

/**
 * Prints `found` (the event `id`, as the store holds it) as text or JSON. Exit 1 when the outbox does not
 * hold it: delivered, purged or never enqueued.
 */
export function showEvent(id: string, found: FoundEvent | undefined, json: boolean, out: Writable): ExitCodeValue {
  if (found === undefined) throw new CliError(ExitCode.failure, `${printable(id)} is not in the outbox: delivered, purged, or never enqueued`);
  // A table knows which events an outbox holds a lease on (it is sending them); a journal read without the
  // lock cannot tell a claimed event from a pending one.
  const state = found.state;
  const view = {
    ...viewEvent(found),
    state,
    ...(found.state === 'dead'
      ? { reason: found.reason, deadAt: new Date(found.deadAt).toISOString() }
      : { nextAttemptAt: new Date(found.nextAttemptAt).toISOString() }),
    history: found.history.map((attempt) => ({ at: new Date(attempt.at).toISOString(), durationMs: attempt.durationMs, status: attempt.status, error: attempt.error })),
  };
  if (json) {
    out.write(`${JSON.stringify(view, null, 2)}\n`);
    return ExitCode.ok;
  }
  const when =
    'reason' in view
      ? `dead (${view.reason}) since ${view.deadAt}`
      : state === 'claimed'
        ? `claimed (an outbox is sending it), attempt due at ${view.nextAttemptAt}`
        : `pending, next attempt at ${view.nextAttemptAt}`;
  // Text from the receiver (errors) and the producer (ids, keys) is printed with its control characters escaped.
  out.write(`${printable(view.id)}: ${when}, ${view.attempts} attempt${view.attempts === 1 ? '' : 's'}, created ${view.createdAt}\n`);
  out.write(`  url ${printable(view.url)}${view.orderingKey === undefined ? '' : `, ordering key ${printable(view.orderingKey)}`}, body ${view.bodyBytes} bytes\n`);
  if (view.history.length > 0) {
    const rows = view.history.map((attempt) => [attempt.at, `${attempt.durationMs} ms`, printable(attempt.error ?? (attempt.status === undefined ? '-' : `HTTP ${attempt.status}`))]);
    out.write(`${formatTable([['ATTEMPT AT', 'TOOK', 'OUTCOME'], ...rows])}\n`);
  }
  return ExitCode.ok;
}
