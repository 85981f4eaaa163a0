/**
 * The default transport: got 14 with every automatic behaviour that would fight our retry loop turned off
 * (no retries, no redirects, no throwing on status), one overall timeout, and a dedicated keep-alive agent
 * that `close()` destroys. The response body is read only up to a bound; an excerpt is kept for errors.
 */
import http from 'node:http';
import https from 'node:https';
import got from 'got';
import { NetworkError } from '../errors.js';
import { checkPrivateAddressPolicy } from '../options.js';
import { toNetworkError } from '../retry/classify.js';
import { PRIVATE_ADDRESS_ERRNO } from './private-addresses.js';
import type { AddressGuard } from './private-addresses.js';
import type { Transport, TransportRequest, TransportResponse } from './transport.js';

/** Options of {@link createGotTransport}. */
export interface GotTransportOptions {
  /**
   * Most concurrent sockets per origin.
   * @default 64
   */
  maxSockets?: number;
  /**
   * Characters of the response body kept as `bodyExcerpt`.
   * @default 2048
   */
  excerptChars?: number;
  /**
   * Refuse loopback, private, link-local and other non-public addresses, checked on every address a host
   * name resolves to (see the outbox option of the same name). `{ allow }` keeps addresses or CIDR ranges
   * reachable.
   * @default false
   */
  blockPrivateAddresses?: boolean | { allow: readonly string[] };
}

/** Past this many response bytes we stop reading and drop the connection rather than drain it. */
const MAX_DRAIN_BYTES = 64 * 1024;

function flattenHeaders(headers: http.IncomingHttpHeaders): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/**
 * Creates a got-based {@link Transport}. Failures reject with a `NetworkError` whose `cause` is a plain
 * error (got's own errors carry the request options, headers included, so they are not kept).
 */
export function createGotTransport(options: GotTransportOptions = {}): Transport {
  return gotTransport(options, checkPrivateAddressPolicy(options.blockPrivateAddresses));
}

/** {@link createGotTransport} with the address policy already validated (the sender's and the outbox's). */
export function gotTransport(options: Omit<GotTransportOptions, 'blockPrivateAddresses'>, guard: AddressGuard | undefined): Transport {
  const maxSockets = options.maxSockets ?? 64;
  const excerptChars = options.excerptChars ?? 2048;
  const agent = {
    http: new http.Agent({ keepAlive: true, maxSockets }),
    https: new https.Agent({ keepAlive: true, maxSockets }),
  };
  let closed = false;

  function send(request: TransportRequest): Promise<TransportResponse> {
    if (closed) return Promise.reject(new NetworkError('ERR_ABORTED', 'The transport is closed', undefined));
    // An IP literal is connected to without a lookup, so the guard's lookup never sees it.
    const refused = guard?.urlProblem(request.url);
    if (refused !== undefined) return Promise.reject(new NetworkError('ERR_NETWORK', `The request failed: ${refused}`, PRIVATE_ADDRESS_ERRNO));
    return new Promise<TransportResponse>((resolve, reject) => {
      const stream = got.stream(request.url, {
        method: 'POST',
        body: Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength),
        headers: request.headers,
        retry: { limit: 0 },
        followRedirect: false,
        throwHttpErrors: false,
        timeout: { request: request.timeoutMs },
        agent,
        decompress: true,
        dnsLookup: guard?.lookup,
      });
      // Not got's own `signal` option: got removes its listener only when the stream is destroyed, which a
      // completed request never is, so a signal shared by many requests (the outbox's) would collect them.
      const { signal } = request;
      const onAbort = (): void => {
        stream.destroy(new Error('The request was aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted === true) onAbort();
      let response: { status: number; headers: Record<string, string | undefined> } | undefined;
      const chunks: Buffer[] = [];
      let bytes = 0;
      let settled = false;
      const finish = (): void => {
        if (settled || response === undefined) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        const excerpt = Buffer.concat(chunks).toString('utf8').slice(0, excerptChars);
        resolve({ ...response, bodyExcerpt: excerpt });
      };
      stream.on('response', (res: http.IncomingMessage) => {
        response = { status: res.statusCode ?? 0, headers: flattenHeaders(res.headers) };
      });
      stream.on('data', (chunk: Buffer) => {
        if (bytes < excerptChars * 4) chunks.push(chunk);
        bytes += chunk.byteLength;
        if (bytes > MAX_DRAIN_BYTES) {
          finish();
          stream.destroy();
        }
      });
      stream.on('end', finish);
      stream.on('error', (error: Error) => {
        if (settled) return;
        // Once the status line arrived, the answer counts even if the body broke off.
        if (response !== undefined && request.signal?.aborted !== true) {
          finish();
          return;
        }
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        const mapped = toNetworkError(error, request.signal);
        const code = (error as { code?: unknown }).code;
        const plain = Object.assign(new Error(error.message), { name: error.name, code });
        reject(new NetworkError(mapped.code as 'ERR_NETWORK' | 'ERR_TIMEOUT' | 'ERR_ABORTED', mapped.message, mapped.errno, { cause: plain }));
      });
    });
  }

  return {
    send,
    close(): Promise<void> {
      closed = true;
      agent.http.destroy();
      agent.https.destroy();
      return Promise.resolve();
    },
  };
}
