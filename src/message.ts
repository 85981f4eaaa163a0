/**
 * A webhook message as the caller gives it, and its validation into the exact request we send: final URL,
 * lower-case headers with a content type, and the body bytes that get signed. Everything is checked here,
 * before any request or write, so bad input fails fast with an `InvalidMessageError`.
 */
import { randomFillSync } from 'node:crypto';
import { InvalidMessageError } from './errors.js';
import { orderingKeyProblem } from './store/validate.js';
import type { AddressGuard } from './transport/private-addresses.js';

/** One event to deliver. */
export interface WebhookMessage {
  /** Where to POST it; else `options.url`. `http:` or `https:` only, not the host `unix` (got's Unix socket form). */
  url?: string;
  /**
   * The payload. A string or `Uint8Array` is sent as-is (`text/plain; charset=utf-8` or
   * `application/octet-stream` unless you set `content-type`); any other JSON value is serialised and sent
   * as `application/json`.
   */
  body: unknown;
  /** Extra request headers. Values must be strings. `webhook-id`, `webhook-timestamp`, `webhook-signature` and hop-by-hop headers (`content-length`, `host`, `connection`...) are reserved. */
  headers?: Record<string, string>;
  /** Idempotency key sent as `webhook-id`; generated (`msg_<ulid>`) if absent. Visible ASCII, 1-256 chars. */
  id?: string;
}

/** A message for `Outbox.enqueue()`. */
export interface OutboxMessage extends WebhookMessage {
  /**
   * Events with the same ordering key are sent one at a time, in the order they were enqueued: the next
   * only once the one before was delivered or became a dead letter (it waits while that one is retried).
   * Other keys, and events without one, are not held up. 1-256 UTF-16 code units (`key.length`),
   * well-formed. See docs/03.
   */
  orderingKey?: string;
  /**
   * Latest state wins (needs `orderingKey`): while this event is pending, earlier-enqueued events of its
   * key to its URL are removed unsent when their turn comes (`'superseded'` event, `stats().superseded`). Events
   * already in flight finish; dead letters are not touched. See docs/03.
   * @default false
   */
  supersede?: boolean;
}

/** A validated message, ready to hand to a transport. */
export interface PreparedMessage {
  id: string;
  url: string;
  /** Lower-case names; always includes `content-type`. */
  headers: Record<string, string>;
  body: Uint8Array;
  /** Only from `Outbox.enqueue()`. */
  orderingKey?: string;
  /** Only from `Outbox.enqueue()`, and only with `orderingKey`. */
  supersede?: boolean;
}

/** What {@link prepareMessage} needs from the options. */
export interface PrepareOptions {
  /** Fallback URL when the message has none. */
  url?: string | undefined;
  /** Largest accepted body, in bytes. */
  maxBodyBytes: number;
  /** Default headers, already validated; the message's headers override them. */
  headers?: Record<string, string> | undefined;
  /** Whether the message may have an `orderingKey` and `supersede` (an outbox's; a sender sends at once, in no order). */
  orderingKeys?: boolean;
  /** The `blockPrivateAddresses` policy: URLs it refuses by their host alone are invalid. */
  addressGuard?: AddressGuard | undefined;
}

/** Headers the library sets itself; a caller may not set them. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'content-length',
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CRLF = /[\r\n]/;
const ID = /^[\x21-\x7e]{1,256}$/;
const SENSITIVE = /auth|cookie|token|secret|signature|passw|session|credential|api[-_]?key|(^|[-_])key$/i;

/**
 * Whether a header's value must never appear in errors, logs or dead-letter excerpts
 * (`authorization`, `cookie`, `webhook-signature`, `x-api-key`, anything token- or secret-like).
 */
export function isSensitiveHeader(name: string): boolean {
  return SENSITIVE.test(name);
}

/**
 * Why a header value's characters cannot go on the wire, or `undefined`. HTTP/1.1 carries a value as bytes,
 * which Node writes as Latin-1: it refuses a character above U+00FF at every attempt (`ERR_INVALID_CHAR`).
 */
function valueCharacterProblem(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return 'header value contains a control character';
    if (c > 0xff) return 'header value has a character above U+00FF, which HTTP headers cannot carry (encode it, e.g. with encodeURIComponent)';
  }
  return undefined;
}

/**
 * Why a header cannot be sent, or `undefined` when it can. Never quotes the value (it may be a credential).
 * Reserved names are checked by the caller: default headers and message headers share this check.
 */
export function headerProblem(name: string, value: unknown): string | undefined {
  if (name.length === 0) return 'header name is empty';
  if (CRLF.test(name)) return 'header name contains CR or LF';
  if (!TOKEN.test(name)) return 'header name has characters not allowed in an HTTP token';
  if (typeof value !== 'string') return `header value must be a string, got ${value === null ? 'null' : typeof value}`;
  if (CRLF.test(value)) return 'header value contains CR or LF';
  return valueCharacterProblem(value);
}

/**
 * The host got reads as a Unix domain socket (`http://unix:/run/app.sock:/hook`), whatever the port or path.
 * The built-in transport leaves got's `enableUnixSockets` off, so every attempt to such a URL would fail.
 */
const UNIX_SOCKET_HOST = 'unix';

/**
 * Why `value` is not an absolute http(s) URL an endpoint can have, or `undefined` when it is: the host
 * `unix` is refused here rather than failing at every attempt until `retry.maxAgeMs`. Never quotes the URL
 * (it may hold credentials).
 */
export function urlProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return `expected a URL string, got ${value === null ? 'null' : typeof value}`;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return 'not a valid absolute URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return `protocol must be http: or https:, got ${JSON.stringify(parsed.protocol.slice(0, 20))}`;
  }
  if (parsed.hostname === UNIX_SOCKET_HOST) {
    return `the host '${UNIX_SOCKET_HOST}' is got's form for a Unix domain socket (http://unix:/path/to.sock:/path), which is not supported`;
  }
  return undefined;
}

/**
 * Validates `headers` as a header record and returns it with lower-case names. `describe(field, problem)`
 * builds the error, so options and messages report in their own terms.
 */
export function normalizeHeaders(
  headers: unknown,
  path: string,
  fail: (field: string, problem: string) => Error,
): Record<string, string> {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw fail(path, 'expected an object of header names to string values');
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const field = `${path}.${name}`;
    const problem = headerProblem(name, value);
    if (problem !== undefined) throw fail(field, problem);
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) {
      throw fail(field, lower === 'webhook-id' ? 'reserved: set message.id instead' : 'reserved: the library sets this header');
    }
    if (Object.hasOwn(out, lower)) throw fail(field, 'given twice with different letter case');
    out[lower] = value as string;
  }
  return out;
}

function invalid(field: string, problem: string): InvalidMessageError {
  return new InvalidMessageError(field, problem);
}

function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  const where = key === '' ? 'body' : `body.${key}`;
  switch (typeof value) {
    case 'function':
    case 'symbol':
    case 'bigint':
      throw invalid(where, `a ${typeof value} cannot be sent as JSON`);
    case 'number':
      if (!Number.isFinite(value)) throw invalid(where, `${value} cannot be sent as JSON`);
      return value;
    case 'object': {
      // The value before its toJSON(): a Buffer's toJSON() would turn it into {"type":"Buffer","data":[...]}.
      const raw = (this as Record<string, unknown>)[key];
      for (const v of [value, raw]) {
        if (v instanceof Map || v instanceof Set || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
          throw invalid(where, `a ${v.constructor.name} has no JSON form; convert it first`);
        }
      }
      return value;
    }
    default:
      return value;
  }
}

function encodeBody(body: unknown): { bytes: Uint8Array; contentType: string } {
  if (body === undefined) throw invalid('body', 'is missing (undefined)');
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), contentType: 'text/plain; charset=utf-8' };
  if (body instanceof Uint8Array) return { bytes: Uint8Array.from(body), contentType: 'application/octet-stream' };
  let json: string | undefined;
  try {
    json = JSON.stringify(body, jsonReplacer);
  } catch (error) {
    if (error instanceof InvalidMessageError) throw error;
    throw new InvalidMessageError('body', 'cannot be serialised as JSON (circular reference?)', 'ERR_INVALID_MESSAGE', { cause: error });
  }
  if (json === undefined) throw invalid('body', 'has no JSON form');
  return { bytes: Buffer.from(json, 'utf8'), contentType: 'application/json' };
}

/** The URL that passed {@link urlProblem} last: most messages go to the same one, and parsing a URL is costly. */
let lastValidUrl: string | undefined;

/**
 * Validates `message` and builds the exact request: id, URL, headers (defaults, then the message's, then
 * `content-type` unless given) and body bytes. Throws `InvalidMessageError` (`ERR_INVALID_MESSAGE`,
 * `ERR_INVALID_URL` or `ERR_BODY_TOO_LARGE`) and never quotes header values or URLs.
 */
export function prepareMessage(message: unknown, options: PrepareOptions): PreparedMessage {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    throw invalid('message', 'expected an object with a `body`');
  }
  const m = message as Record<string, unknown>;
  const keyed = options.orderingKeys === true;
  for (const key of Object.keys(m)) {
    if (key !== 'url' && key !== 'body' && key !== 'headers' && key !== 'id' && !(keyed && (key === 'orderingKey' || key === 'supersede'))) {
      throw invalid(key, `unknown field (expected url, body, headers, id${keyed ? ', orderingKey, supersede' : ''})`);
    }
  }
  const orderingKey = m.orderingKey as string | undefined;
  const keyProblem = orderingKey === undefined ? undefined : orderingKeyProblem(orderingKey);
  if (keyProblem !== undefined) throw invalid('orderingKey', keyProblem);
  const supersede = m.supersede;
  if (supersede !== undefined && typeof supersede !== 'boolean') throw invalid('supersede', 'must be a boolean');
  if (supersede === true && orderingKey === undefined) throw invalid('supersede', 'needs an orderingKey (it supersedes earlier events of the same key)');

  let id: string;
  if (m.id === undefined) {
    id = newEventId();
  } else if (typeof m.id !== 'string' || m.id.length === 0) {
    throw invalid('id', 'must be a non-empty string');
  } else if (!ID.test(m.id)) {
    throw invalid('id', 'must be 1-256 visible ASCII characters (no spaces or control characters)');
  } else {
    id = m.id;
  }

  const url = m.url === undefined ? options.url : m.url;
  if (url === undefined) throw new InvalidMessageError('url', 'no URL: set `url` on the message or in the options', 'ERR_INVALID_URL');
  if (url !== lastValidUrl) {
    const problem = urlProblem(url);
    if (problem !== undefined) throw new InvalidMessageError('url', problem, 'ERR_INVALID_URL');
    lastValidUrl = url as string;
  }
  const refused = options.addressGuard?.urlProblem(url as string);
  if (refused !== undefined) throw new InvalidMessageError('url', refused, 'ERR_INVALID_URL');

  const own = m.headers === undefined ? {} : normalizeHeaders(m.headers, 'headers', invalid);
  const { bytes, contentType } = encodeBody(m.body);
  if (bytes.byteLength > options.maxBodyBytes) {
    throw new InvalidMessageError(
      'body',
      `is ${bytes.byteLength} bytes, over maxBodyBytes (${options.maxBodyBytes})`,
      'ERR_BODY_TOO_LARGE',
    );
  }
  const headers = { 'content-type': contentType, ...options.headers, ...own };
  const prepared: PreparedMessage = { id, url: url as string, headers, body: bytes };
  // Not with a spread: it costs an enqueue a third of its time.
  if (orderingKey !== undefined) prepared.orderingKey = orderingKey;
  if (supersede === true) prepared.supersede = true;
  return prepared;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** Every 10-bit value as two Crockford base32 digits. */
const PAIRS = Array.from({ length: 1024 }, (_, n) => `${CROCKFORD[n >> 5]}${CROCKFORD[n & 31]}`);
const TWO_40 = 2 ** 40;
/** Random bytes drawn in blocks: one `randomFillSync` per 100 fresh ids instead of one call each. */
const randomPool = Buffer.allocUnsafe(1000);
let randomAt = randomPool.length;
let lastTime = -1;
/** The 80-bit random part as two 40-bit halves, and `msg_` + time + high half as a string. */
let randomHigh = 0;
let randomLow = 0;
let prefix = '';

/** `value` (below 2^50) as `pairs * 2` base32 digits. */
function base32(value: number, pairs: number): string {
  let out = '';
  for (let i = 0; i < pairs; i++) {
    out = (PAIRS[value % 1024] as string) + out;
    value = Math.floor(value / 1024);
  }
  return out;
}

/**
 * A new event id: `msg_` + a ULID (48-bit millisecond time + 80 random bits, Crockford base32). Ids made in
 * this process sort by creation, also within one millisecond (the random part is incremented).
 */
export function newEventId(now: number = Date.now()): string {
  let time = Math.max(0, Math.floor(now));
  if (time <= lastTime) {
    time = lastTime;
    if (++randomLow === TWO_40) {
      randomLow = 0;
      randomHigh = (randomHigh + 1) % TWO_40;
      prefix = `msg_${base32(time, 5)}${base32(randomHigh, 4)}`;
    }
  } else {
    if (randomAt + 10 > randomPool.length) {
      randomFillSync(randomPool);
      randomAt = 0;
    }
    randomHigh = randomPool.readUIntBE(randomAt, 5);
    randomLow = randomPool.readUIntBE(randomAt + 5, 5);
    randomAt += 10;
    lastTime = time;
    prefix = `msg_${base32(time, 5)}${base32(randomHigh, 4)}`;
  }
  return prefix + base32(randomLow, 4);
}
