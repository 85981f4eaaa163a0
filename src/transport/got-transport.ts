/**
 * The default transport: got 14 with every automatic behaviour that would fight our retry loop turned off
 * (no retries, no redirects, no throwing on status), one overall timeout, and a dedicated keep-alive agent
 * that `close()` destroys. The response body is read only up to a bound; an excerpt is kept for errors.
 */
import http from 'node:http';
import https from 'node:https';
import got from 'got';
import { InvalidOptionError, NetworkError } from '../errors.js';
import { checkInteger, checkPrivateAddressPolicy, checkProxyUrl, PROXY_ADDRESS_POLICY_PROBLEM } from '../options.js';
import { toNetworkError } from '../retry/classify.js';
import { PRIVATE_ADDRESS_ERRNO } from './private-addresses.js';
import type { AddressGuard } from './private-addresses.js';
import { createProxyAgents, proxyFailure, proxyOrigin } from './proxy.js';
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
  /**
   * An `http:` or `https:` proxy URL every request goes through (see the outbox option of the same name);
   * not with `blockPrivateAddresses`.
   * @default undefined (direct connections)
   */
  proxy?: string;
}

/** Internal settings of {@link gotTransport}. */
export interface GotTransportSettings extends Omit<GotTransportOptions, 'blockPrivateAddresses'> {
  /** With a proxy: how long a CONNECT may wait for the proxy's answer (the sender's `timeoutMs`). */
  proxyTimeoutMs?: number;
}

/** The default `timeoutMs` of the sender, used to bound a CONNECT when the transport is made on its own. */
const DEFAULT_PROXY_TIMEOUT_MS = 15_000;

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
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
  for (const key of Object.keys(options)) if (!TRANSPORT_OPTION_KEYS.has(key)) throw new InvalidOptionError(key, 'is not a createGotTransport option');
  const maxSockets = checkInteger(options.maxSockets, 'maxSockets', 64, { min: 1 });
  const excerptChars = checkInteger(options.excerptChars, 'excerptChars', 2048, { min: 0 });
  const guard = checkPrivateAddressPolicy(options.blockPrivateAddresses);
  const proxy = checkProxyUrl(options.proxy);
  if (proxy !== undefined && guard !== undefined) throw new InvalidOptionError('blockPrivateAddresses', PROXY_ADDRESS_POLICY_PROBLEM);
  return gotTransport({ maxSockets, excerptChars, proxy }, guard);
}

const TRANSPORT_OPTION_KEYS = new Set(['maxSockets', 'excerptChars', 'blockPrivateAddresses', 'proxy']);

/**
 * {@link createGotTransport} with the address policy and the proxy already validated (the sender's and the
 * outbox's); the two never come together.
 */
export function gotTransport(options: GotTransportSettings, guard: AddressGuard | undefined): Transport {
  const maxSockets = options.maxSockets ?? 64;
  const excerptChars = options.excerptChars ?? 2048;
  const { proxy } = options;
  const origin = proxy === undefined ? undefined : proxyOrigin(proxy);
  const agents: { http: http.Agent; https: https.Agent; destroy(): void } =
    proxy === undefined
      ? direct(maxSockets)
      : createProxyAgents(proxy, maxSockets, options.proxyTimeoutMs ?? DEFAULT_PROXY_TIMEOUT_MS);
  const agent = { http: agents.http, https: agents.https };
  // An agent counts the sockets it has, not those being opened; hpagent opens each tunnel asynchronously, so
  // through a proxy a burst would open a tunnel per request: at most `maxSockets` requests per origin then.
  const slots = proxy === undefined ? undefined : new OriginSlots(maxSockets);
  let closed = false;

  function send(request: TransportRequest): Promise<TransportResponse> {
    if (closed) return Promise.reject(new NetworkError('ERR_ABORTED', 'The transport is closed', undefined));
    // An IP literal is connected to without a lookup, so the guard's lookup never sees it.
    const refused = guard?.urlProblem(request.url);
    if (refused !== undefined) return Promise.reject(new NetworkError('ERR_NETWORK', `The request failed: ${refused}`, PRIVATE_ADDRESS_ERRNO));
    return slots === undefined ? sendNow(request) : slots.run(new URL(request.url).origin, request, (timeoutMs) => sendNow({ ...request, timeoutMs }));
  }

  function sendNow(request: TransportRequest): Promise<TransportResponse> {
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
      // Through a proxy, got's timeout cannot end a request still waiting for its tunnel (see
      // createProxyAgents): this one can.
      let timedOut = false;
      const deadline =
        origin === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              stream.destroy(new Error(`No answer through the proxy within ${request.timeoutMs} ms`));
            }, request.timeoutMs);
      deadline?.unref();
      const done = (): void => {
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(deadline);
      };
      let response: { status: number; headers: Record<string, string | undefined> } | undefined;
      const chunks: Buffer[] = [];
      let bytes = 0;
      let settled = false;
      const finish = (): void => {
        if (settled || response === undefined) return;
        settled = true;
        done();
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
        done();
        const code = (error as { code?: unknown }).code;
        const plain = Object.assign(new Error(error.message), { name: error.name, code });
        if (closed) {
          reject(new NetworkError('ERR_ABORTED', 'The transport was closed during the request', undefined, { cause: plain }));
          return;
        }
        if (origin !== undefined && timedOut && request.signal?.aborted !== true) {
          reject(new NetworkError('ERR_TIMEOUT', `The request timed out (through the proxy ${origin})`, undefined, { cause: plain }));
          return;
        }
        if (origin !== undefined) {
          reject(proxyFailure(error, { origin, url: request.url, signal: request.signal, cause: plain }));
          return;
        }
        const mapped = toNetworkError(error, request.signal);
        reject(new NetworkError(mapped.code as 'ERR_NETWORK' | 'ERR_TIMEOUT' | 'ERR_ABORTED', mapped.message, mapped.errno, { cause: plain }));
      });
    });
  }

  return {
    send,
    close(): Promise<void> {
      closed = true;
      slots?.close();
      agents.destroy();
      return Promise.resolve();
    },
  };
}

function direct(maxSockets: number): { http: http.Agent; https: https.Agent; destroy(): void } {
  const agents = { http: new http.Agent({ keepAlive: true, maxSockets }), https: new https.Agent({ keepAlive: true, maxSockets }) };
  return {
    ...agents,
    destroy: () => {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/**
 * At most `limit` requests at a time per origin; the others wait in order. A wait counts towards the
 * request's `timeoutMs` and ends with its signal or `close()`, as a wait for an agent's socket would. No
 * `AbortSignal.any` here: on Node 20 each call leaves an entry on its long-lived sources for good.
 */
class OriginSlots {
  readonly #limit: number;
  readonly #origins = new Map<string, { active: number; waiting: (() => void)[] }>();
  /** How to fail each waiting request, for `close()`. */
  readonly #waiters = new Set<(error: NetworkError) => void>();
  #closed = false;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Runs `work` with the time left of `request.timeoutMs` once `origin` has a free slot. */
  async run<T>(origin: string, request: TransportRequest, work: (timeoutMs: number) => Promise<T>): Promise<T> {
    if (this.#closed || request.signal?.aborted === true) throw new NetworkError('ERR_ABORTED', 'The request was aborted', undefined);
    const start = Date.now();
    let state = this.#origins.get(origin);
    if (state === undefined) this.#origins.set(origin, (state = { active: 0, waiting: [] }));
    // A finishing request hands its slot to the next waiting one directly: no newcomer takes it meanwhile.
    if (state.active >= this.#limit) await this.#wait(state, request);
    else state.active += 1;
    try {
      const left = request.timeoutMs - (Date.now() - start);
      if (left <= 0) throw new NetworkError('ERR_TIMEOUT', `The request timed out waiting for a connection through the proxy (${request.timeoutMs} ms)`, undefined);
      return await work(left);
    } finally {
      const next = state.waiting.shift();
      if (next !== undefined) next();
      else if (--state.active === 0) this.#origins.delete(origin);
    }
  }

  close(): void {
    this.#closed = true;
    for (const fail of [...this.#waiters]) fail(new NetworkError('ERR_ABORTED', 'The transport is closed', undefined));
  }

  #wait(state: { waiting: (() => void)[] }, request: TransportRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const { signal } = request;
      const end = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(fail);
      };
      const go = (): void => {
        end();
        resolve();
      };
      const fail = (error: NetworkError): void => {
        end();
        state.waiting.splice(state.waiting.indexOf(go), 1);
        reject(error);
      };
      const onAbort = (): void => fail(new NetworkError('ERR_ABORTED', 'The request was aborted', undefined));
      const timer = setTimeout(
        () => fail(new NetworkError('ERR_TIMEOUT', `The request timed out waiting for a connection through the proxy (${request.timeoutMs} ms)`, undefined)),
        request.timeoutMs,
      );
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(fail);
      state.waiting.push(go);
    });
  }
}
