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
  /** `whsec_` secrets, one signature each (a rotation); without any only `webhook-timestamp` is set. */
  signingSecret?: readonly string[] | undefined;
  /** Source of the timestamp. */
  clock: Clock;
}

/**
 * Wraps `transport` so each request carries `webhook-timestamp` (seconds, this attempt) and, with secrets,
 * `webhook-signature` (`v1,<sig>` per secret, space-separated). The request must already carry `webhook-id`.
 */
export function withSigning(transport: Transport, options: SigningOptions): Transport {
  const keys = (options.signingSecret ?? []).map(signingKey);
  const signed: Transport = {
    send(request: TransportRequest): Promise<TransportResponse> {
      const id = request.headers['webhook-id'];
      if (id === undefined) {
        return Promise.reject(new WebhookOutboxError('ERR_INVALID_MESSAGE', 'A signed request needs a webhook-id header'));
      }
      const timestamp = Math.floor(options.clock.now() / 1000);
      const headers: Record<string, string> = { ...request.headers, 'webhook-timestamp': String(timestamp) };
      if (keys.length > 0) headers['webhook-signature'] = keys.map((key) => signWithKey(key, id, timestamp, request.body)).join(' ');
      return transport.send({ ...request, headers });
    },
  };
  if (transport.close !== undefined) signed.close = () => transport.close?.() ?? Promise.resolve();
  return signed;
}
