/**
 * Review of fa00024: OriginSlots (at most maxSockets requests per origin through a proxy) and the CONNECT
 * signal of createProxyAgents.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { setMaxListeners } from 'node:events';
import { startFlakyReceiver, type FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { createGotTransport, gotTransport } from '../../src/transport/got-transport.js';
import { createProxyAgents } from '../../src/transport/proxy.js';
import type { NetworkError } from '../../src/errors.js';
import type { Transport } from '../../src/transport/transport.js';
import { startTestProxy, type TestProxy } from './test-proxy.js';
import { transportRequest as request } from './request.js';

let receiver: FlakyReceiver | undefined;
let proxy: TestProxy | undefined;
let transport: Transport | undefined;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await transport?.close?.();
  await receiver?.close();
  await proxy?.close();
  receiver = undefined;
  proxy = undefined;
  transport = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
/** Node's private set of an AbortSignal's dependants (AbortSignal.any results), found by description. */
function dependants(signal: AbortSignal): number {
  const sym = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  return sym === undefined ? 0 : ((signal as unknown as Record<symbol, Set<unknown>>)[sym]?.size ?? 0);
}
function sourcesOf(signal: AbortSignal): AbortSignal[] {
  const sym = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kSourceSignals');
  const set = sym === undefined ? undefined : (signal as unknown as Record<symbol, Set<WeakRef<AbortSignal>>>)[sym];
  return [...(set ?? [])].map((r) => r.deref()).filter((s): s is AbortSignal => s !== undefined);
}

describe('OriginSlots', () => {
  // Without a proxy the wait for the agent's socket counts towards got's timeout: the same must hold for the
  // wait for a slot through the proxy.
  it.each([
    ['through the proxy', true],
    ['without a proxy (the control)', false],
  ])('a request that waited for the only slot still ends at its timeoutMs overall, %s', async (_name, viaProxy) => {
    const T = 1_000;
    const t0 = Date.now();
    const gateA = deferred();
    receiver = await startFlakyReceiver({
      script: async (_req, index) => {
        if (index === 0) {
          await gateA.promise;
          return 200;
        }
        // B: answered T + 200 ms after it was sent, i.e. after its overall deadline.
        return { status: 200, delayMs: Math.max(0, t0 + T + 200 - Date.now()) };
      },
    });
    if (viaProxy) proxy = await startTestProxy();
    transport = gotTransport(proxy === undefined ? { maxSockets: 1 } : { proxy: proxy.url, maxSockets: 1, proxyTimeoutMs: T }, undefined);
    // A holds the only slot until T - 300 ms, within its own deadline.
    setTimeout(gateA.resolve, T - 300);
    const a = transport.send(request(receiver.url, { timeoutMs: T }));
    const b = transport.send(request(receiver.url, { timeoutMs: T, headers: { 'content-type': 'application/json', 'webhook-id': 'msg_b' } }));
    expect((await a).status).toBe(200);
    expect(await b.then((r) => ({ status: r.status }), (e: NetworkError) => ({ code: e.code }))).toEqual({ code: 'ERR_TIMEOUT' });
  });

  it('a send whose signal is already aborted is rejected at once, not queued behind a busy slot', async () => {
    const gate = deferred();
    cleanups.push(() => gate.resolve());
    receiver = await startFlakyReceiver({
      script: async () => {
        await gate.promise;
        return 200;
      },
    });
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: proxy.url, maxSockets: 1 });
    const a = transport.send(request(receiver.url, { timeoutMs: 20_000 })).catch((e: unknown) => e);
    for (let i = 0; i < 200 && receiver.requests.length === 0; i++) await sleep(10);
    const aborted = AbortSignal.abort();
    let settled: string | undefined;
    const b = transport.send(request(receiver.url, { timeoutMs: 20_000, signal: aborted })).then(
      () => (settled = 'resolved'),
      (e: NetworkError) => (settled = e.code),
    );
    for (let i = 0; i < 100 && settled === undefined; i++) await sleep(10);
    // Without a proxy (and before fa00024) this is ERR_ABORTED at once.
    expect(settled).toBe('ERR_ABORTED');
    gate.resolve();
    await a;
    await b;
  });

  it('waits do not leave a dependant on the long-lived signal of the caller (the outbox shares one)', async () => {
    receiver = await startFlakyReceiver();
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: proxy.url, maxSockets: 1 });
    const shared = new AbortController();
    setMaxListeners(0, shared.signal);
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 100 }, () => transport!.send(request(receiver!.url, { signal: shared.signal }))));
    }
    (globalThis as { gc?: () => void }).gc?.();
    await sleep(50);
    // 500 requests, 495+ of them waited: each wait made an AbortSignal.any() of the shared signal; once done,
    // nothing should keep a trace of it on the shared signal (Node 20 never prunes that set).
    expect(dependants(shared.signal)).toBeLessThan(50);
  });

  it('CONNECTs do not leave a dependant each on the agents\' closing signal', async () => {
    receiver = await startFlakyReceiver();
    proxy = await startTestProxy();
    const agents = createProxyAgents(proxy.url, 4, 5_000);
    cleanups.push(() => agents.destroy());
    const url = new URL(receiver.url);
    for (let i = 0; i < 300; i++) {
      await new Promise<void>((resolve, reject) => {
        // connection: close, so each request opens a new tunnel (as after every idle timeoutMs).
        const req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: '/', agent: agents.http, headers: { connection: 'close' } }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end('{}');
      });
    }
    expect(proxy.tunnels).toBe(300);
    const signal = (agents.http as unknown as { proxyRequestOptions: { signal: AbortSignal } }).proxyRequestOptions.signal;
    const closing = sourcesOf(signal).find((s) => dependants(s) > 1);
    (globalThis as { gc?: () => void }).gc?.();
    expect(closing === undefined ? 0 : dependants(closing)).toBeLessThan(50);
  });

  it('no MaxListenersExceededWarning with 40 waiters and 20 CONNECTs at once', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    cleanups.push(() => {
      process.off('warning', onWarning);
    });
    receiver = await startFlakyReceiver({ latencyMs: 50 });
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: proxy.url, maxSockets: 20 });
    const shared = new AbortController();
    setMaxListeners(0, shared.signal);
    const rs = await Promise.all(Array.from({ length: 60 }, () => transport!.send(request(receiver!.url, { signal: shared.signal }))));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    await sleep(20);
    expect(warnings).toEqual([]);
    expect(receiver.peakConcurrency).toBeLessThanOrEqual(20);
  });

  it('no slot leaks: after timeouts, aborts and a closed proxy connection, the origin still serves', async () => {
    let mode: 'hang' | 'ok' = 'hang';
    receiver = await startFlakyReceiver({ script: () => (mode === 'hang' ? { hang: true } : 200) });
    proxy = await startTestProxy();
    transport = createGotTransport({ proxy: proxy.url, maxSockets: 2 });
    const c = new AbortController();
    const results = await Promise.allSettled([
      transport.send(request(receiver.url, { timeoutMs: 300 })),
      transport.send(request(receiver.url, { timeoutMs: 300 })),
      transport.send(request(receiver.url, { timeoutMs: 200 })), // waits, times out waiting
      transport.send(request(receiver.url, { timeoutMs: 5_000, signal: c.signal })), // waits, aborted
      transport.send(request(receiver.url, { timeoutMs: 600 })), // gets a slot at ~300, then times out
      (async () => {
        await sleep(100);
        c.abort();
        throw new Error('x');
      })(),
    ]);
    expect(results.slice(0, 5).map((r) => (r.status === 'rejected' ? (r.reason as NetworkError).code : 'ok'))).toEqual([
      'ERR_TIMEOUT',
      'ERR_TIMEOUT',
      'ERR_TIMEOUT',
      'ERR_ABORTED',
      'ERR_TIMEOUT',
    ]);
    mode = 'ok';
    const rs = await Promise.all(Array.from({ length: 4 }, () => transport!.send(request(receiver!.url, { timeoutMs: 5_000 }))));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200]);
  });
});

describe('the CONNECT deadline does not touch a live tunnel', () => {
  it('a slow answer on a tunnel outlives the CONNECT deadline (proxyTimeoutMs 300, answer at 800)', async () => {
    receiver = await startFlakyReceiver({ latencyMs: 800 });
    proxy = await startTestProxy();
    transport = gotTransport({ proxy: proxy.url, maxSockets: 1, proxyTimeoutMs: 300 }, undefined);
    const r = await transport.send(request(receiver.url, { timeoutMs: 5_000 }));
    expect(r.status).toBe(200);
    expect(proxy.tunnels).toBe(1);
  });

  it('a kept-alive tunnel is reused past the CONNECT deadline while busy', async () => {
    receiver = await startFlakyReceiver({ latencyMs: 150 });
    proxy = await startTestProxy();
    transport = gotTransport({ proxy: proxy.url, maxSockets: 1, proxyTimeoutMs: 300 }, undefined);
    for (let i = 0; i < 6; i++) expect((await transport.send(request(receiver.url, { timeoutMs: 5_000 }))).status).toBe(200);
    expect(proxy.tunnels).toBe(1);
  });

  it('close() while requests use a tunnel and others wait: all end ERR_ABORTED, nothing thrown', async () => {
    receiver = await startFlakyReceiver({ script: () => ({ hang: true }) });
    proxy = await startTestProxy();
    transport = gotTransport({ proxy: proxy.url, maxSockets: 2, proxyTimeoutMs: 5_000 }, undefined);
    const sends = Array.from({ length: 6 }, () => transport!.send(request(receiver!.url, { timeoutMs: 10_000 })));
    for (let i = 0; i < 200 && receiver.requests.length < 2; i++) await sleep(10);
    await transport.close?.();
    const codes = (await Promise.allSettled(sends)).map((r) => (r.status === 'rejected' ? (r.reason as NetworkError).code : 'ok'));
    expect(codes).toEqual(Array(6).fill('ERR_ABORTED'));
  });
});
