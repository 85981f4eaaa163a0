/**
 * What is worth retrying, in one place. A failed attempt is either retryable (the same request may succeed
 * later) or permanent; retryable failures that signal overload ("throttled") also tell the flusher to slow
 * down (AIMD) rather than only wait.
 */
import { NetworkError, ProxyError } from '../errors.js';
import { PRIVATE_ADDRESS_ERRNO } from '../transport/private-addresses.js';

/** Statuses retried by default: 408, 425, 429, 500, 502, 503, 504. Every other non-2xx is permanent. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * Statuses that mean "too much load, slow down": 429 and 503, and 502 and 504, which the Standard Webhooks
 * spec reads the same way (a gateway whose server is overloaded).
 */
export const THROTTLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/** How a failed attempt should be treated. */
export interface FailureClass {
  /** The same request may succeed later. */
  retryable: boolean;
  /** The receiver or the path to it is overloaded: back off harder (fewer concurrent requests). */
  throttled: boolean;
}

/** Options of {@link classifyError}. */
export interface ClassifyOptions {
  /** Retry `ENOTFOUND` (the host name does not resolve). Off by default: usually a typo, not an outage. */
  retryOnDnsFailure?: boolean;
}

/** True for 2xx. */
export function isSuccessStatus(status: number): boolean {
  return status >= 200 && status <= 299;
}

/** Classifies a non-2xx HTTP status. 3xx is a failure (redirects are not followed) and is not retried. */
export function classifyStatus(status: number): FailureClass {
  return { retryable: RETRYABLE_STATUSES.has(status), throttled: THROTTLE_STATUSES.has(status) };
}

/**
 * Classifies a request that got no response: retried, whatever the cause (refused, reset, unreachable, a
 * TLS certificate that expired, a broken proxy...), since an outage should cost a delay and not dead
 * letters; the circuit breaker keeps a failing endpoint down to one probe at a time. Timeouts count as
 * throttling. Not retried: an abort, `ENOTFOUND` unless `retryOnDnsFailure` (usually a typo), and an address
 * `blockPrivateAddresses` refused (`EPRIVATEADDRESS`). A `ProxyError`: an unreachable proxy is retried (even
 * `ENOTFOUND`: its name is one for every event, not a customer's typo), so is 407 (its credentials), and
 * its other answers to CONNECT are judged as a receiver's status would be (403 permanent, 502/503/504
 * retried and throttling).
 */
export function classifyError(error: NetworkError, options: ClassifyOptions = {}): FailureClass {
  if (error.code === 'ERR_ABORTED') return { retryable: false, throttled: false };
  if (error.code === 'ERR_TIMEOUT') return { retryable: true, throttled: true };
  // 407 is the proxy refusing this sender's credentials, for every event alike: a fault to fix, not a reason
  // to give up on the backlog.
  if (error instanceof ProxyError) {
    return error.proxyStatus === undefined || error.proxyStatus === 407 ? { retryable: true, throttled: false } : classifyStatus(error.proxyStatus);
  }
  if (error.errno === 'ENOTFOUND') return { retryable: options.retryOnDnsFailure === true, throttled: false };
  if (error.errno === PRIVATE_ADDRESS_ERRNO) return { retryable: false, throttled: false };
  return { retryable: true, throttled: false };
}

function errnoOf(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code) && !code.startsWith('ERR_')) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function isTimeout(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    if ((e as { name?: unknown }).name === 'TimeoutError') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Turns whatever a transport rejected with (a got `RequestError`, a fetch `TypeError` with a `cause`, an
 * `AbortError`) into a {@link NetworkError}: `ERR_ABORTED` when `signal` aborted, `ERR_TIMEOUT` for timeouts,
 * else `ERR_NETWORK` with the system error code. The original error is kept as `cause`.
 */
export function toNetworkError(error: unknown, signal?: AbortSignal): NetworkError {
  if (error instanceof NetworkError) return error;
  if (signal?.aborted === true) return new NetworkError('ERR_ABORTED', 'The request was aborted', undefined, { cause: error });
  const errno = errnoOf(error);
  if (isTimeout(error)) return new NetworkError('ERR_TIMEOUT', 'The request timed out', errno, { cause: error });
  const detail = error instanceof Error ? error.message : String(error);
  // The guard's refusal names the host it refused: worth more than its code.
  const reason = errno === undefined || errno === PRIVATE_ADDRESS_ERRNO ? detail : errno;
  return new NetworkError('ERR_NETWORK', `The request failed: ${reason}`, errno, { cause: error });
}
