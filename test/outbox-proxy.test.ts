import { metrics } from '@opentelemetry/api';
import type { Attributes, BatchObservableCallback, Meter, Observable } from '@opentelemetry/api';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeadEvent, RetryEvent } from '../src/delivery/flusher.js';
import { ProxyError } from '../src/errors.js';
import { Outbox } from '../src/outbox.js';
import { createSender } from '../src/sender.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { createGotTransport } from '../src/transport/got-transport.js';
import { closedAfterEach, enqueueMany, expectAllDelivered, FAST_RETRY, newSecret, waitFor } from './outbox-helpers.js';
import { startTestProxy, type ConnectReply, type TestProxy } from './transport/test-proxy.js';

const opened = closedAfterEach();
let proxy: TestProxy | undefined;
let dir: string | undefined;
afterEach(async () => {
  metrics.disable();
  await proxy?.close();
  proxy = undefined;
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const PASSWORD = 'pr0xy-pa55word';
const BASIC = Buffer.from(`egress:${PASSWORD}`).toString('base64');
const withCredentials = (url: string): string => url.replace('http://', `http://egress:${PASSWORD}@`);

async function startProxy(reply?: (target: string, index: number) => ConnectReply): Promise<TestProxy> {
  proxy = await startTestProxy(reply);
  return proxy;
}

/** Counter additions and gauge observations, as an OpenTelemetry SDK would export them. */
function recordMetrics(): () => Promise<unknown[]> {
  const seen: unknown[] = [];
  const callbacks = new Set<BatchObservableCallback>();
  const meter = {
    createCounter: (name: string) => ({ add: (value: number, attributes?: Attributes) => seen.push({ name, value, attributes }) }),
    createObservableGauge: () => ({ addCallback() {}, removeCallback() {} }) as Observable,
    addBatchObservableCallback: (callback: BatchObservableCallback) => callbacks.add(callback),
    removeBatchObservableCallback: (callback: BatchObservableCallback) => callbacks.delete(callback),
  } as unknown as Meter;
  metrics.setGlobalMeterProvider({ getMeter: () => meter });
  return async () => {
    for (const callback of callbacks) {
      await callback({ observe: (_observable: Observable, value: number, attributes?: Attributes) => seen.push({ value, attributes }) });
    }
    return seen;
  };
}

describe('Outbox with a proxy', () => {
  it('delivers every event once, signed, each one through the proxy with its credentials', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    const px = await startProxy();
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, signingSecret: secret, proxy: withCredentials(px.url), retry: FAST_RETRY }));
    const enqueued = await enqueueMany(box, 40);
    await box.drain({ timeoutMs: 10_000 });
    expect(await box.deadLetters()).toEqual([]);
    expectAllDelivered(rx, enqueued);
    expect(rx.requests).toHaveLength(40);
    // Every request went through a tunnel of the proxy: it carried each webhook-id once.
    expect(px.tunnelledIds().sort()).toEqual([...enqueued.keys()].sort());
    expect(px.seen.length).toBeGreaterThan(0);
    for (const seen of px.seen) expect(seen).toEqual({ method: 'CONNECT', target: `127.0.0.1:${rx.port}`, auth: `Basic ${BASIC}` });
    // Keep-alive through the proxy: at most one tunnel per concurrent request, not one per event.
    expect(px.tunnels).toBeLessThanOrEqual(16);
  });

  it('keeps the events while the proxy is down and delivers them once it is back: nothing lost, nothing twice', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    const px = await startProxy();
    await px.refuseConnections();
    const box = (opened.outbox = await Outbox.open({
      store: new MemoryStore(),
      url: rx.url,
      signingSecret: secret,
      proxy: withCredentials(px.url),
      retry: { ...FAST_RETRY, maxDelayMs: 50 },
    }));
    const retries: RetryEvent[] = [];
    box.on('retry', (event) => retries.push(event));
    const enqueued = await enqueueMany(box, 30);
    await waitFor(() => retries.length >= 5, 10_000, 'five failed attempts');
    expect(rx.requests).toHaveLength(0);
    expect(box.stats().pending).toBe(30);
    expect(retries[0]?.error).toBe('ERR_NETWORK ECONNREFUSED');
    await px.acceptConnections();
    await box.drain({ timeoutMs: 20_000 });
    expect(await box.deadLetters()).toEqual([]);
    expectAllDelivered(rx, enqueued);
    for (const id of enqueued.keys()) expect(rx.countById(id)).toBe(1);
  });

  it.each([403])('makes an event the proxy answers %i to a dead letter `invalid` after one attempt', async (status) => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const px = await startProxy(() => status);
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, proxy: withCredentials(px.url), retry: FAST_RETRY }));
    const dead: DeadEvent[] = [];
    const retries: RetryEvent[] = [];
    box.on('dead', (event) => dead.push(event));
    box.on('retry', (event) => retries.push(event));
    const { id } = await box.enqueue({ body: { denied: true } });
    await box.drain({ timeoutMs: 10_000 });
    expect(retries).toEqual([]);
    expect(dead).toEqual([{ id, url: rx.url, reason: 'invalid', attempts: 1, status: undefined }]);
    const [letter] = await box.deadLetters();
    expect(letter).toMatchObject({ id, reason: 'invalid', attempts: 1 });
    expect(letter?.history.map((attempt) => [attempt.status, attempt.error])).toEqual([[undefined, `ERR_NETWORK EPROXY: the proxy answered HTTP ${status}`]]);
    expect(px.seen).toHaveLength(1);
    expect(rx.requests).toHaveLength(0);
  });

  it('retries an event the proxy answers 502 and 503 to (it could not reach the endpoint)', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const px = await startProxy((_target, index) => [502, 503][index] ?? 'tunnel');
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, proxy: px.url, retry: FAST_RETRY }));
    const retries: RetryEvent[] = [];
    box.on('retry', (event) => retries.push(event));
    const { id } = await box.enqueue({ body: { later: true } });
    await box.drain({ timeoutMs: 10_000 });
    expect(retries.map((r) => [r.status, r.error])).toEqual([
      [undefined, 'ERR_NETWORK EPROXY: the proxy answered HTTP 502'],
      [undefined, 'ERR_NETWORK EPROXY: the proxy answered HTTP 503'],
    ]);
    expect(rx.deliveredIds()).toEqual(new Set([id]));
  });

  it('never shows the proxy password: errors, events, dead letters, find(), stats, metrics', async () => {
    const collect = recordMetrics();
    const rx = (opened.receiver = await startFlakyReceiver());
    // Down first (a retry), then 403 for the first event, then tunnels.
    const px = await startProxy((_target, index) => (index === 0 ? 403 : 'tunnel'));
    await px.refuseConnections();
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, proxy: withCredentials(px.url), retry: { ...FAST_RETRY, maxDelayMs: 20 }, name: 'proxied' }));
    const shown: unknown[] = [];
    for (const name of ['delivered', 'retry', 'dead', 'error', 'circuit'] as const) box.on(name, (event: unknown) => shown.push(event));
    const denied = await box.enqueue({ body: { n: 1 } });
    await waitFor(() => shown.length >= 2, 10_000, 'two failed attempts');
    await px.acceptConnections();
    const delivered = await box.enqueue({ body: { n: 2 } });
    await box.drain({ timeoutMs: 10_000 });
    const sender = createSender({ url: rx.url, proxy: withCredentials(px.url), retry: { ...FAST_RETRY, maxAttempts: 1 } });
    await px.refuseConnections();
    const sendError = await sender.send({ body: { n: 3 } }).catch((e: unknown) => e);
    await sender.close();
    expect(sendError).toMatchObject({ code: 'ERR_RETRIES_EXHAUSTED', cause: { errno: 'ECONNREFUSED' } });
    const everything = [
      shown,
      await box.deadLetters(),
      await box.find(denied.id),
      await box.find(delivered.id),
      box.stats(),
      await collect(),
      rx.requests,
    ];
    const text = JSON.stringify(everything, (_key, value: unknown) =>
      value instanceof Error ? { message: value.message, stack: value.stack, cause: value.cause } : value,
    );
    const errorText = [String(sendError), (sendError as Error).stack, JSON.stringify(sendError), String((sendError as Error).cause), ((sendError as Error).cause as Error).stack].join('\n');
    expect(text).toContain('the proxy answered HTTP 403');
    expect(errorText).toContain(`The proxy ${px.url} could not be reached: ECONNREFUSED`);
    for (const secret of [PASSWORD, BASIC]) {
      expect(text).not.toContain(secret);
      expect(errorText).not.toContain(secret);
    }
  });
});

describe('createSender with a proxy', () => {
  it('delivers through the proxy, and rejects at once with a ProxyError when the proxy denies the endpoint', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    const px = await startProxy((_target, index) => (index === 0 ? 'tunnel' : 403));
    const sender = createSender({ url: rx.url, signingSecret: secret, proxy: withCredentials(px.url), retry: FAST_RETRY });
    try {
      expect(await sender.send({ id: 'msg_through', body: { ok: true } })).toMatchObject({ status: 200, attempts: 1 });
      expect(rx.requests.map((r) => [r.id, r.signatureValid])).toEqual([['msg_through', true]]);
      expect(px.tunnelledIds()).toEqual(['msg_through']);
      // A new endpoint needs a new tunnel, which the proxy denies: no retry, no wait.
      const error = await sender.send({ url: rx.url.replace('127.0.0.1', 'localhost'), body: { ok: false } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProxyError);
      expect(error).toMatchObject({ code: 'ERR_NETWORK', errno: 'EPROXY', proxyStatus: 403 });
      expect(px.seen.map((s) => s.target)).toEqual([`127.0.0.1:${rx.port}`, `localhost:${rx.port}`]);
      expect(String((error as Error).message)).not.toContain(PASSWORD);
    } finally {
      await sender.close();
    }
  });
});

describe('the proxy option', () => {
  it.each([
    ['a SOCKS proxy', { proxy: `socks5://egress:${PASSWORD}@127.0.0.1:1080` }, 'proxy'],
    ['a proxy URL without a scheme', { proxy: `egress:${PASSWORD}@127.0.0.1:3128` }, 'proxy'],
    ['a proxy with blockPrivateAddresses', { proxy: 'http://127.0.0.1:3128', blockPrivateAddresses: true }, 'blockPrivateAddresses'],
    ['a proxy with a transport of your own', { proxy: 'http://127.0.0.1:3128', transport: createGotTransport() }, 'proxy'],
  ])('refuses %s at open, with nothing written', async (_what, options, option) => {
    dir = await mkdtemp(join(tmpdir(), 'outbox-proxy-'));
    const outboxDir = join(dir, 'outbox');
    const error = await Outbox.open({ dir: outboxDir, url: 'http://127.0.0.1:9/hook', ...options }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_INVALID_OPTION', option });
    expect((error as Error).message).not.toContain(PASSWORD);
    expect(await readdir(dir)).toEqual([]);
    expect(() => createSender({ url: 'http://127.0.0.1:9/hook', ...options })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }));
  });
});
