/**
 * One delivery attempt, shared by the sender and the outbox flusher: send the prepared request through the
 * (signed) transport and turn whatever happened into one normalised result, classified for retrying.
 */
import type { Clock } from '../clock.js';
import { HttpStatusError, type NetworkError } from '../errors.js';
import type { PreparedMessage } from '../message.js';
import { isSensitiveHeader } from '../message.js';
import type { NormalizedSenderOptions } from '../options.js';
import { classifyError, classifyStatus, isSuccessStatus, toNetworkError } from '../retry/classify.js';
import { parseRetryAfter } from '../retry/retry-after.js';
import { withSigning } from '../signing/signing-transport.js';
import { createGotTransport } from '../transport/got-transport.js';
import type { Transport } from '../transport/transport.js';

/** Longest response-body excerpt kept on an `HttpStatusError`. */
export const EXCERPT_CHARS = 1024;

/** A 2xx answer. */
export interface AttemptSuccess {
  ok: true;
  status: number;
  /** Epoch ms when the attempt started. */
  at: number;
  durationMs: number;
}

/** Anything else: a non-2xx status or no answer at all. */
export interface AttemptFailure {
  ok: false;
  /** The same request may succeed later. */
  retryable: boolean;
  /** 429, 503 or a timeout: the receiver is overloaded; slow down. */
  throttled: boolean;
  /** The status, when the receiver answered. */
  status?: number;
  /** The receiver's `Retry-After`, in ms, when it sent one on a retryable answer. */
  retryAfterMs?: number;
  /** `HttpStatusError` (status + redacted excerpt) or `NetworkError` (`ERR_NETWORK`, `ERR_TIMEOUT`, `ERR_ABORTED`). */
  error: HttpStatusError | NetworkError;
  at: number;
  durationMs: number;
}

/** The outcome of {@link runAttempt}. It never rejects. */
export type AttemptResult = AttemptSuccess | AttemptFailure;

/** Per-attempt settings. */
export interface AttemptOptions {
  /** Overall deadline of this attempt. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  clock: Clock;
  /** Retry `ENOTFOUND`. */
  retryOnDnsFailure?: boolean;
  /** Strings to blank out of the response excerpt (credentials we sent, which an echoing server returns). */
  redact?: readonly string[];
}

/** What to blank out of excerpts for signing secrets: each secret, and its key alone (without `whsec_`). */
export function secretRedactions(signingSecret: readonly string[] | undefined): string[] {
  return (signingSecret ?? []).flatMap((secret) => (secret.startsWith('whsec_') ? [secret, secret.slice('whsec_'.length)] : [secret]));
}

/** The values of a request's credential-like headers: what must never be echoed into an excerpt. */
export function sensitiveValues(headers: Record<string, string>): string[] {
  return Object.entries(headers)
    .filter(([name, value]) => isSensitiveHeader(name) && value.length >= 4)
    .map(([, value]) => value);
}

/**
 * The credentials a URL carries: user info, and query values long enough to be tokens (`?format=json` is
 * not). The CLI shows both as `***`; an echoing receiver (a 404 page quoting the path) must not leak them.
 */
export function urlSecrets(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const found = [decodeURIComponent(parsed.username), decodeURIComponent(parsed.password), ...parsed.searchParams.values()];
  return found.filter((value) => value.length >= 8);
}

/** Shortest start of a secret that is blanked where an excerpt ends (the transport may have cut it there). */
const MIN_CUT_SECRET = 8;

/**
 * The forms a secret takes in a receiver's answer: as sent, JSON-escaped (`\/`, as PHP writes it),
 * percent-encoded (a form body or an echoed URL), and for base64 also unpadded and base64url.
 */
function secretForms(secret: string): string[] {
  const unpadded = secret.replace(/=+$/, '');
  const forms = new Set([
    secret,
    JSON.stringify(secret).slice(1, -1),
    secret.replaceAll('/', '\\/'),
    encodeURIComponent(secret),
    unpadded,
    unpadded.replaceAll('+', '-').replaceAll('/', '_'),
  ]);
  // Longest first, so that a form is replaced before a shorter one inside it.
  return [...forms].filter((form) => form.length > 0).sort((a, b) => b.length - a.length);
}

// The signing wrapper adds the signature after this module builds the headers, so an echoed signature
// is recognised by its shape instead.
const SIGNATURE = /\bv1a?,[A-Za-z0-9+/]{16,}={0,2}/g;

/**
 * `text` cut to `max` characters, with every occurrence of each secret (in the forms of
 * {@link secretForms}) and anything shaped like a Standard Webhooks signature replaced by `[redacted]`;
 * text ending in the start of a secret (an excerpt the transport cut through it) loses that start too.
 */
export function redactExcerpt(text: string, secrets: readonly string[], max: number = EXCERPT_CHARS): string {
  let out = text.replace(SIGNATURE, '[redacted]');
  const forms = secrets.filter((secret) => secret.length > 0).flatMap(secretForms);
  for (const form of forms) out = out.split(form).join('[redacted]');
  for (const form of forms) {
    for (let length = Math.min(form.length - 1, out.length); length >= MIN_CUT_SECRET; length--) {
      if (out.endsWith(form.slice(0, length))) {
        out = `${out.slice(0, out.length - length)}[redacted]`;
        break;
      }
    }
  }
  return out.length > max ? `${out.slice(0, max)}...` : out;
}

/**
 * Sends `message` once, with `webhook-id` set to its id. Resolves with an {@link AttemptResult} for every
 * outcome; the transport must already be wrapped for signing (see {@link createTransportStack}).
 */
export async function runAttempt(transport: Transport, message: PreparedMessage, options: AttemptOptions): Promise<AttemptResult> {
  const { clock } = options;
  const at = clock.now();
  const headers = { ...message.headers, 'webhook-id': message.id };
  try {
    const response = await transport.send({
      url: message.url,
      headers,
      body: message.body,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
    });
    const durationMs = clock.now() - at;
    if (isSuccessStatus(response.status)) return { ok: true, status: response.status, at, durationMs };
    const { retryable, throttled } = classifyStatus(response.status);
    const excerpt = redactExcerpt(response.bodyExcerpt, [...sensitiveValues(headers), ...urlSecrets(message.url), ...(options.redact ?? [])]);
    const failure: AttemptFailure = {
      ok: false,
      retryable,
      throttled,
      status: response.status,
      error: new HttpStatusError(response.status, excerpt, retryable),
      at,
      durationMs,
    };
    const retryAfterMs = retryable ? parseRetryAfter(response.headers['retry-after'], clock.now()) : undefined;
    if (retryAfterMs !== undefined) failure.retryAfterMs = retryAfterMs;
    return failure;
  } catch (caught) {
    const error = toNetworkError(caught, options.signal);
    const classified = classifyError(error, { retryOnDnsFailure: options.retryOnDnsFailure === true });
    return { ok: false, ...classified, error, at, durationMs: clock.now() - at };
  }
}

/**
 * The transport both the sender and the outbox use: the user's transport, or a new got transport, wrapped
 * for Standard Webhooks signing. `close()` closes the got transport we created; a user's transport is
 * closed too when it has `close()` (it was handed over to us).
 */
export function createTransportStack(options: Pick<NormalizedSenderOptions, 'transport' | 'signingSecret' | 'clock'>): Transport {
  return withSigning(options.transport ?? createGotTransport(), { signingSecret: options.signingSecret, clock: options.clock });
}
