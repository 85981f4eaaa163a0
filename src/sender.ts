/**
 * The direct sender: one message, delivered with in-process retries while the caller awaits. No disk:
 * for fire-and-forget delivery that survives restarts and long outages, use the outbox.
 */
import { sleep } from './clock.js';
import { createTransportStack, runAttempt, type AttemptFailure } from './delivery/attempt.js';
import { NetworkError, OutboxClosedError, RetriesExhaustedError, type WebhookOutboxError } from './errors.js';
import { prepareMessage, type WebhookMessage } from './message.js';
import { normalizeSenderOptions, type SenderOptions } from './options.js';
import { nextDelay } from './retry/backoff.js';

/** What a successful `send()` resolves with. */
export interface SendResult {
  /** The event id sent as `webhook-id` (given or generated). */
  id: string;
  /** The receiver's 2xx status. */
  status: number;
  /** Attempts made, the successful one included. */
  attempts: number;
  /** From the first attempt's start to the success, in ms. */
  durationMs: number;
}

/** Per-call options of `send()`. */
export interface SendOptions {
  /** Aborts at once, also mid-request or mid-backoff, rejecting with `ERR_ABORTED`. */
  signal?: AbortSignal;
}

/** Sends webhooks with in-process retries. Create with {@link createSender}. */
export interface Sender {
  /**
   * Delivers `message`, retrying retryable failures with full-jitter backoff. Resolves on a 2xx; rejects with
   * a `WebhookOutboxError`: `ERR_INVALID_*`/`ERR_BODY_TOO_LARGE` before any request, `ERR_HTTP_STATUS` at
   * once for a permanent status, `ERR_RETRIES_EXHAUSTED` (cause: the last failure) when attempts or
   * `retry.maxAgeMs` run out, `ERR_ABORTED` when `signal` aborts, `ERR_OUTBOX_CLOSED` after `close()`.
   */
  send(message: WebhookMessage, options?: SendOptions): Promise<SendResult>;
  /** Closes the transport (and its sockets). Later `send()` calls reject. Idempotent. */
  close(): Promise<void>;
}

function aborted(signal: AbortSignal | undefined): NetworkError {
  return new NetworkError('ERR_ABORTED', 'send() was aborted', undefined, { cause: signal?.reason });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw aborted(signal);
}

/**
 * Creates a sender. Options are validated here (throws `InvalidOptionError`); see `SenderOptions`.
 */
export function createSender(options?: SenderOptions): Sender {
  const o = normalizeSenderOptions(options);
  const transport = createTransportStack(o);
  const { clock, retry } = o;
  const redact = o.signingSecret === undefined ? [] : [o.signingSecret];
  let closing: Promise<void> | undefined;

  async function send(message: WebhookMessage, sendOptions: SendOptions = {}): Promise<SendResult> {
    if (closing !== undefined) throw new OutboxClosedError('The sender is closed');
    const { signal } = sendOptions;
    const prepared = prepareMessage(message, o);
    const start = clock.now();
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      const remaining = retry.maxAgeMs - (clock.now() - start);
      const result = await runAttempt(transport, prepared, {
        timeoutMs: Math.max(1, Math.min(o.timeoutMs, remaining)),
        signal,
        clock,
        retryOnDnsFailure: o.retryOnDnsFailure,
        redact,
      });
      if (result.ok) return { id: prepared.id, status: result.status, attempts: attempt, durationMs: clock.now() - start };
      throwIfAborted(signal);
      if (!result.retryable) throw result.error;
      giveUpUnless(attempt < retry.maxAttempts, attempt, `retry.maxAttempts (${retry.maxAttempts}) reached`, result);
      const delay = nextDelay(attempt - 1, retry, o.random, result.retryAfterMs);
      const elapsed = clock.now() - start;
      giveUpUnless(elapsed + delay < retry.maxAgeMs, attempt, `retry.maxAgeMs (${retry.maxAgeMs} ms) would pass before the next attempt`, result);
      try {
        await sleep(delay, clock, signal);
      } catch {
        throw aborted(signal);
      }
    }
  }

  return {
    send,
    close(): Promise<void> {
      closing ??= transport.close?.() ?? Promise.resolve();
      return closing;
    },
  };
}

function giveUpUnless(condition: boolean, attempts: number, reason: string, last: AttemptFailure): void {
  if (condition) return;
  const error: WebhookOutboxError = last.error;
  throw new RetriesExhaustedError(attempts, `${reason}; last error: ${error.message}`, error);
}
