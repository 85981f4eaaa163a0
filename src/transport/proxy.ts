/**
 * Sending through an HTTP proxy (the `proxy` option): the agents that tunnel through it, and what its
 * failures mean. Everything that reaches an error names the proxy by its origin, which never carries the
 * user info of the proxy URL.
 */
import type http from 'node:http';
import type https from 'node:https';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import { NetworkError, ProxyError } from '../errors.js';
import { toNetworkError } from '../retry/classify.js';

/** Agents that tunnel through a proxy, and how to end the tunnels they are still opening. */
export interface ProxyAgents {
  http: http.Agent;
  https: https.Agent;
  /** Destroys the agents' sockets and ends every CONNECT still waiting for the proxy's answer. */
  destroy(): void;
}

/**
 * Keep-alive agents that reach every endpoint through `proxy` with CONNECT (hpagent does so for http
 * endpoints too, not with absolute-URI requests). hpagent's CONNECT request belongs to no agent and its
 * `timeout` is an idle one: a proxy that trickles its answer would hold it (and the process) for ever. So
 * each CONNECT gets a signal that ends it after `timeoutMs` or at `destroy()` (once the tunnel is up, the
 * request is done and the signal no longer touches it). `timeoutMs` also closes idle keep-alive sockets.
 */
export function createProxyAgents(proxy: string, maxSockets: number, timeoutMs: number): ProxyAgents {
  const pending = new Set<AbortController>();
  const options = { keepAlive: true, maxSockets, proxy, timeout: timeoutMs };
  const bounded = <A extends http.Agent>(agent: A): A => {
    type Callback = (error: Error | null, socket: unknown) => void;
    const target = agent as unknown as { proxyRequestOptions: object; createConnection: (options: unknown, callback: Callback) => unknown };
    const create = target.createConnection.bind(agent);
    target.createConnection = (connectOptions, callback) => {
      // A controller of its own (AbortSignal.any would leave an entry per CONNECT on a long-lived signal).
      const controller = new AbortController();
      pending.add(controller);
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      timer.unref();
      // Read synchronously by hpagent when it builds the request.
      target.proxyRequestOptions = { signal: controller.signal };
      return create(connectOptions, (error, socket) => {
        clearTimeout(timer);
        pending.delete(controller);
        callback(error, socket);
      });
    };
    return agent;
  };
  const agents = { http: bounded(new HttpProxyAgent(options)), https: bounded(new HttpsProxyAgent(options)) };
  return {
    ...agents,
    destroy: () => {
      for (const controller of pending) controller.abort();
      pending.clear();
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** The proxy's origin (`http://proxy.internal:3128`): its URL without user info. */
export function proxyOrigin(proxy: string): string {
  return new URL(proxy).origin;
}

/** hpagent's error for a CONNECT answered with anything but 200. */
const BAD_RESPONSE = /^Bad response: (\d{3})$/;

/** System errors of the connection to the proxy: the endpoint is the proxy's to resolve and reach. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** `host:port` of `url` as hpagent sends it in CONNECT. */
function connectTarget(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port === '' ? (parsed.protocol === 'https:' ? '443' : '80') : parsed.port}`;
}

function hint(status: number): string {
  if (status === 407) return ': authentication failed (check the user:password of the proxy URL; retried until it is fixed) or, as smokescreen answers, a denied destination';
  if (status === 403) return ': a destination the proxy denies';
  if (status >= 500) return ': it could not reach the endpoint';
  return '';
}

/** Where a request that failed through the proxy was going, and what to keep as the error's `cause`. */
export interface ProxyFailureContext {
  /** The proxy's origin (no user info). */
  origin: string;
  /** The endpoint URL. */
  url: string;
  signal: AbortSignal | undefined;
  /** A copy of `error` safe to keep (got's own errors carry the request's headers). */
  cause: Error;
}

/**
 * What a failed request sent through the proxy means: the proxy's answer to CONNECT or its being
 * unreachable (a `ProxyError`), a timeout waiting for the proxy, or any other network error, said to have
 * happened through the proxy.
 */
export function proxyFailure(error: Error, { origin, url, signal, cause }: ProxyFailureContext): NetworkError {
  const mapped = toNetworkError(error, signal);
  if (mapped.code === 'ERR_ABORTED') return mapped;
  const status = BAD_RESPONSE.exec(error.message)?.[1];
  if (status !== undefined) {
    const code = Number(status);
    return new ProxyError(`The proxy ${origin} answered HTTP ${code} to CONNECT ${connectTarget(url)}${hint(code)}`, 'EPROXY', code, { cause });
  }
  // hpagent's idle timeout, or the deadline of createProxyAgents's signal.
  if (error.message === 'Proxy timeout' || (error as { code?: unknown }).code === 'ABORT_ERR') {
    return new NetworkError('ERR_TIMEOUT', `The request timed out waiting for the proxy ${origin} to CONNECT`, undefined, { cause });
  }
  if (mapped.errno !== undefined && UNREACHABLE.has(mapped.errno)) {
    return new ProxyError(`The proxy ${origin} could not be reached: ${mapped.errno}`, mapped.errno, undefined, { cause });
  }
  return new NetworkError(mapped.code as 'ERR_NETWORK' | 'ERR_TIMEOUT', `${mapped.message} (through the proxy ${origin})`, mapped.errno, { cause });
}
