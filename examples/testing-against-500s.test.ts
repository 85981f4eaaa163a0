/**
 * How a user tests their own webhook code against a receiver that answers 500s, two ways:
 * - the flaky receiver of `webhook-outbox/testing`: a real HTTP server on 127.0.0.1;
 * - nock, for a test suite that already mocks HTTP (the helpers take `nock` as an argument).
 */
import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { createSender, WebhookOutboxError } from 'webhook-outbox';
import type { Sender } from 'webhook-outbox';
import { failThenSucceed, startFlakyReceiver } from 'webhook-outbox/testing';
import type { FlakyReceiver } from 'webhook-outbox/testing';

/** The user's code under test: tell a partner that an order was paid. */
async function notifyOrderPaid(sender: Sender, orderId: number): Promise<string> {
  const result = await sender.send({ id: `order-paid-${orderId}`, body: { type: 'order.paid', orderId } });
  return result.id;
}

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
// Tests want retries in milliseconds, not seconds.
const fastRetries = { baseDelayMs: 5, maxDelayMs: 20, maxAttempts: 5 };

describe('with the flaky receiver', () => {
  let receiver: FlakyReceiver;
  afterEach(async () => {
    await receiver.close();
  });

  it('survives two 500s: one delivery, three attempts with the same webhook-id, all signed', async () => {
    receiver = await startFlakyReceiver({ secret, script: [500, 500] });
    const sender = createSender({ url: receiver.url, signingSecret: secret, retry: fastRetries });
    try {
      expect(await notifyOrderPaid(sender, 42)).toBe('order-paid-42');
    } finally {
      await sender.close();
    }
    expect(receiver.requests.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(receiver.countById('order-paid-42')).toBe(3);
    expect(receiver.deliveredIds()).toEqual(new Set(['order-paid-42']));
    expect(receiver.requests.every((r) => r.signatureValid === true)).toBe(true);
  });

  it('reports a typed error when the receiver never recovers', async () => {
    receiver = await startFlakyReceiver({ script: () => 500 });
    const sender = createSender({ url: receiver.url, retry: { ...fastRetries, maxAttempts: 3 } });
    try {
      const error = await notifyOrderPaid(sender, 7).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WebhookOutboxError);
      expect((error as WebhookOutboxError).code).toBe('ERR_RETRIES_EXHAUSTED');
    } finally {
      await sender.close();
    }
    expect(receiver.requests).toHaveLength(3);
  });
});

describe('with nock', () => {
  afterEach(() => {
    nock.cleanAll();
  });

  it('retries through 503 + Retry-After and succeeds', async () => {
    const scope = failThenSucceed(nock, 'https://partner.example.test', '/webhooks', { failures: 2, status: 503, retryAfter: 0 });
    const sender = createSender({ url: 'https://partner.example.test/webhooks', retry: fastRetries });
    try {
      expect(await notifyOrderPaid(sender, 43)).toBe('order-paid-43');
    } finally {
      await sender.close();
    }
    expect(scope.isDone()).toBe(true);
  });
});
