/**
 * The direct sender: one message, delivered with in-process retries while the caller awaits. No disk:
 * for fire-and-forget delivery that survives restarts and long outages, use the outbox.
 */
import { setMaxListeners } from 'node:events';
import { holdProcessOpen, sleep } from './clock.js';
import { createTransportStack, runAttempt, type AttemptFailure } from './delivery/attempt.js';
import { NetworkError, OutboxClosedError, RetriesExhaustedError, type WebhookOutboxError } from './errors.js';
import { prepareMessage, type WebhookMessage } from './message.js';
import { normalizeSenderOptions, type SenderOptions } from './options.js';
import { nextDelay } from './retry/backoff.js';
import { RetryBudgets } from './retry/budget.js';

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
  /**
   * Aborts at once, also mid-request or mid-backoff, rejecting with `ERR_ABORTED`. Each `send()` holds one
   * listener on it until it settles: a signal shared by more than 10 sends at once needs
   * `events.setMaxListeners()`, or Node warns.
   */
  signal?: AbortSignal;
}

/** Sends webhooks with in-process retries. Create with {@link createSender}. */
export interface Sender {
  /**
   * Delivers `message`, retrying retryable failures with full-jitter backoff. Resolves on a 2xx; rejects with
   * a `WebhookOutboxError`: `ERR_INVALID_*`/`ERR_BODY_TOO_LARGE` before any request, `ERR_HTTP_STATUS` at
   * once for a permanent status, `ERR_NETWORK` at once for `ENOTFOUND` (unless `retryOnDnsFailure`),
   * `ERR_RETRIES_EXHAUSTED` (cause: the last failure) when attempts, `retry.maxAgeMs` or the sender's
   * `retryBudget` run out, `ERR_ABORTED` when `signal` aborts, `ERR_OUTBOX_CLOSED` after `close()`.
   */
  send(message: WebhookMessage, options?: SendOptions): Promise<SendResult>;
  /**
   * Stops every `send()` still running (mid-request or mid-backoff; each rejects with `ERR_OUTBOX_CLOSED`),
   * then closes the transport (and its sockets). Later `send()` calls reject. Idempotent.
   */
  close(): Promise<void>;
}

function aborted(signal: AbortSignal | undefined): NetworkError {
  return new NetworkError('ERR_ABORTED', 'send() was aborted', undefined, { cause: signal?.reason });
}

/**
 * Creates a sender. Options are validated here (throws `InvalidOptionError`); see `SenderOptions`.
 */
export function createSender(options?: SenderOptions): Sender {
  const o = normalizeSenderOptions(options);
  const transport = createTransportStack(o);
  const { clock, retry } = o;
  const budgets = o.retryBudget === undefined ? undefined : new RetryBudgets(o.retryBudget, clock);
  let closing: Promise<void> | undefined;
  // close() aborts every send() still running: mid-request or mid-backoff, each rejects with ERR_OUTBOX_CLOSED.
  const closer = new AbortController();
  setMaxListeners(0, closer.signal);

  async function send(message: WebhookMessage, sendOptions: SendOptions = {}): Promise<SendResult> {
    if (closing !== undefined) throw new OutboxClosedError('The sender is closed');
    const caller = sendOptions.signal;
    const prepared = prepareMessage(message, o);
    // One signal for this call that aborts when the caller's does or when the sender closes.
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    if (caller?.aborted === true) abort();
    caller?.addEventListener('abort', abort, { once: true });
    closer.signal.addEventListener('abort', abort, { once: true });
    const { signal } = controller;
    const stopped = (): WebhookOutboxError | undefined =>
      closer.signal.aborted ? new OutboxClosedError('The sender was closed during send()') : caller?.aborted === true ? aborted(caller) : undefined;
    try {
      const start = clock.now();
      const budget = budgets?.of(prepared.url);
      budget?.first();
      for (let attempt = 1; ; attempt++) {
        const before = stopped();
        if (before !== undefined) throw before;
        const remaining = retry.maxAgeMs - (clock.now() - start);
        const result = await runAttempt(transport, prepared, {
          timeoutMs: Math.max(1, Math.min(o.timeoutMs, remaining)),
          signal,
          clock,
          retryOnDnsFailure: o.retryOnDnsFailure,
        });
        if (result.ok) return { id: prepared.id, status: result.status, attempts: attempt, durationMs: clock.now() - start };
        const after = stopped();
        if (after !== undefined) throw after;
        if (!result.retryable) throw result.error;
        giveUpUnless(attempt < retry.maxAttempts, attempt, `retry.maxAttempts (${retry.maxAttempts}) reached`, result);
        const delay = nextDelay(attempt - 1, retry, o.random, result.retryAfterMs);
        const elapsed = clock.now() - start;
        giveUpUnless(elapsed + delay < retry.maxAgeMs, attempt, `retry.maxAgeMs (${retry.maxAgeMs} ms) would pass before the next attempt`, result);
        const takenAt = clock.now();
        giveUpUnless(budget?.retry() ?? true, attempt, 'the retry budget is spent (retries of the last 10 s are at retryBudget)', result);
        const release = holdProcessOpen();
        try {
          await sleep(delay, clock, signal);
        } catch {
          // Not made: another send may have it.
          budget?.refund(takenAt);
          throw stopped() ?? aborted(caller);
        } finally {
          release();
        }
      }
    } finally {
      caller?.removeEventListener('abort', abort);
      closer.signal.removeEventListener('abort', abort);
    }
  }

  return {
    send,
    close(): Promise<void> {
      if (closing === undefined) {
        closer.abort();
        closing = transport.close?.() ?? Promise.resolve();
      }
      return closing;
    },
  };
}

function giveUpUnless(condition: boolean, attempts: number, reason: string, last: AttemptFailure): void {
  if (condition) return;
  const error: WebhookOutboxError = last.error;
  throw new RetriesExhaustedError(attempts, `${reason}; last error: ${error.message}`, error);
}
