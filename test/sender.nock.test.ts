import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { createSender } from '../src/sender.js';

afterEach(() => {
  nock.cleanAll();
});

describe('createSender with nock (as a user would test their integration)', () => {
  it('retries two simulated 500s and then delivers', async () => {
    const scope = nock('http://hooks.example.test')
      .post('/hook')
      .times(2)
      .reply(500, 'oops')
      .post('/hook', { type: 'order.paid' })
      .matchHeader('webhook-id', 'evt_1')
      .reply(204);
    const sender = createSender({ url: 'http://hooks.example.test/hook', retry: { baseDelayMs: 1, maxDelayMs: 2 } });
    const result = await sender.send({ id: 'evt_1', body: { type: 'order.paid' } });
    await sender.close();
    expect(result).toMatchObject({ id: 'evt_1', status: 204, attempts: 3 });
    expect(scope.isDone()).toBe(true);
  });

  it('retries a simulated connection reset', async () => {
    const scope = nock('http://hooks.example.test')
      .post('/hook')
      .replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .post('/hook')
      .reply(200);
    const sender = createSender({ url: 'http://hooks.example.test/hook', retry: { baseDelayMs: 1, maxDelayMs: 2 } });
    expect(await sender.send({ body: 'ping' })).toMatchObject({ attempts: 2 });
    await sender.close();
    expect(scope.isDone()).toBe(true);
  });
});
