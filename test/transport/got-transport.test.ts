import { getEventListeners, setMaxListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { NetworkError } from '../../src/errors.js';
import { startFlakyReceiver, type FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { createGotTransport } from '../../src/transport/got-transport.js';
import type { Transport, TransportRequest } from '../../src/transport/transport.js';
import { transportRequest } from './request.js';

let receiver: FlakyReceiver | undefined;
let transport: Transport | undefined;
afterEach(async () => {
  await transport?.close?.();
  await receiver?.close();
  receiver = undefined;
  transport = undefined;
});

/** With a credential header, which errors must never carry. */
function request(url: string, extra: Partial<TransportRequest> = {}): TransportRequest {
  return transportRequest(url, { headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1', authorization: 'Bearer t' }, timeoutMs: 2_000, ...extra });
}

describe('createGotTransport', () => {
  it('rejects bad options with ERR_INVALID_OPTION naming the option', () => {
    const bad: [unknown, string][] = [
      [{ maxSockets: 0 }, 'maxSockets'],
      [{ maxSockets: 1.5 }, 'maxSockets'],
      [{ excerptChars: -1 }, 'excerptChars'],
      [{ excerptChars: '100' }, 'excerptChars'],
      [{ maxSocket: 4 }, 'maxSocket'],
      [null, 'options'],
    ];
    for (const [options, option] of bad) {
      expect(() => createGotTransport(options as never), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }));
    }
  });

  it('POSTs the exact bytes and headers, with no Connection header, and reports the answer', async () => {
    receiver = await startFlakyReceiver({ script: [{ status: 201, body: 'created', headers: { 'x-reply': 'yes' } }] });
    transport = createGotTransport();
    const response = await transport.send(request(receiver.url));
    expect(response).toEqual({ status: 201, headers: expect.objectContaining({ 'x-reply': 'yes' }), bodyExcerpt: 'created' });
    const seen = receiver.requests[0];
    expect(seen?.body).toBe('{"hello":"world"}');
    expect(seen?.headers['content-type']).toBe('application/json');
    expect(seen?.headers.authorization).toBe('Bearer t');
    expect(seen?.id).toBe('msg_1');
  });

  it('resolves for 4xx/5xx and does not retry or follow redirects', async () => {
    receiver = await startFlakyReceiver({
      script: [500, { status: 302, headers: { location: '/elsewhere' } }, 404],
    });
    transport = createGotTransport();
    expect((await transport.send(request(receiver.url))).status).toBe(500);
    expect((await transport.send(request(receiver.url))).status).toBe(302);
    expect((await transport.send(request(receiver.url))).status).toBe(404);
    expect(receiver.requests.map((r) => r.path)).toEqual(['/hook', '/hook', '/hook']);
  });

  it('keeps only a bounded excerpt of a large body', async () => {
    receiver = await startFlakyReceiver({ script: [{ status: 500, body: 'x'.repeat(200_000) }] });
    transport = createGotTransport({ excerptChars: 100 });
    const response = await transport.send(request(receiver.url));
    expect(response.status).toBe(500);
    expect(response.bodyExcerpt).toBe('x'.repeat(100));
  });

  it('rejects with ERR_NETWORK/ECONNREFUSED, ECONNRESET on a drop, ERR_TIMEOUT on a hang', async () => {
    receiver = await startFlakyReceiver({ script: [{ drop: true }, { hang: true }] });
    transport = createGotTransport();
    const dropped = await transport.send(request(receiver.url)).catch((e: unknown) => e);
    expect(dropped).toBeInstanceOf(NetworkError);
    expect(dropped).toMatchObject({ code: 'ERR_NETWORK', errno: 'ECONNRESET' });
    const hung = await transport.send(request(receiver.url, { timeoutMs: 150 })).catch((e: unknown) => e);
    expect(hung).toMatchObject({ code: 'ERR_TIMEOUT' });
    await receiver.refuseConnections();
    const refused = await transport.send(request(receiver.url)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_NETWORK', errno: 'ECONNREFUSED' });
    expect(JSON.stringify((refused as Error).cause)).not.toContain('Bearer');
  });

  it('rejects with ERR_ABORTED when the signal aborts mid-request, and after close()', async () => {
    receiver = await startFlakyReceiver({ script: [{ hang: true }] });
    transport = createGotTransport();
    const controller = new AbortController();
    const pending = transport.send(request(receiver.url, { signal: controller.signal }));
    while (receiver.inProgress === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await transport.close?.();
    await expect(transport.send(request(receiver.url))).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('leaves no listener on a signal shared by many requests once they are answered (the outbox shares one)', async () => {
    receiver = await startFlakyReceiver({ script: [{ status: 200 }, { status: 500 }] });
    transport = createGotTransport({ maxSockets: 4 });
    const controller = new AbortController();
    // Lifted as the flusher lifts it on its own signal: the 40 requests in flight hold one listener each until
    // answered, past Node's default of 10 (a MaxListenersExceededWarning in every test run). The leak this
    // test is about is a listener left once answered, checked below.
    setMaxListeners(0, controller.signal);
    const send = transport.send.bind(transport);
    const answers = await Promise.all(Array.from({ length: 40 }, () => send(request(receiver?.url as string, { signal: controller.signal }))));
    expect(answers.map((a) => a.status).sort()).toEqual([...Array<number>(39).fill(200), 500]);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});
