import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFlakyReceiver, type FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { createGotTransport, gotTransport } from '../../src/transport/got-transport.js';
import { checkProxyUrl } from '../../src/options.js';
import { ProxyError, type NetworkError } from '../../src/errors.js';
import { classifyError } from '../../src/retry/classify.js';
import type { Transport } from '../../src/transport/transport.js';
import { startTestProxy, type TestProxy } from './test-proxy.js';
import { transportRequest as request } from './request.js';

let receiver: FlakyReceiver | undefined;
let proxy: TestProxy | undefined;
let transport: Transport | undefined;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await transport?.close?.();
  await receiver?.close();
  await proxy?.close();
  for (const c of cleanups.splice(0)) await c();
  receiver = undefined;
  proxy = undefined;
  transport = undefined;
});

const SETTLE = 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A proxy that reads the CONNECT and then sends its answer one byte at a time, never finishing the head. */
async function startTricklingProxy(everyMs: number): Promise<{ url: string; open(): number; connects(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let connects = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => {
      connects++;
      const text = 'HTTP/1.1 200 Connection Established\r\nX-Pad: ' + 'a'.repeat(10_000);
      let i = 0;
      const t = setInterval(() => {
        if (socket.destroyed) return clearInterval(t);
        socket.write(text[i++ % text.length] ?? 'a');
      }, everyMs);
      timers.add(t);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://u:secret@127.0.0.1:${port}`,
    open: () => [...sockets].filter((s) => !s.destroyed).length,
    connects: () => connects,
    close: async () => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('proxy transport', () => {
  it('honours maxSockets through the proxy, as without one', async () => {
    receiver = await startFlakyReceiver({ latencyMs: 300 });
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: proxy.url, maxSockets: 2 });
    const sends = Array.from({ length: 10 }, (_, i) =>
      transport!.send(request(receiver!.url, { headers: { 'content-type': 'application/json', 'webhook-id': `msg_${i}` } })),
    );
    const responses = await Promise.all(sends);
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    // Direct (control below): 2 connections; through the proxy every concurrent request opens its own tunnel.
    expect({ tunnels: proxy.tunnels, peak: receiver.peakConcurrency }).toEqual({ tunnels: 2, peak: 2 });
  });

  it('control: maxSockets 2 without a proxy keeps the receiver at 2 concurrent requests', async () => {
    receiver = await startFlakyReceiver({ latencyMs: 300 });
    transport = createGotTransport({ maxSockets: 2 });
    await Promise.all(Array.from({ length: 10 }, () => transport!.send(request(receiver!.url))));
    expect(receiver.peakConcurrency).toBe(2);
  });

  it('abandons a CONNECT the proxy answers slowly (one byte at a time) once the attempt timed out and the transport closed', async () => {
    const slow = await startTricklingProxy(50);
    cleanups.push(slow.close);
    // As createSender does: the CONNECT is bounded by timeoutMs (300 ms here).
    transport = gotTransport({ proxy: slow.url, proxyTimeoutMs: 300 }, undefined);
    const error = await transport.send(request('http://127.0.0.1:9/hook', { timeoutMs: 300 })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
    await transport.close?.();
    // Bounded wait, 10x the timeout: the tunnel request should have been abandoned long before.
    for (let i = 0; i < 30 && slow.open() > 0; i++) await sleep(100);
    expect(slow.open()).toBe(0);
  });

  it('close() ends a send() waiting for a CONNECT that never gets an answer (not only at timeoutMs)', async () => {
    proxy = await startTestProxy(() => 'hang');
    transport = gotTransport({ proxy: proxy.url, proxyTimeoutMs: 60_000 }, undefined);
    const pending = transport.send(request('http://127.0.0.1:9/hook', { timeoutMs: 60_000 })).then(
      () => 'resolved',
      (e: { code?: string }) => `rejected ${e.code}`,
    );
    for (let i = 0; i < 50 && proxy.seen.length === 0; i++) await sleep(20);
    expect(proxy.seen).toHaveLength(1);
    await transport.close?.();
    const outcome = await Promise.race([pending, sleep(2_000).then(() => 'still pending 2 s after close()')]);
    expect(outcome).toBe('rejected ERR_ABORTED');
  });

  it('refuses at validation a proxy password with a malformed percent escape (hpagent decodeURIComponent throws)', async () => {
    const url = 'http://user:50%zz@127.0.0.1:3128';
    expect(() => checkProxyUrl(url)).toThrow(/proxy/);
  });

  it('reuses no dead keep-alive tunnel after the proxy restarted', async () => {
    receiver = await startFlakyReceiver();
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: `http://egress:s3cret@127.0.0.1:${proxy.port}` });
    expect((await transport.send(request(receiver.url))).status).toBe(200);
    await proxy.refuseConnections();
    await proxy.acceptConnections();
    // Plenty of time for the FIN to be seen: a direct keep-alive socket is dropped from the pool by then (control below).
    await sleep(SETTLE);
    expect((await transport.send(request(receiver.url))).status).toBe(200);
    expect(proxy.tunnels).toBe(2);
  });

  it('control: without a proxy, a keep-alive socket the receiver closed is not reused', async () => {
    receiver = await startFlakyReceiver();
    transport = createGotTransport();
    expect((await transport.send(request(receiver.url))).status).toBe(200);
    await receiver.refuseConnections();
    await receiver.acceptConnections();
    await sleep(SETTLE);
    expect((await transport.send(request(receiver.url))).status).toBe(200);
  });

  it('an idle tunnel the proxy closes (its idle timeout) is not reused: the next request succeeds', async () => {
    receiver = await startFlakyReceiver();
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: proxy.url });
    expect((await transport.send(request(receiver.url))).status).toBe(200);
    // The receiver side of the tunnel closes (e.g. the receiver's keep-alive timeout): the proxy ends the tunnel.
    await receiver.refuseConnections();
    await receiver.acceptConnections();
    await sleep(SETTLE);
    const outcome = await transport.send(request(receiver.url)).then((r) => r.status, (e: Error) => e.message);
    expect(outcome).toBe(200);
  });

  it('a proxy that closes the connection mid-CONNECT: retryable network error naming the origin only', async () => {
    const server = net.createServer((socket) => socket.once('data', () => socket.destroy()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    const { port } = server.address() as AddressInfo;
    transport = createGotTransport({ proxy: `http://egress:s3cr%40t@127.0.0.1:${port}` });
    const error = (await transport.send(request('http://127.0.0.1:9/hook')).catch((e: unknown) => e)) as NetworkError & { cause?: Error };
    expect(error.code).toBe('ERR_NETWORK');
    expect(classifyError(error)).toEqual({ retryable: true, throttled: false });
    const shown = [error.message, error.stack, error.cause?.message, error.cause?.stack, JSON.stringify(error)].join('\n');
    expect(shown).toContain(`http://127.0.0.1:${port}`);
    for (const secret of ['s3cr', '%40', Buffer.from('egress:s3cr@t').toString('base64')]) expect(shown).not.toContain(secret);
  });

  it.each([
    [204, { retryable: false, throttled: false }],
    [400, { retryable: false, throttled: false }],
    [405, { retryable: false, throttled: false }],
    [429, { retryable: true, throttled: true }],
    [500, { retryable: true, throttled: false }],
    [501, { retryable: false, throttled: false }],
    [502, { retryable: true, throttled: true }],
    [511, { retryable: false, throttled: false }],
  ])('classifies a CONNECT answered %i', async (status, expected) => {
    proxy = await startTestProxy(() => status);
    transport = createGotTransport({ proxy: proxy.url });
    const error = (await transport.send(request('http://127.0.0.1:9/hook')).catch((e: unknown) => e)) as NetworkError;
    expect(error).toBeInstanceOf(ProxyError);
    expect((error as ProxyError).proxyStatus).toBe(status);
    expect(classifyError(error)).toEqual(expected);
  });
});
