/**
 * Signing as a transport wrapper: every attempt gets a fresh `webhook-timestamp` and, with secrets, a
 * `webhook-signature` over the exact body bytes. Keeping this out of the HTTP client means a user's own
 * transport is signed the same way. The layer that knows the secrets also blanks them out of what the
 * receiver answers.
 */
import type { Clock } from '../clock.js';
import { SigningError, WebhookOutboxError } from '../errors.js';
import { checkSigningSecrets } from '../options.js';
import type { SigningSecretResolver } from '../options.js';
import { redactExcerpt, secretRedactions } from '../redact.js';
import type { Transport, TransportRequest, TransportResponse } from '../transport/transport.js';
import { signWithKey, signingKey } from './sign.js';
import type { SigningKey } from './sign.js';

/** Options of {@link withSigning}. */
export interface SigningOptions {
  /**
   * `whsec_` secrets and `whsk_` secret keys, one signature each (a rotation), or a function picking them
   * for each request's URL; without any only `webhook-timestamp` is set.
   */
  signingSecret?: readonly string[] | SigningSecretResolver | undefined;
  /** Source of the timestamp. */
  clock: Clock;
}

interface Keys {
  keys: readonly SigningKey[];
  /** What to blank out of an answer's excerpt. */
  redact: readonly string[];
}

function keysOf(secrets: readonly string[]): Keys {
  return { keys: secrets.map(signingKey), redact: secretRedactions(secrets) };
}

const UNSIGNED = keysOf([]);

/**
 * Asks the resolver for the request's secrets (checked like the option; never quoted in an error), within
 * the attempt's deadline and abort signal: a secret store that hangs must not hold the attempt forever.
 */
async function resolveKeys(resolve: SigningSecretResolver, request: TransportRequest): Promise<Keys> {
  let value: unknown;
  let cancel: (() => void) | undefined;
  try {
    value = await new Promise<unknown>((settle, fail) => {
      const timer = setTimeout(() => fail(new SigningError(`The signingSecret function did not answer within ${request.timeoutMs} ms`)), request.timeoutMs);
      const abort = (): void => fail(request.signal?.reason ?? new Error('aborted'));
      request.signal?.addEventListener('abort', abort, { once: true });
      cancel = () => {
        clearTimeout(timer);
        request.signal?.removeEventListener('abort', abort);
      };
      if (request.signal?.aborted === true) abort();
      // Through a promise of its own, so that a function that throws at once is caught like one that rejects.
      else new Promise<unknown>((answer) => answer(resolve(request.url))).then(settle, (error: unknown) => fail(new SigningError('The signingSecret function failed for this URL (see cause)', { cause: error })));
    });
  } finally {
    cancel?.();
  }
  let secrets: readonly string[] | undefined;
  try {
    secrets = checkSigningSecrets(value);
  } catch (error) {
    throw new SigningError(`The signingSecret function returned no valid secret for this URL: ${(error as Error).message}`, { cause: error });
  }
  return secrets === undefined ? UNSIGNED : keysOf(secrets);
}

/**
 * Wraps `transport` so each request carries `webhook-timestamp` (seconds, this attempt) and, with secrets,
 * `webhook-signature` (`v1,<sig>` per `whsec_` secret, `v1a,<sig>` per `whsk_` key, space-separated).
 * Fixed secrets are decoded here, once. The request must already carry
 * `webhook-id`. A resolver is asked at every attempt, within its `timeoutMs` and `signal`; when it throws,
 * returns something that is not a secret or does not answer in time, the request is not sent and the
 * attempt fails with `ERR_SIGNING` (retried like a network error).
 */
export function withSigning(transport: Transport, options: SigningOptions): Transport {
  const { signingSecret } = options;
  const fixed = typeof signingSecret === 'function' ? undefined : keysOf(signingSecret ?? []);
  const sign = (request: TransportRequest, id: string, { keys, redact }: Keys): Promise<TransportResponse> => {
    const timestamp = Math.floor(options.clock.now() / 1000);
    const headers: Record<string, string> = { ...request.headers, 'webhook-timestamp': String(timestamp) };
    if (keys.length > 0) headers['webhook-signature'] = keys.map((key) => signWithKey(key, id, timestamp, request.body)).join(' ');
    const sent = transport.send({ ...request, headers });
    if (redact.length === 0) return sent;
    // Infinity: the excerpt is cut later, after the credentials in headers and URL are blanked too.
    return sent.then((response) => ({ ...response, bodyExcerpt: redactExcerpt(response.bodyExcerpt, redact, Number.POSITIVE_INFINITY) }));
  };
  const signed: Transport = {
    send(request: TransportRequest): Promise<TransportResponse> {
      const id = request.headers['webhook-id'];
      if (id === undefined) {
        return Promise.reject(new WebhookOutboxError('ERR_INVALID_MESSAGE', 'A signed request needs a webhook-id header'));
      }
      if (fixed !== undefined) return sign(request, id, fixed);
      const started = Date.now();
      return resolveKeys(signingSecret as SigningSecretResolver, request).then((keys) =>
        // The attempt's deadline covers the lookup too.
        sign({ ...request, timeoutMs: Math.max(1, request.timeoutMs - (Date.now() - started)) }, id, keys),
      );
    },
  };
  if (transport.close !== undefined) signed.close = () => transport.close?.() ?? Promise.resolve();
  return signed;
}
