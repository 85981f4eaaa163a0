/**
 * One outbox for many customers, each receiver with its own signing secret: `signingSecret` is a function
 * of the request URL, asked at every attempt, so no secret is ever written to the outbox directory. One
 * customer is rotating its secret: its requests carry a signature for the new and for the old one until the
 * rotation is over, and its receiver (still on the old secret) accepts them. Customers' URLs may not point
 * into this service's network.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Outbox, type WebhookOutboxError } from 'webhook-outbox';
import { startReceiver } from './receiver-verifying-signatures.js';

const secret = (fill: number): string => `whsec_${Buffer.alloc(32, fill).toString('base64')}`;

/** Starts two customers' receivers, delivers two events to each, and reports what each processed. */
export async function main(): Promise<void> {
  const acme = { old: secret(1), next: secret(2) };
  const globex = secret(3);
  const processed: Record<string, string[]> = { acme: [], globex: [] };
  // Acme's receiver still verifies with its old secret; Globex has one secret.
  const acmeReceiver = await startReceiver(acme.old, (id) => processed.acme?.push(id));
  const globexReceiver = await startReceiver(globex, (id) => processed.globex?.push(id));
  // In an app this is a lookup in the customers' endpoint table (cache it: it runs once per attempt).
  const secretsByUrl = new Map<string, string | string[]>([
    [acmeReceiver.url, [acme.next, acme.old]],
    [globexReceiver.url, globex],
  ]);
  const dir = await mkdtemp(join(tmpdir(), 'multi-tenant-'));
  const outbox = await Outbox.open({
    dir,
    signingSecret: async (url) => secretsByUrl.get(url),
    // Customers' URLs must not reach this service's own network (SSRF). This example's receivers run on
    // 127.0.0.1, so that one address is allowed; in production, `true`.
    blockPrivateAddresses: { allow: ['127.0.0.1'] },
  });
  try {
    // A customer who registers the cloud metadata service as its endpoint is refused at once.
    await outbox.enqueue({ url: 'http://169.254.169.254/latest/meta-data/', body: {} }).catch((error: WebhookOutboxError) => console.log(`refused: ${error.code}`));
    for (const [customer, url] of [['acme', acmeReceiver.url], ['globex', globexReceiver.url]] as const) {
      for (const n of [1, 2]) await outbox.enqueue({ id: `${customer}-invoice-${n}`, url, body: { type: 'invoice.paid', n } });
    }
    await outbox.drain({ timeoutMs: 10_000 });
    // Sorted: each customer's two events are delivered concurrently.
    console.log(`acme: ${processed.acme?.sort().join(', ')}; globex: ${processed.globex?.sort().join(', ')}; dead: ${outbox.stats().dead}`);
  } finally {
    await outbox.close();
    for (const { server } of [acmeReceiver, globexReceiver]) await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
