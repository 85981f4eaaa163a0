import { request, Agent } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver, FlakyReceiverOptions } from '../../src/testing/flaky-receiver.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
  options: { timeoutMs?: number; agent?: Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'ETIMEDOUT' })));
    }
    req.on('error', reject);
    req.end(body);
  });
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}

const receivers: FlakyReceiver[] = [];
async function start(options?: FlakyReceiverOptions): Promise<FlakyReceiver> {
  const receiver = await startFlakyReceiver(options);
  receivers.push(receiver);
  return receiver;
}

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

describe('startFlakyReceiver', () => {
  it('answers the scripted statuses in order, then 200, and records every request per webhook-id', async () => {
    const receiver = await start({ script: [500, { status: 503, headers: { 'retry-after': '7' }, body: 'busy' }] });
    expect(receiver.url).toBe(`http://127.0.0.1:${receiver.port}/hook`);

    const first = await post(receiver.url, '{"n":1}', { 'webhook-id': 'msg_a' });
    const second = await post(receiver.url, '{"n":1}', { 'webhook-id': 'msg_a' });
    const third = await post(receiver.url, '{"n":1}', { 'webhook-id': 'msg_a' });
    const fourth = await post(receiver.url, '{"n":2}', { 'webhook-id': 'msg_b', 'webhook-timestamp': '1700000000' });

    expect([first.status, second.status, third.status, fourth.status]).toEqual([500, 503, 200, 200]);
    expect(second.headers['retry-after']).toBe('7');
    expect(second.body).toBe('busy');
    expect(receiver.requests.map((r) => r.status)).toEqual([500, 503, 200, 200]);
    expect(receiver.countById('msg_a')).toBe(3);
    expect(receiver.countById('msg_b')).toBe(1);
    expect(receiver.countById('msg_none')).toBe(0);
    expect(receiver.deliveredIds()).toEqual(new Set(['msg_a', 'msg_b']));
    expect(receiver.requests[3]).toMatchObject({ id: 'msg_b', timestamp: '1700000000', body: '{"n":2}', method: 'POST', signatureValid: undefined });
  });

  it('takes a function script with the request and its index, and setScript restarts a list', async () => {
    const receiver = await start({ script: (req, index) => (req.body === 'bad' ? 422 : 200 + index) });
    expect((await post(receiver.url, 'ok')).status).toBe(200);
    expect((await post(receiver.url, 'bad')).status).toBe(422);
    expect((await post(receiver.url, 'ok')).status).toBe(202);

    receiver.setScript([418]);
    expect((await post(receiver.url, 'x')).status).toBe(418);
    expect((await post(receiver.url, 'x')).status).toBe(200);
  });

  it('answers 404 on another path without consuming the script', async () => {
    const receiver = await start({ script: [500], path: '/in' });
    const other = await post(receiver.url.replace('/in', '/elsewhere'), 'x');
    expect(other.status).toBe(404);
    expect((await post(receiver.url, 'x')).status).toBe(500);
  });

  it('drops the connection without answering', async () => {
    const receiver = await start({ script: [{ drop: true }] });
    const error = await post(receiver.url, 'x', { 'webhook-id': 'msg_drop' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]?.status).toBeUndefined();
    expect(receiver.deliveredIds().size).toBe(0);
    expect((await post(receiver.url, 'x')).status).toBe(200);
  });

  it('hangs until the client gives up, and close() ends the hanging socket', async () => {
    const receiver = await start({ script: [{ hang: true }] });
    const error = await post(receiver.url, 'x', {}, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect((error as NodeJS.ErrnoException).code).toBe('ETIMEDOUT');
    expect(receiver.requests[0]?.status).toBeUndefined();

    const receiver2 = await start({ script: [{ hang: true }] });
    const pending = post(receiver2.url, 'x').catch((e: unknown) => e);
    await until(() => receiver2.inProgress === 1);
    await receiver2.close();
    expect((await pending) as Error).toBeInstanceOf(Error);
    expect(receiver2.inProgress).toBe(0);
  });

  it('a throwing script answers 500 and records it; a script settling after close() starts no timer', async () => {
    const receiver = await start({ script: () => Promise.reject(new Error('boom')) });
    const answer = await post(receiver.url, 'x');
    expect(answer).toMatchObject({ status: 500, body: 'boom' });
    expect(receiver.requests[0]?.status).toBe(500);

    const slow = await start({ latencyMs: 60_000, script: () => new Promise((resolve) => setTimeout(() => resolve(200), 50)) });
    const setTimer = vi.spyOn(globalThis, 'setTimeout');
    try {
      const pending = post(slow.url, 'x').catch((e: unknown) => e);
      await until(() => slow.inProgress === 1);
      await slow.close();
      await pending;
      await new Promise((resolve) => setTimeout(resolve, 100));
      // A 60 s latency timer started after close() would keep a test process alive for a minute.
      expect(setTimer.mock.calls.filter(([, ms]) => ms === 60_000)).toEqual([]);
    } finally {
      setTimer.mockRestore();
    }
  });

  it('adds latency before answering', async () => {
    const receiver = await start({ latencyMs: 40, script: [{ status: 201, delayMs: 20 }] });
    const startedAt = performance.now();
    const answer = await post(receiver.url, 'x');
    expect(answer.status).toBe(201);
    // A lower bound only: timers never fire much before their delay, however loaded the machine is.
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(55);
  });

  it('refuses connections on the same port, cuts open keep-alive sockets, then accepts again', async () => {
    const receiver = await start({ script: [200, { hang: true }] });
    const agent = new Agent({ keepAlive: true });
    try {
      expect((await post(receiver.url, 'warm', {}, { agent })).status).toBe(200);
      const hanging = post(receiver.url, 'x', {}, { agent }).catch((e: unknown) => e);
      await until(() => receiver.inProgress === 1);
      const url = receiver.url;

      await receiver.refuseConnections();
      expect(((await hanging) as NodeJS.ErrnoException).code).toBe('ECONNRESET');
      const refused = await post(url, 'x').catch((e: unknown) => e);
      expect((refused as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      await receiver.refuseConnections();

      await receiver.acceptConnections();
      expect(receiver.url).toBe(url);
      expect((await post(url, 'back')).status).toBe(200);
      expect(receiver.requests.map((r) => r.body)).toEqual(['warm', 'x', 'back']);
    } finally {
      agent.destroy();
    }
  });

  it('answers 429 above capacity and records the peak concurrency', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const receiver = await start({
      capacity: 2,
      capacityRetryAfter: 3,
      script: async () => {
        await gate;
        return 200;
      },
    });
    const held = [post(receiver.url, 'a'), post(receiver.url, 'b')];
    await until(() => receiver.inProgress === 2);

    const over = await post(receiver.url, 'c');
    expect(over.status).toBe(429);
    expect(over.headers['retry-after']).toBe('3');
    const over2 = await post(receiver.url, 'd');
    expect(over2.status).toBe(429);

    release();
    expect((await Promise.all(held)).map((a) => a.status)).toEqual([200, 200]);
    expect(receiver.peakConcurrency).toBe(3);
    expect(receiver.requests.find((r) => r.body === 'c')?.concurrency).toBe(3);
    expect((await post(receiver.url, 'e')).status).toBe(200);
  });

  it('changes its capacity mid-test', async () => {
    const receiver = await start({ script: [{ hang: true }] });
    const held = post(receiver.url, 'a').catch((e: unknown) => e);
    await until(() => receiver.inProgress === 1);
    receiver.setCapacity(1, 9);
    const over = await post(receiver.url, 'b');
    expect([over.status, over.headers['retry-after']]).toEqual([429, '9']);
    receiver.setCapacity(Infinity);
    expect((await post(receiver.url, 'c')).status).toBe(200);
    await receiver.close();
    expect(await held).toBeInstanceOf(Error);
  });

  describe('signatures', () => {
    // The Standard Webhooks specification's test vector.
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const vector = {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    };
    const body = '{"test": 2432232314}';

    it('accepts the spec test vector and a signature made by the standardwebhooks package', async () => {
      const receiver = await start({ secret });
      await post(receiver.url, body, vector);
      const now = new Date();
      const signature = new Webhook(secret).sign('msg_other', now, '{"a":1}');
      await post(receiver.url, '{"a":1}', {
        'webhook-id': 'msg_other',
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': `v1,AAAA ${signature}`,
      });
      expect(receiver.requests.map((r) => r.signatureValid)).toEqual([true, true]);
    });

    it('rejects a tampered body, a wrong id, a wrong secret and a missing header', async () => {
      const receiver = await start({ secret });
      await post(receiver.url, '{"test": 2432232315}', vector);
      await post(receiver.url, body, { ...vector, 'webhook-id': 'msg_other' });
      await post(receiver.url, body, { 'webhook-id': vector['webhook-id'], 'webhook-timestamp': vector['webhook-timestamp'] });
      const other = await start({ secret: 'whsec_' + Buffer.from('another secret of 24 bytes!').toString('base64') });
      await post(other.url, body, vector);
      expect(receiver.requests.map((r) => r.signatureValid)).toEqual([false, false, false]);
      expect(other.requests[0]?.signatureValid).toBe(false);
    });
  });
});
