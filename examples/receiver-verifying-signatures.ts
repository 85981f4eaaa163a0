/**
 * The other side: a receiver (plain node:http) that verifies Standard Webhooks signatures on the raw body,
 * rejects bad ones with 401, and deduplicates retries by `webhook-id`, so an event that arrives twice
 * (a retry after a lost answer, a sender restarted after a crash) is processed once.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSender, verifyWebhook } from 'webhook-outbox';

/** Starts the receiver; `onEvent` runs once per distinct webhook-id. */
export async function startReceiver(secret: string, onEvent: (id: string, payload: unknown) => void): Promise<{ url: string; server: Server }> {
  // Throws ERR_INVALID_OPTION for a malformed secret here, at startup, not inside a request handler.
  verifyWebhook(secret, {}, '');
  // A real receiver keeps ids in a shared store for as long as the sender may deliver again: retries carry
  // fresh timestamps and come up to the sender's retry.maxAgeMs (72 h by default) after the event.
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const verdict = verifyWebhook(secret, req.headers, raw);
      if (!verdict.ok) {
        res.writeHead(401).end(verdict.reason);
        return;
      }
      if (!seen.has(verdict.id)) {
        seen.add(verdict.id);
        onEvent(verdict.id, JSON.parse(raw.toString('utf8')) as unknown);
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`, server };
}

/** Sends the same event twice and one with a wrong secret. */
export async function main(): Promise<void> {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const processed: string[] = [];
  const { url, server } = await startReceiver(secret, (id) => processed.push(id));
  const sender = createSender({ url, signingSecret: secret });
  const impostor = createSender({ url, signingSecret: `whsec_${Buffer.alloc(24, 7).toString('base64')}`, retry: { maxAttempts: 1 } });
  try {
    await sender.send({ id: 'evt_1', body: { type: 'order.paid' } });
    await sender.send({ id: 'evt_1', body: { type: 'order.paid' } });
    const rejected = await impostor.send({ id: 'evt_2', body: {} }).catch((error: Error) => error.message);
    console.log(`processed once: ${processed.join(', ')}; impostor: ${String(rejected)}`);
  } finally {
    await sender.close();
    await impostor.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
