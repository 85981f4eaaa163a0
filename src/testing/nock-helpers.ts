/**
 * nock helpers for users who mock HTTP instead of running a receiver. They take the `nock` function as an
 * argument and only describe the few methods they call, so this module neither imports nock nor makes
 * anyone install it.
 */
import { InvalidOptionError } from '../errors.js';

/** The part of a nock interceptor these helpers use (nock's `Interceptor` satisfies it). */
export interface NockInterceptorLike<S> {
  times(count: number): NockInterceptorLike<S>;
  reply(status: number, body?: string, headers?: Record<string, string>): S;
  replyWithError(error: object): S;
}

/** The part of a nock scope these helpers use (nock's `Scope` satisfies it). */
export interface NockScopeLike<S> {
  intercept(uri: string | RegExp, method: string): NockInterceptorLike<S>;
}

/** The `nock` function itself: `import nock from 'nock'`. */
export type NockLike<S extends NockScopeLike<S>> = (basePath: string) => S;

/** One scripted answer of {@link replySequence}. */
export type NockStep =
  | number
  | { status: number; headers?: Record<string, string>; body?: string; times?: number }
  | { error: string; times?: number };

/** Options of {@link failThenSucceed}. */
export interface FailThenSucceedOptions {
  /** How many requests fail before one succeeds. */
  failures: number;
  /**
   * The status of each failure.
   * @default 500
   */
  status?: number;
  /**
   * `Retry-After` sent with each failure (seconds or an HTTP date); none when undefined.
   * @default undefined
   */
  retryAfter?: number | string;
  /**
   * Fail with this network error code (for example `'ECONNRESET'`) instead of a status.
   * @default undefined
   */
  error?: string;
  /**
   * The status of the success.
   * @default 200
   */
  then?: number;
  /**
   * The HTTP method intercepted.
   * @default 'POST'
   */
  method?: string;
}

function checkCount(option: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(option, `expected an integer >= ${min}, got ${String(value)}`);
  }
}

function networkError(code: string): Error {
  return Object.assign(new Error(`${code} (simulated by nock)`), { code });
}

/**
 * Intercepts `method path` on `baseUrl` with these answers in order, each `times` times (default once).
 * Returns the nock scope: `scope.isDone()` is true once every answer was used; one request more gets nock's
 * "No match" error.
 *
 * @example
 * replySequence(nock, 'https://hooks.example', '/in', [500, { status: 503, headers: { 'retry-after': '1' } }, { error: 'ECONNRESET' }, 200]);
 */
export function replySequence<S extends NockScopeLike<S>>(
  nock: NockLike<S>,
  baseUrl: string,
  path: string | RegExp,
  steps: readonly NockStep[],
  method = 'POST',
): S {
  if (steps.length === 0) throw new InvalidOptionError('steps', 'expected at least one answer');
  const scope = nock(baseUrl);
  for (const [index, step] of steps.entries()) {
    const times = typeof step === 'number' ? 1 : (step.times ?? 1);
    checkCount(`steps[${index}].times`, times, 1);
    const interceptor = scope.intercept(path, method).times(times);
    if (typeof step === 'number') {
      interceptor.reply(step);
    } else if ('error' in step) {
      interceptor.replyWithError(networkError(step.error));
    } else {
      interceptor.reply(step.status, step.body ?? '', step.headers ?? {});
    }
  }
  return scope;
}

/**
 * Intercepts `method path` on `baseUrl`: `failures` answers of `status` (with `Retry-After` if given) or
 * network errors, then one success. Returns the nock scope.
 *
 * @example
 * const scope = failThenSucceed(nock, 'https://hooks.example', '/in', { failures: 3, status: 503, retryAfter: 1 });
 * await sendMyWebhook();
 * expect(scope.isDone()).toBe(true);
 */
export function failThenSucceed<S extends NockScopeLike<S>>(
  nock: NockLike<S>,
  baseUrl: string,
  path: string | RegExp,
  options: FailThenSucceedOptions,
): S {
  checkCount('failures', options.failures, 0);
  const success: NockStep = options.then ?? 200;
  if (options.failures === 0) return replySequence(nock, baseUrl, path, [success], options.method);
  const failure: NockStep =
    options.error !== undefined
      ? { error: options.error, times: options.failures }
      : {
          status: options.status ?? 500,
          headers: options.retryAfter === undefined ? {} : { 'retry-after': String(options.retryAfter) },
          times: options.failures,
        };
  return replySequence(nock, baseUrl, path, [failure, success], options.method);
}
