/**
 * Signing as a transport wrapper: every attempt gets a fresh `webhook-timestamp` and, with a secret, a
 * `webhook-signature` over the exact body bytes. Keeping this out of the HTTP client means a user's own
 * transport is signed the same way.
 */
import type { Clock } from '../clock.js';
import { WebhookOutboxError } from '../errors.js';
import type { Transport, TransportRequest, TransportResponse } from '../transport/transport.js';
import { signWithKey, signingKey } from './sign.js';

/** Options of {@link withSigning}. */
export interface SigningOptions {
  /** `whsec_` secret; without it only `webhook-timestamp` is set. */
  signingSecret?: string | undefined;
  /** Source of the timestamp. */
  clock: Clock;
}

/**
 * Wraps `transport` so each request carries `webhook-timestamp` (seconds, this attempt) and, with a secret,
 * `webhook-signature`. The request must already carry `webhook-id`.
 */
export function withSigning(transport: Transport, options: SigningOptions): Transport {
  const key = options.signingSecret === undefined ? undefined : signingKey(options.signingSecret);
  const signed: Transport = {
    send(request: TransportRequest): Promise<TransportResponse> {
      const id = request.headers['webhook-id'];
      if (id === undefined) {
        return Promise.reject(new WebhookOutboxError('ERR_INVALID_MESSAGE', 'A signed request needs a webhook-id header'));
      }
      const timestamp = Math.floor(options.clock.now() / 1000);
      const headers: Record<string, string> = { ...request.headers, 'webhook-timestamp': String(timestamp) };
      if (key !== undefined) headers['webhook-signature'] = signWithKey(key, id, timestamp, request.body);
      return transport.send({ ...request, headers });
    },
  };
  if (transport.close !== undefined) signed.close = () => transport.close?.() ?? Promise.resolve();
  return signed;
}
