/**
 * `webhook-outbox dead list|replay|purge`: what was given up on, putting it back in the queue, or deleting
 * it for good. Written against the `OutboxStore` port.
 */
import type { Writable } from 'node:stream';
import { isSensitiveHeader } from '../../message.js';
import type { DeadLetterSelection, ReplayOptions } from '../../outbox.js';
import type { DeadLetter, DeadLetterQuery, StoredEvent } from '../../store/store.js';
import { deadLetterMatches, filtersDeadLetters } from '../../store/validate.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatTable, redactUrl } from '../format.js';

const PREVIEW_CHARS = 200;

/** What `replay` and `purge` need: an `Outbox` provides it. */
export interface DeadLetterSource {
  deadLetters(query?: DeadLetterQuery): Promise<DeadLetter[]>;
  replay(selection?: DeadLetterSelection, options?: ReplayOptions): Promise<number>;
  purge(selection?: DeadLetterSelection): Promise<number>;
}

/** The filters of `dead list|replay|purge` besides ids: `--endpoint`, `--since`, `--until`. */
export type DeadLetterFilters = Pick<DeadLetterQuery, 'endpoint' | 'since' | 'until'>;

/** `ids` (all when empty) and the filters as one query. */
function selection(ids: readonly string[], filters: DeadLetterFilters): DeadLetterQuery {
  return { ...(ids.length === 0 ? {} : { ids }), ...filters };
}

/** An event as the CLI shows it: URL credentials and sensitive header values redacted, the body cut to a preview. */
export interface EventView {
  id: string;
  url: string;
  orderingKey: string | undefined;
  attempts: number;
  createdAt: string;
  lastStatus: number | undefined;
  lastError: string | undefined;
  headers: Record<string, string>;
  bodyBytes: number;
  bodyPreview: string;
}

/** A dead letter as the CLI shows it. */
export interface DeadLetterView extends EventView {
  reason: string;
  deadAt: string;
}

/** Builds the view of one event. */
export function viewEvent(event: StoredEvent): EventView {
  const last = event.history.at(-1);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers)) {
    headers[name] = isSensitiveHeader(name) ? '[redacted]' : value;
  }
  const text = Buffer.from(event.body).toString('utf8');
  return {
    id: event.id,
    url: redactUrl(event.url),
    orderingKey: event.orderingKey,
    attempts: event.attempts,
    createdAt: new Date(event.createdAt).toISOString(),
    lastStatus: last?.status,
    lastError: last?.error,
    headers,
    bodyBytes: event.body.byteLength,
    bodyPreview: text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}...` : text,
  };
}

/** Builds the view of one dead letter. */
export function viewDeadLetter(letter: DeadLetter): DeadLetterView {
  const view = viewEvent(letter);
  return { ...view, reason: letter.reason, deadAt: new Date(letter.deadAt).toISOString() };
}

/**
 * Prints dead letters (all of `all`, or only `ids`, and only those the filters pass), as a table or as
 * JSON. Exit 1 when a named id is not a dead letter.
 */
export function deadList(all: readonly DeadLetter[], ids: readonly string[], filters: DeadLetterFilters, json: boolean, out: Writable): ExitCodeValue {
  const wanted = new Set(ids);
  const named = ids.length === 0 ? all : all.filter((letter) => wanted.has(letter.id));
  const letters = named.filter((letter) => deadLetterMatches(filters, letter.url, letter.deadAt));
  const views = letters.map(viewDeadLetter);
  if (json) {
    out.write(`${JSON.stringify(views, null, 2)}\n`);
  } else if (views.length === 0) {
    out.write('No dead letters.\n');
  } else {
    const rows = views.map((v) => [
      v.id,
      v.reason,
      String(v.attempts),
      v.deadAt,
      v.lastStatus === undefined ? (v.lastError ?? '-') : `HTTP ${v.lastStatus}`,
      v.url,
    ]);
    out.write(`${formatTable([['ID', 'REASON', 'ATTEMPTS', 'DEAD AT', 'LAST', 'URL'], ...rows])}\n`);
    out.write(`${views.length} dead letter${views.length === 1 ? '' : 's'}.\n`);
  }
  const absent = missing(named, ids);
  if (absent.length > 0) throw new CliError(ExitCode.failure, `not a dead letter: ${absent.join(', ')}`);
  return ExitCode.ok;
}

function missing(letters: readonly DeadLetter[], ids: readonly string[]): string[] {
  const found = new Set(letters.map((letter) => letter.id));
  return ids.filter((id) => !found.has(id));
}

/** Fails with nothing changed when an id is not a dead letter. */
async function checkIds(store: DeadLetterSource, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  const absent = missing(await store.deadLetters({ ids }), ids);
  if (absent.length > 0) {
    throw new CliError(ExitCode.failure, `not a dead letter: ${absent.join(', ')} (nothing was changed)`);
  }
}

/**
 * Puts dead letters (all, or only `ids`, and only those the filters pass) back in the queue with their
 * attempts reset; to `url` when given.
 */
export async function deadReplay(store: DeadLetterSource, ids: readonly string[], filters: DeadLetterFilters, out: Writable, url?: string): Promise<ExitCodeValue> {
  await checkIds(store, ids);
  const count = await store.replay(selection(ids, filters), url === undefined ? {} : { url });
  out.write(`Replayed ${count} dead letter${count === 1 ? '' : 's'}: pending again${url === undefined ? '' : `, to ${redactUrl(url)}`}.\n`);
  return ExitCode.ok;
}

/**
 * Checks `purge`'s arguments before anything is opened: ids or filters (or both), or `--all`, never
 * neither nor `--all` with them.
 */
export function checkPurgeArgs(ids: readonly string[], filters: DeadLetterFilters, all: boolean): void {
  const chosen = ids.length > 0 || filtersDeadLetters(filters);
  if (!chosen && !all) {
    throw new CliError(ExitCode.usage, 'purge deletes for good: name the ids, select with --endpoint, --since or --until, or pass --all to purge every dead letter');
  }
  if (chosen && all) throw new CliError(ExitCode.usage, 'give either ids and filters or --all, not both');
}

/** Deletes dead letters for good: only `ids` and those the filters pass, or all of them when `all` is set. */
export async function deadPurge(store: DeadLetterSource, ids: readonly string[], filters: DeadLetterFilters, all: boolean, out: Writable): Promise<ExitCodeValue> {
  checkPurgeArgs(ids, filters, all);
  await checkIds(store, ids);
  const count = await store.purge(selection(ids, filters));
  out.write(`Purged ${count} dead letter${count === 1 ? '' : 's'}.\n`);
  return ExitCode.ok;
}
