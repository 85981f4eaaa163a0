/**
 * One delivery attempt, shared by the sender and the outbox flusher: send the prepared request through the
 * (signed) transport and turn whatever happened into one normalised result, classified for retrying.
 */
import type { Clock } from '../clock.js';
import { HttpStatusError, SigningError, type NetworkError } from '../errors.js';
import type { PreparedMessage } from '../message.js';
import type { NormalizedSenderOptions } from '../options.js';
import { classifyError, classifyStatus, isSuccessStatus, toNetworkError } from '../retry/classify.js';
import { redactExcerpt, sensitiveValues, urlSecrets } from '../redact.js';
import { parseRetryAfter } from '../retry/retry-after.js';
import { withSigning } from '../signing/signing-transport.js';
import { gotTransport } from '../transport/got-transport.js';
import type { Transport } from '../transport/transport.js';


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
  /** 429, 502, 503, 504 or a timeout: the receiver is overloaded; slow down. */
  throttled: boolean;
  /** The status, when the receiver answered. */
  status?: number;
  /** The receiver's `Retry-After`, in ms, when it sent one on a retryable answer. */
  retryAfterMs?: number;
  /**
   * `HttpStatusError` (status + redacted excerpt), `NetworkError` (`ERR_NETWORK`, `ERR_TIMEOUT`,
   * `ERR_ABORTED`) or `SigningError` (`ERR_SIGNING`: no secret for the URL, nothing sent).
   */
  error: HttpStatusError | NetworkError | SigningError;
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
    // The signing layer has blanked its secrets already; what is left are the credentials in headers and URL.
    const excerpt = redactExcerpt(response.bodyExcerpt, [...sensitiveValues(headers), ...urlSecrets(message.url)]);
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
    // Nothing was sent; the secret store may be back by the next attempt.
    if (caught instanceof SigningError) return { ok: false, retryable: true, throttled: false, error: caught, at, durationMs: clock.now() - at };
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
export function createTransportStack(
  options: Pick<NormalizedSenderOptions, 'transport' | 'signingSecret' | 'clock' | 'addressGuard' | 'proxy' | 'timeoutMs'>,
): Transport {
  const transport = options.transport ?? gotTransport({ proxy: options.proxy, proxyTimeoutMs: options.timeoutMs }, options.addressGuard);
  return withSigning(transport, { signingSecret: options.signingSecret, clock: options.clock });
}
