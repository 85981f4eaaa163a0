/**
 * A custom transport: the `Transport` port implemented with undici instead of the default got transport.
 * A transport makes exactly one attempt: it resolves for every HTTP status and rejects with a
 * `NetworkError` when no response came; the sender and the outbox do the retrying.
 */
import { Agent, errors, request } from 'undici';
import { createSender, NetworkError } from 'webhook-outbox';
import type { Transport, TransportRequest, TransportResponse } from 'webhook-outbox';
import { startFlakyReceiver } from 'webhook-outbox/testing';

const EXCERPT_CHARS = 2048;

/** One undici `Agent` (connection pool) per transport; `close()` releases its sockets. */
export function createUndiciTransport(): Transport {
  const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
  return {
    async send(req: TransportRequest): Promise<TransportResponse> {
      const timeout = AbortSignal.timeout(req.timeoutMs);
      const signal = req.signal === undefined ? timeout : AbortSignal.any([req.signal, timeout]);
      try {
        const res = await request(req.url, {
          method: 'POST',
          headers: req.headers,
          body: req.body,
          dispatcher,
          signal,
          maxRedirections: 0,
        });
        let excerpt = '';
        for await (const chunk of res.body) {
          excerpt += Buffer.from(chunk as Uint8Array).toString('utf8');
          if (excerpt.length >= EXCERPT_CHARS) break;
        }
        const headers: Record<string, string | undefined> = {};
        for (const [name, value] of Object.entries(res.headers)) headers[name] = Array.isArray(value) ? value.join(', ') : value;
        return { status: res.statusCode, headers, bodyExcerpt: excerpt.slice(0, EXCERPT_CHARS) };
      } catch (error) {
        if (req.signal?.aborted === true) throw new NetworkError('ERR_ABORTED', 'The attempt was aborted', undefined);
        if (timeout.aborted) throw new NetworkError('ERR_TIMEOUT', `No response within ${req.timeoutMs} ms`, 'ETIMEDOUT');
        const errno = error instanceof errors.UndiciError ? error.code : (error as NodeJS.ErrnoException).code;
        throw new NetworkError('ERR_NETWORK', `Request failed (${errno ?? 'unknown'})`, errno);
      }
    },
    close: () => dispatcher.close(),
  };
}

/** Sends through undici to a local receiver that fails once. */
export async function main(): Promise<void> {
  const receiver = await startFlakyReceiver({ script: [503] });
  const sender = createSender({ url: receiver.url, transport: createUndiciTransport(), retry: { baseDelayMs: 50 } });
  try {
    const result = await sender.send({ body: { hello: 'undici' } });
    console.log(`delivered ${result.id} with undici: HTTP ${result.status} after ${result.attempts} attempts`);
  } finally {
    await sender.close();
    await receiver.close();
  }
}
