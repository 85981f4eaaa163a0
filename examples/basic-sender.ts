/**
 * Send one signed webhook with in-process retries. Runs on its own: it starts a local receiver that fails
 * twice (HTTP 500) before accepting, and prints what happened.
 *
 * `npm test` typechecks it and runs `main()` (examples/basic-sender.test.ts).
 */
import { createSender, WebhookOutboxError } from 'webhook-outbox';
import { startFlakyReceiver } from 'webhook-outbox/testing';

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

export async function main(): Promise<void> {
  const receiver = await startFlakyReceiver({ secret, script: [500, 500] });
  const sender = createSender({
    url: receiver.url,
    signingSecret: secret,
    retry: { baseDelayMs: 100, maxAttempts: 5 },
  });
  try {
    const result = await sender.send({ body: { type: 'order.paid', orderId: 42 } });
    console.log(`delivered ${result.id}: HTTP ${result.status} after ${result.attempts} attempts`);
    console.log(`signatures valid: ${receiver.requests.map((r) => r.signatureValid).join(', ')}`);
  } catch (error) {
    if (error instanceof WebhookOutboxError) console.error(`not delivered: ${error.code}: ${error.message}`);
    throw error;
  } finally {
    await sender.close();
    await receiver.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
