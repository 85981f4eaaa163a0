import { InvalidMessageError, InvalidOptionError } from '../errors.js';
import type { AttemptRecord, DeadLetterQuery, NewEvent, StoredEvent } from './store.js';
import { MAX_HISTORY } from './store.js';

/**
 * Checks a batch handed to `OutboxStore.append()` before anything is written, so bad input never
 * reaches the disk. The outbox validates messages earlier with friendlier errors; this is the store's
 * own guard for direct users of the port.
 */
export function assertNewEvents(events: readonly NewEvent[]): void {
  if (!Array.isArray(events)) throw new InvalidMessageError('events', 'must be an array of events');
  for (const event of events) {
    if (typeof event !== 'object' || event === null) throw new InvalidMessageError('event', 'must be an object');
    if (typeof event.id !== 'string' || event.id.length === 0 || event.id.length > 1024) {
      throw new InvalidMessageError('id', 'must be a non-empty string of at most 1024 characters');
    }
    if (typeof event.url !== 'string' || event.url.length === 0) throw new InvalidMessageError('url', 'must be a non-empty string', 'ERR_INVALID_URL');
    if (!(event.body instanceof Uint8Array)) throw new InvalidMessageError('body', 'must be a Uint8Array');
    if (typeof event.headers !== 'object' || event.headers === null) throw new InvalidMessageError('headers', 'must be an object');
    for (const [name, value] of Object.entries(event.headers)) {
      if (typeof value !== 'string') throw new InvalidMessageError(`headers.${name}`, 'must be a string');
    }
    if (!Number.isFinite(event.createdAt)) throw new InvalidMessageError('createdAt', 'must be a finite number');
    if (!Number.isFinite(event.nextAttemptAt)) throw new InvalidMessageError('nextAttemptAt', 'must be a finite number');
    const key = event.orderingKey;
    const problem = key === undefined ? undefined : orderingKeyProblem(key);
    if (problem !== undefined) throw new InvalidMessageError('orderingKey', problem);
    const supersede: unknown = event.supersede;
    if (supersede !== undefined && typeof supersede !== 'boolean') throw new InvalidMessageError('supersede', 'must be a boolean');
    if (supersede === true && key === undefined) throw new InvalidMessageError('supersede', 'needs an orderingKey (it supersedes earlier events of the same key)');
  }
}

/**
 * Whether a dead letter of endpoint `url` that died at `deadAt` passes `query`'s endpoint and time filters
 * (its `ids` and `limit` are the caller's to apply).
 */
export function deadLetterMatches(query: DeadLetterQuery, url: string, deadAt: number): boolean {
  return (
    (query.endpoint === undefined || url === query.endpoint) &&
    (query.since === undefined || deadAt >= query.since) &&
    (query.until === undefined || deadAt < query.until)
  );
}

/** Whether `query` filters by endpoint or time of death (what {@link deadLetterMatches} checks). */
export function filtersDeadLetters(query: DeadLetterQuery): boolean {
  return query.endpoint !== undefined || query.since !== undefined || query.until !== undefined;
}

/** Longest ordering key, in UTF-16 code units (as `String#length` counts). */
const MAX_ORDERING_KEY = 256;
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Why `key` is not an ordering key, or `undefined` when it is. A lone surrogate is refused: it has no
 * UTF-8 form, so the key stored would not be the key given.
 */
export function orderingKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_ORDERING_KEY) return `must be a string of 1-${MAX_ORDERING_KEY} UTF-16 code units`;
  if (LONE_SURROGATE.test(key)) return 'must be well-formed Unicode (it has a lone surrogate)';
  return undefined;
}

/** Validates an optional positive integer option of a store. */
export function assertPositiveInteger(option: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidOptionError(option, `must be a positive integer, got ${String(value)}`);
  }
}

/** The bytes an event is charged against a store's `maxBytes`. */
export function eventSize(event: NewEvent): number {
  let size = event.body.byteLength + Buffer.byteLength(event.url) + Buffer.byteLength(event.id) + (event.orderingKey === undefined ? 0 : Buffer.byteLength(event.orderingKey));
  for (const [name, value] of Object.entries(event.headers)) size += name.length + Buffer.byteLength(value) + 6;
  return size;
}

/** Appends an attempt to a history, keeping the newest {@link MAX_HISTORY}. */
export function withAttempt(history: readonly AttemptRecord[], attempt: AttemptRecord | undefined): AttemptRecord[] {
  const next = attempt === undefined ? [...history] : [...history, { ...attempt }];
  return next.length > MAX_HISTORY ? next.slice(next.length - MAX_HISTORY) : next;
}

/** A deep copy of an event, so callers never share mutable state with a store. */
export function copyEvent<T extends StoredEvent>(event: T): T {
  return {
    ...event,
    headers: { ...event.headers },
    body: new Uint8Array(event.body),
    history: event.history.map((attempt) => ({ ...attempt })),
  };
}
