/**
 * Every error this package throws or rejects with is a `WebhookOutboxError` with a stable `code`.
 * Messages never contain signing secrets or the values of credential-like headers.
 */

/** The stable error codes. Match on `error.code`, never on the message. */
export type ErrorCode =
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_MESSAGE'
  | 'ERR_INVALID_URL'
  | 'ERR_BODY_TOO_LARGE'
  | 'ERR_OUTBOX_FULL'
  | 'ERR_OUTBOX_CLOSED'
  | 'ERR_OUTBOX_LOCKED'
  | 'ERR_HTTP_STATUS'
  | 'ERR_NETWORK'
  | 'ERR_TIMEOUT'
  | 'ERR_ABORTED'
  | 'ERR_SIGNING'
  | 'ERR_RETRIES_EXHAUSTED'
  | 'ERR_DRAIN_TIMEOUT'
  | 'ERR_STORE_IO';

/** Base class of every error of this package. */
export class WebhookOutboxError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option passed to `createSender()`, `Outbox.open()` or a store is missing, unknown or out of range. */
export class InvalidOptionError extends WebhookOutboxError {
  /** Dotted path of the offending option, e.g. `retry.baseDelayMs`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_OPTION', `Invalid option \`${option}\`: ${message}`, options);
    this.option = option;
  }
}

/** A message was rejected before anything was sent or written: bad body, headers, id, URL or size. */
export class InvalidMessageError extends WebhookOutboxError {
  /** The offending field of the message (`body`, `headers.x-foo`, `id`, `url`). */
  readonly field: string;

  constructor(
    field: string,
    message: string,
    code: 'ERR_INVALID_MESSAGE' | 'ERR_INVALID_URL' | 'ERR_BODY_TOO_LARGE' = 'ERR_INVALID_MESSAGE',
    options?: { cause?: unknown },
  ) {
    super(code, `Invalid message \`${field}\`: ${message}`, options);
    this.field = field;
  }
}

/** The receiver answered with a status that is not 2xx. */
export class HttpStatusError extends WebhookOutboxError {
  /** The HTTP status code the receiver answered with. */
  readonly status: number;
  /** The first bytes of the response body (bounded, for diagnostics). */
  readonly bodyExcerpt: string;
  /** Whether this status is worth retrying (500/502/503/504/408/425/429). */
  readonly retryable: boolean;

  constructor(status: number, bodyExcerpt: string, retryable: boolean) {
    super('ERR_HTTP_STATUS', `Receiver answered HTTP ${status}${retryable ? ' (retryable)' : ''}`);
    this.status = status;
    this.bodyExcerpt = bodyExcerpt;
    this.retryable = retryable;
  }
}

/** The request failed below HTTP (connection refused or reset, DNS, timeout) or was aborted. */
export class NetworkError extends WebhookOutboxError {
  /** The system error code (`ECONNREFUSED`, `ETIMEDOUT`, ...), when there is one. */
  readonly errno: string | undefined;

  constructor(
    code: 'ERR_NETWORK' | 'ERR_TIMEOUT' | 'ERR_ABORTED',
    message: string,
    errno: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.errno = errno;
  }
}

/**
 * The `proxy` could not be reached, or it answered the CONNECT for an endpoint with a status other than
 * 200 (`proxyStatus`): nothing reached the receiver. An unreachable proxy is retried like any network
 * error, and so is 407 (proxy authentication failed: a fault of this sender, the same for every event);
 * other statuses follow the rules of a receiver's: 403 (a destination the proxy denies) is permanent,
 * 502/503/504 (the proxy could not reach the endpoint) are retried.
 * The message names the proxy by its origin, never with its credentials.
 */
export class ProxyError extends NetworkError {
  /** The proxy's answer to CONNECT; `undefined` when the proxy could not be reached. */
  readonly proxyStatus: number | undefined;

  constructor(message: string, errno: string, proxyStatus: number | undefined, options?: { cause?: unknown }) {
    super('ERR_NETWORK', message, errno, options);
    this.proxyStatus = proxyStatus;
  }
}

/**
 * The `signingSecret` function threw, or returned what is not a secret, for a request's URL: the attempt
 * failed without a request and is retried (the secret store may be down). `cause` says why.
 */
export class SigningError extends WebhookOutboxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SIGNING', message, options);
  }
}

/** `send()` gave up: attempts or elapsed time ran out. `cause` is the last attempt's error. */
export class RetriesExhaustedError extends WebhookOutboxError {
  /** How many attempts were made. */
  readonly attempts: number;

  constructor(attempts: number, reason: string, cause: unknown) {
    super('ERR_RETRIES_EXHAUSTED', `Gave up after ${attempts} attempt(s): ${reason}`, { cause });
    this.attempts = attempts;
  }
}

/** A store read, write or fsync failed. `cause` is the underlying system error. */
export class StoreIoError extends WebhookOutboxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORE_IO', message, options);
  }
}

/** The outbox has reached `maxBytes` and the full policy is `'reject'`. Nothing was written. */
export class OutboxFullError extends WebhookOutboxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OUTBOX_FULL', message, options);
  }
}

/** The outbox (or store) was closed; no more work is accepted. */
export class OutboxClosedError extends WebhookOutboxError {
  constructor(message = 'The outbox is closed') {
    super('ERR_OUTBOX_CLOSED', message);
  }
}

/** Another process (or another open instance) owns the outbox directory. */
export class OutboxLockedError extends WebhookOutboxError {
  /** The pid recorded in the lock file, when readable. */
  readonly pid: number | undefined;
  /** The owner's host, when it is not this one (another container or machine sharing the directory). */
  readonly host: string | undefined;

  constructor(dir: string, pid: number | undefined, host?: string) {
    const owner = pid === undefined ? 'another owner' : `pid ${pid}${host === undefined ? '' : ` on host ${host}`}`;
    super('ERR_OUTBOX_LOCKED', `Outbox directory ${dir} is locked by ${owner}`);
    this.pid = pid;
    this.host = host;
  }
}

/** `drain()` did not finish within its timeout (`close()` abandons what is left instead). */
export class DrainTimeoutError extends WebhookOutboxError {
  /** Events still pending or in flight when the timeout struck. */
  readonly remaining: number;

  constructor(timeoutMs: number, remaining: number) {
    super('ERR_DRAIN_TIMEOUT', `Not drained within ${timeoutMs} ms: ${remaining} event(s) remain`);
    this.remaining = remaining;
  }
}
