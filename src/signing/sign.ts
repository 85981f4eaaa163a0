/**
 * Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key is
 * the base64-decoded part of a `whsec_` secret. Signing for senders, verification for receivers and tests.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';
import { checkSigningSecrets, signingSecretProblem } from '../options.js';

/** Decodes a `whsec_` secret to its HMAC key. Throws `InvalidOptionError` (without quoting the secret). */
export function signingKey(secret: string): Buffer {
  const problem = signingSecretProblem(secret);
  if (problem !== undefined) throw new InvalidOptionError('signingSecret', problem);
  return Buffer.from(secret.slice('whsec_'.length), 'base64');
}

function hmac(key: Buffer, id: string, timestampSeconds: number, body: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest();
}

/** Like {@link signPayload}, with a key already decoded by {@link signingKey} (decode once, sign often). */
export function signWithKey(key: Buffer, id: string, timestampSeconds: number, body: Uint8Array | string): string {
  // 1e11 seconds is the year 5138: a larger value is milliseconds, which no receiver would accept.
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0 || timestampSeconds >= 1e11) {
    throw new InvalidOptionError('timestampSeconds', `must be whole seconds since the epoch (not milliseconds), got ${String(timestampSeconds)}`);
  }
  return `v1,${hmac(key, id, timestampSeconds, body).toString('base64')}`;
}

/**
 * The `webhook-signature` value for one attempt: `v1,<base64>`. `body` must be the exact bytes sent;
 * `timestampSeconds` whole seconds (not milliseconds), else `ERR_INVALID_OPTION`.
 */
export function signPayload(secret: string, id: string, timestampSeconds: number, body: Uint8Array | string): string {
  return signWithKey(signingKey(secret), id, timestampSeconds, body);
}

/** Request headers as Node (`req.headers`) or fetch (`Headers`) gives them. */
export type IncomingHeaders = Record<string, string | string[] | undefined> | { get(name: string): string | null };

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /**
   * Largest accepted distance between `webhook-timestamp` and now, in seconds (replay protection).
   * @default 300
   */
  toleranceSeconds?: number;
  /**
   * The current time in epoch milliseconds.
   * @default Date.now()
   */
  now?: number;
}

/** A raw body as receivers get it: a string, a Buffer or any byte view, or an ArrayBuffer (fetch's `arrayBuffer()`). */
export type RawBody = string | Uint8Array | ArrayBufferView | ArrayBuffer;

/** Outcome of {@link verifyWebhook}. */
export type VerifyResult =
  | { ok: true; id: string; timestamp: number }
  | { ok: false; reason: 'missing-headers' | 'bad-timestamp' | 'timestamp-out-of-tolerance' | 'signature-mismatch' };

function header(headers: IncomingHeaders, name: string): string | undefined {
  if (typeof headers.get === 'function') return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value.join(' ') : value;
}

/**
 * Checks a received webhook the Standard Webhooks way: the headers are present, the timestamp is within
 * `toleranceSeconds` of now, and one of the space-separated `v1,` signatures matches (constant-time).
 * `secret` may be a list (while rotating: the new and the old secret): a signature made with any of them
 * counts (a repeated one counts once). `body` must be the raw request body, before any JSON parsing.
 * Throws `ERR_INVALID_OPTION` only for a malformed secret (or a list that is empty or longer than 10),
 * headers that are not an object, a body that is not text or bytes, a
 * `toleranceSeconds` that is not a number >= 0, or a `now` that is not a finite number.
 */
export function verifyWebhook(secret: string | readonly string[], headers: IncomingHeaders, body: RawBody, options: VerifyOptions = {}): VerifyResult {
  if (secret === undefined) throw new InvalidOptionError('signingSecret', String(signingSecretProblem(secret)));
  const keys = (checkSigningSecrets(secret) ?? []).map(signingKey);
  if (typeof headers !== 'object' || headers === null) throw new InvalidOptionError('headers', 'must be the request headers (an object or a Headers)');
  const bytes = rawBytes(body);
  const tolerance = options.toleranceSeconds ?? 300;
  if (typeof tolerance !== 'number' || !(tolerance >= 0)) throw new InvalidOptionError('toleranceSeconds', `must be a number >= 0, got ${String(tolerance)}`);
  const now = options.now ?? Date.now();
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new InvalidOptionError('now', `must be a finite number of epoch milliseconds, got ${String(now)}`);
  const id = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || timestampText === undefined || signatures === undefined) return { ok: false, reason: 'missing-headers' };
  if (!/^\d{1,15}$/.test(timestampText)) return { ok: false, reason: 'bad-timestamp' };
  const timestamp = Number(timestampText);
  if (Math.abs(Math.floor(now / 1000) - timestamp) > tolerance) return { ok: false, reason: 'timestamp-out-of-tolerance' };
  const expected = keys.map((key) => hmac(key, id, timestamp, bytes));
  for (const entry of signatures.split(' ')) {
    const [version, encoded] = entry.split(',', 2);
    if (version !== 'v1' || encoded === undefined) continue;
    const given = Buffer.from(encoded, 'base64');
    // Buffer.from skips characters outside base64: only the canonical text of a signature counts.
    if (given.toString('base64') !== encoded) continue;
    if (expected.some((mac) => given.byteLength === mac.byteLength && timingSafeEqual(given, mac))) return { ok: true, id, timestamp };
  }
  return { ok: false, reason: 'signature-mismatch' };
}

function rawBytes(body: RawBody): Uint8Array | string {
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new InvalidOptionError('body', 'must be the raw request body: a string, a Buffer or Uint8Array, or an ArrayBuffer (not parsed JSON)');
}
