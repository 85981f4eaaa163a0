/**
 * Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key is
 * the base64-decoded part of a `whsec_` secret. Signing for senders, verification for receivers and tests.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';
import { signingSecretProblem } from '../options.js';

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
  return `v1,${hmac(key, id, timestampSeconds, body).toString('base64')}`;
}

/**
 * The `webhook-signature` value for one attempt: `v1,<base64>`. `body` must be the exact bytes sent.
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
 * `body` must be the raw request body, before any JSON parsing. Throws only for a malformed secret.
 */
export function verifyWebhook(
  secret: string,
  headers: IncomingHeaders,
  body: Uint8Array | string,
  options: VerifyOptions = {},
): VerifyResult {
  const key = signingKey(secret);
  const id = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (id === undefined || timestampText === undefined || signatures === undefined) return { ok: false, reason: 'missing-headers' };
  if (!/^\d{1,15}$/.test(timestampText)) return { ok: false, reason: 'bad-timestamp' };
  const timestamp = Number(timestampText);
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - timestamp) > (options.toleranceSeconds ?? 300)) return { ok: false, reason: 'timestamp-out-of-tolerance' };
  const expected = hmac(key, id, timestamp, body);
  for (const entry of signatures.split(' ')) {
    const [version, encoded] = entry.split(',', 2);
    if (version !== 'v1' || encoded === undefined) continue;
    const given = Buffer.from(encoded, 'base64');
    if (given.byteLength === expected.byteLength && timingSafeEqual(given, expected)) return { ok: true, id, timestamp };
  }
  return { ok: false, reason: 'signature-mismatch' };
}
