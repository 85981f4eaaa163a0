/**
 * Asymmetric signatures: the sender signs with an ed25519 secret key (`whsk_`), receivers verify with its
 * public key (`whpk_`), which cannot sign, so no receiver can forge a request. Moving from an HMAC secret is
 * a rotation: while the sender signs with both, a receiver still on the old `whsec_` and one already on the
 * `whpk_` both accept; once every receiver has switched, the sender drops the `whsec_`.
 */
import { createSender, generateSigningKeyPair } from 'webhook-outbox';
import { startReceiver } from './receiver-verifying-signatures.js';

/** Delivers through the migration and after it; reports what each receiver processed. */
export async function main(): Promise<void> {
  const oldSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  // Once, and kept: the secret key with the sender's secrets, the public key handed to receivers.
  const { secretKey, publicKey } = generateSigningKeyPair();
  const processed: string[] = [];
  const legacy = await startReceiver(oldSecret, (id) => processed.push(`legacy ${id}`));
  const switched = await startReceiver(publicKey, (id) => processed.push(`switched ${id}`));
  // Each request carries `v1a,<ed25519>` and `v1,<HMAC>`: every receiver finds the one it can check.
  const migrating = createSender({ signingSecret: [secretKey, oldSecret] });
  const migrated = createSender({ signingSecret: secretKey, retry: { maxAttempts: 1 } });
  try {
    await migrating.send({ url: legacy.url, id: 'evt_1', body: { type: 'order.paid' } });
    await migrating.send({ url: switched.url, id: 'evt_1', body: { type: 'order.paid' } });
    await migrated.send({ url: switched.url, id: 'evt_2', body: { type: 'order.shipped' } });
    // Dropping the whsec_ too early: the receiver still on it finds no signature it can check.
    const early = await migrated.send({ url: legacy.url, id: 'evt_2', body: {} }).catch((error: Error) => error.message);
    console.log(`${processed.join(', ')}; whsk_ alone at the legacy receiver: ${String(early)}`);
  } finally {
    await migrating.close();
    await migrated.close();
    for (const { server } of [legacy, switched]) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
