/**
 * A `Transport` (see src/transport/transport.ts) on undici 6, for the benchmark: one POST per call, no
 * retries, resolves for every status, rejects with a `NetworkError` when no response arrived.
 */
import { Agent, request } from 'undici';
import { loadPackage } from './components.mjs';

const { NetworkError } = await loadPackage();

const EXCERPT_BYTES = 4096;

/** Creates an undici transport with its own connection pool. */
export function createUndiciTransport({ connections = 256 } = {}) {
  const agent = new Agent({ connections, pipelining: 1, keepAliveTimeout: 10_000 });
  let closing;
  return {
    async send({ url, headers, body, timeoutMs, signal }) {
      // One controller per request for the deadline and the caller's signal. Not AbortSignal.any(): on
      // Node 20 it costs more CPU per request than the rest of this function.
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      const onAbort = () => controller.abort();
      if (signal?.aborted) controller.abort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const response = await request(url, {
          method: 'POST',
          headers,
          body,
          dispatcher: agent,
          signal: controller.signal,
          maxRedirections: 0,
        });
        const chunks = [];
        let size = 0;
        for await (const chunk of response.body) {
          if (size < EXCERPT_BYTES) chunks.push(chunk);
          size += chunk.length;
        }
        const flat = {};
        for (const [name, value] of Object.entries(response.headers)) {
          flat[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
        }
        return {
          status: response.statusCode,
          headers: flat,
          bodyExcerpt: Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8'),
        };
      } catch (error) {
        if (timedOut) throw new NetworkError('ERR_TIMEOUT', `request timed out after ${timeoutMs} ms`, 'ETIMEDOUT', { cause: error });
        if (signal?.aborted) throw new NetworkError('ERR_ABORTED', 'request aborted', undefined, { cause: error });
        const errno = error?.cause?.code ?? error?.code;
        throw new NetworkError('ERR_NETWORK', `request failed: ${errno ?? error?.message}`, errno, { cause: error });
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
    },
    close() {
      closing ??= agent.close();
      return closing;
    },
  };
}
