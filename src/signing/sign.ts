/**
 * Standard Webhooks signatures over `"<id>.<timestamp>.<body>"`: `v1,<base64 HMAC-SHA256>` with the
 * base64-decoded part of a `whsec_` secret as key, or `v1a,<base64 ed25519>` with a `whsk_` secret key
 * (verified with its `whpk_` public key). Signing for senders, verification for receivers and tests.
 */
import { createHmac, sign, timingSafeEqual, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';
import { checkSigningSecrets, MAX_SIGNING_SECRETS, signingSecretProblem } from '../options.js';
import { ed25519KeyProblem, ed25519PrivateKey, ed25519PublicKey, PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX } from './ed25519-keys.js';

/** A decoded signing secret: an HMAC key (`v1`) or an ed25519 private key (`v1a`). */
export type SigningKey = { scheme: 'v1'; key: Buffer } | { scheme: 'v1a'; key: KeyObject };

/** A decoded verification key: an HMAC key (`v1`) or an ed25519 public key (`v1a`). */
export type VerifyingKey = { scheme: 'v1'; key: Buffer } | { scheme: 'v1a'; key: KeyObject };

/** Decodes a `whsec_` or `whsk_` secret. Throws `InvalidOptionError` (without quoting the secret). */
export function signingKey(secret: string): SigningKey {
  const problem = signingSecretProblem(secret);
  if (problem !== undefined) throw new InvalidOptionError('signingSecret', problem);
  if (secret.startsWith(SECRET_KEY_PREFIX)) return { scheme: 'v1a', key: ed25519PrivateKey(secret) };
  return { scheme: 'v1', key: Buffer.from(secret.slice('whsec_'.length), 'base64') };
}

function hmac(key: Buffer, id: string, timestampSeconds: number, body: Uint8Array | string): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest();
}

/** The signed content as one buffer: ed25519 signs a whole message, not a stream. */
function signedContent(id: string, timestampSeconds: number, body: Uint8Array | string): Buffer {
  return Buffer.concat([Buffer.from(`${id}.${timestampSeconds}.`), typeof body === 'string' ? Buffer.from(body) : body]);
}

/** Like {@link signPayload}, with a key already decoded by {@link signingKey} (decode once, sign often). */
export function signWithKey(key: SigningKey, id: string, timestampSeconds: number, body: Uint8Array | string): string {
  // 1e11 seconds is the year 5138: a larger value is milliseconds, which no receiver would accept.
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0 || timestampSeconds >= 1e11) {
    throw new InvalidOptionError('timestampSeconds', `must be whole seconds since the epoch (not milliseconds), got ${String(timestampSeconds)}`);
  }
  if (key.scheme === 'v1a') return `v1a,${sign(null, signedContent(id, timestampSeconds, body), key.key).toString('base64')}`;
  return `v1,${hmac(key.key, id, timestampSeconds, body).toString('base64')}`;
}

/**
 * The `webhook-signature` value for one attempt: `v1,<base64>` for a `whsec_` secret, `v1a,<base64>` for
 * a `whsk_` secret key. `body` must be the exact bytes sent; `timestampSeconds` whole seconds (not
 * milliseconds), else `ERR_INVALID_OPTION`.
 */
export function signPayload(secret: string, id: string, timestampSeconds: number, body: Uint8Array | string): string {
  return signWithKey(signingKey(secret), id, timestampSeconds, body);
}

/** Why `value` cannot verify signatures: like a signing secret, but a `whpk_` public key is fine too. */
function verifyingKeyProblem(value: unknown): string | undefined {
  if (typeof value === 'string' && value.startsWith(PUBLIC_KEY_PREFIX)) return ed25519KeyProblem(value);
  if (typeof value === 'string' && (value.startsWith('whsec_') || value.startsWith(SECRET_KEY_PREFIX))) return signingSecretProblem(value);
  const expected = `expected a 'whsec_' secret, an ed25519 '${PUBLIC_KEY_PREFIX}' public key or a '${SECRET_KEY_PREFIX}' secret key`;
  return typeof value === 'string' ? `${expected} (the value is not in that format)` : `${expected}, got ${value === null ? 'null' : typeof value}`;
}

/**
 * The keys `verifyWebhook` checks with, decoded: `whsec_` secrets and `whpk_` public keys; a `whsk_` secret
 * key verifies with its public key. Throws `InvalidOptionError` like {@link verifyWebhook}.
 */
export function verifyingKeys(secret: string | readonly string[]): VerifyingKey[] {
  if (secret === undefined) throw new InvalidOptionError('signingSecret', String(verifyingKeyProblem(secret)));
  return (checkSigningSecrets(secret, 'signingSecret', verifyingKeyProblem) ?? []).map((text) =>
    text.startsWith('whsec_') ? { scheme: 'v1', key: Buffer.from(text.slice('whsec_'.length), 'base64') } : { scheme: 'v1a', key: ed25519PublicKey(text) },
  );
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
 * `toleranceSeconds` of now, and one of the space-separated signatures matches: a `v1,` entry the HMAC of
 * a `whsec_` secret (compared in constant time), a `v1a,` entry the ed25519 signature of a `whpk_` public
 * key (or of a `whsk_` secret key's public key); each entry is checked only against keys of its kind.
 * `secret` may be a list (while rotating: the new and the old secret, of either kind): a signature made
 * with any of them counts (a repeated one counts once). At most 10 ed25519 verifications (pairs of a `v1a`
 * entry and a public key) are made per request: each costs some 80 us. `body` must be the raw request body,
 * before any JSON parsing.
 * Throws `ERR_INVALID_OPTION` only for a malformed secret or key (or a list that is empty or longer than
 * 10), headers that are not an object, a body that is not text or bytes, a
 * `toleranceSeconds` that is not a number >= 0, or a `now` that is not a finite number.
 */
export function verifyWebhook(secret: string | readonly string[], headers: IncomingHeaders, body: RawBody, options: VerifyOptions = {}): VerifyResult {
  const keys = verifyingKeys(secret);
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
  const expected = keys.flatMap((k) => (k.scheme === 'v1' ? [hmac(k.key, id, timestamp, bytes)] : []));
  const publicKeys = keys.flatMap((k) => (k.scheme === 'v1a' ? [k.key] : []));
  let content: Buffer | undefined;
  let verifications = 0;
  for (const entry of signatures.split(' ')) {
    const [version, encoded] = entry.split(',', 2);
    if ((version !== 'v1' && version !== 'v1a') || encoded === undefined) continue;
    const given = Buffer.from(encoded, 'base64');
    // Buffer.from skips characters outside base64: only the canonical text of a signature counts.
    if (given.toString('base64') !== encoded) continue;
    if (version === 'v1') {
      if (expected.some((mac) => given.byteLength === mac.byteLength && timingSafeEqual(given, mac))) return { ok: true, id, timestamp };
      continue;
    }
    // Each pair of a v1a entry and a key costs an ed25519 verification: a header stuffed with entries
    // must not buy an attacker unbounded work (nor 10 entries times 10 keys). A sender signs with at most
    // MAX_SIGNING_SECRETS keys at once, and a receiver rotating holds two: that many verifications, no more.
    if (given.byteLength !== 64) continue;
    const signed = (content ??= signedContent(id, timestamp, bytes));
    for (const key of publicKeys) {
      // Past the bound, v1a entries are skipped (a v1 entry later in the header still counts).
      if (verifications >= MAX_SIGNING_SECRETS) break;
      verifications++;
      if (verify(null, signed, key, given)) return { ok: true, id, timestamp };
    }
  }
  return { ok: false, reason: 'signature-mismatch' };
}

function rawBytes(body: RawBody): Uint8Array | string {
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new InvalidOptionError('body', 'must be the raw request body: a string, a Buffer or Uint8Array, or an ArrayBuffer (not parsed JSON)');
}
