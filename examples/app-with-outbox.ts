/**
 * An HTTP app that records an order and enqueues an `order.created` webhook from its request handler,
 * then answers without waiting for delivery. On SIGTERM it stops accepting requests, lets in-flight
 * webhook requests finish (up to 10 s; the rest stay on disk for the next start) and releases the outbox.
 *
 * `main()` runs the whole story against a local receiver that is down at first (HTTP 503): the app keeps
 * answering 202, and the webhooks arrive once the receiver recovers. `npm test` typechecks it and runs
 * `main()` (examples/app-with-outbox.test.ts).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Outbox, WebhookOutboxError } from 'webhook-outbox';
import { startFlakyReceiver } from 'webhook-outbox/testing';

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** The app: `POST /orders` with a JSON body `{ "sku": string }`. */
export function createApp(outbox: Outbox): Server {
  let nextOrder = 1;
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== '/orders') {
      res.writeHead(404).end();
      return;
    }
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      void handleOrder(raw).then(
        (payload) => res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(payload)),
        (error: unknown) => {
          // ERR_OUTBOX_CLOSED (shutting down) or ERR_OUTBOX_FULL: the order was not accepted; say so.
          const code = error instanceof WebhookOutboxError ? error.code : error instanceof SyntaxError ? 'ERR_BAD_JSON' : 'ERR_INTERNAL';
          res.writeHead(code === 'ERR_INVALID_MESSAGE' || code === 'ERR_BAD_JSON' ? 400 : 503).end(JSON.stringify({ error: code }));
        },
      );
    });
  });

  async function handleOrder(raw: string): Promise<{ orderId: number; webhookId: string }> {
    const { sku } = JSON.parse(raw || '{}') as { sku?: string };
    // A real app takes the id its database gave the order: an event id is accepted once, so a counter that
    // starts at 1 again after a restart would reuse ids of events still pending or dead, and enqueue() would
    // drop those events as duplicates.
    const orderId = nextOrder++;
    // Resolves once the event is on disk (fsync); delivery happens in the background.
    const { id } = await outbox.enqueue({ id: `order-${orderId}-created`, body: { type: 'order.created', orderId, sku } });
    return { orderId, webhookId: id };
  }
}

/**
 * Graceful shutdown: stop taking requests, then close the outbox (in-flight webhook requests get up to
 * 10 s; abandoned ones stay pending on disk), then exit.
 */
export async function shutdown(server: Server, outbox: Outbox): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await outbox.close({ timeoutMs: 10_000 });
}

/** Runs the story; returns what the receiver got. */
export async function main(): Promise<{ delivered: number; requests: number }> {
  const receiver = await startFlakyReceiver({ secret, script: [503, 503, 503] });
  const dir = await mkdtemp(join(tmpdir(), 'app-with-outbox-'));
  const outbox = await Outbox.open({
    dir,
    url: receiver.url,
    signingSecret: secret,
    retry: { baseDelayMs: 50, maxDelayMs: 500 },
  });
  outbox.on('retry', (event) => console.log(`retry ${event.id}: ${event.error}, next in ${event.nextAttemptAt - Date.now()} ms`));
  outbox.on('delivered', (event) => console.log(`delivered ${event.id} after ${event.attempts} attempt(s)`));
  outbox.on('dead', (event) => console.log(`dead letter ${event.id}: ${event.reason}`));
  outbox.on('error', (error) => console.error(`outbox fault: ${error.message}`));

  const server = createApp(outbox);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const onSigterm = (): void => void shutdown(server, outbox).then(() => process.exit(0));
  process.once('SIGTERM', onSigterm);
  try {
    const { port } = server.address() as AddressInfo;
    for (const sku of ['tea', 'cups', 'kettle']) {
      const res = await fetch(`http://127.0.0.1:${port}/orders`, { method: 'POST', body: JSON.stringify({ sku }) });
      console.log(`POST /orders ${sku}: ${res.status} ${await res.text()}`);
    }
    await outbox.drain({ timeoutMs: 10_000 });
    return { delivered: receiver.deliveredIds().size, requests: receiver.requests.length };
  } finally {
    process.off('SIGTERM', onSigterm);
    await shutdown(server, outbox);
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
}
