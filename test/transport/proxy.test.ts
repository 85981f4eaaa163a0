import { afterEach, describe, expect, it } from 'vitest';
import { ProxyError, type NetworkError } from '../../src/errors.js';
import { classifyError } from '../../src/retry/classify.js';
import { startFlakyReceiver, type FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { createGotTransport } from '../../src/transport/got-transport.js';
import type { Transport } from '../../src/transport/transport.js';
import { startTestProxy, type ConnectReply, type TestProxy } from './test-proxy.js';
import { transportRequest as request } from './request.js';

const PASSWORD = 'pr0xy-pa55word';
const BASIC = Buffer.from(`egress:${PASSWORD}`).toString('base64');

let receiver: FlakyReceiver | undefined;
let proxy: TestProxy | undefined;
let transport: Transport | undefined;
afterEach(async () => {
  await transport?.close?.();
  await receiver?.close();
  await proxy?.close();
  receiver = undefined;
  proxy = undefined;
  transport = undefined;
});


const withCredentials = (url: string): string => url.replace('http://', `http://egress:${PASSWORD}@`);

async function setUp(reply?: (target: string, index: number) => ConnectReply): Promise<{ receiver: FlakyReceiver; proxy: TestProxy }> {
  receiver = await startFlakyReceiver();
  proxy = await startTestProxy(reply);
  return { receiver, proxy };
}

/** Everything an error would show: message, stack, cause, and its JSON. */
function shown(error: unknown): string {
  const e = error as Error & { cause?: Error };
  return [e.message, e.stack, e.cause?.message, e.cause?.stack, JSON.stringify(e), JSON.stringify(e.cause)].join('\n');
}

describe('createGotTransport({ proxy })', () => {
  it('tunnels an http endpoint through CONNECT with Proxy-Authorization, and keeps the connection alive', async () => {
    const { receiver, proxy } = await setUp();
    transport = createGotTransport({ proxy: withCredentials(proxy.url) });
    for (const id of ['msg_1', 'msg_2', 'msg_3']) {
      const response = await transport.send(request(receiver.url, { headers: { 'content-type': 'application/json', 'webhook-id': id } }));
      expect(response.status).toBe(200);
    }
    expect(receiver.requests.map((r) => [r.id, r.body])).toEqual([
      ['msg_1', '{"hello":"world"}'],
      ['msg_2', '{"hello":"world"}'],
      ['msg_3', '{"hello":"world"}'],
    ]);
    expect(proxy.tunnelledIds()).toEqual(['msg_1', 'msg_2', 'msg_3']);
    expect(proxy.seen).toEqual([{ method: 'CONNECT', target: `127.0.0.1:${receiver.port}`, auth: `Basic ${BASIC}` }]);
    // Proxy credentials are for the proxy: the receiver never sees them.
    expect(JSON.stringify(receiver.requests)).not.toContain(BASIC);
  });

  it('sends no Proxy-Authorization when the proxy URL has no credentials', async () => {
    const { receiver, proxy } = await setUp();
    transport = createGotTransport({ proxy: proxy.url });
    expect((await transport.send(request(receiver.url))).status).toBe(200);
    expect(proxy.seen).toEqual([{ method: 'CONNECT', target: `127.0.0.1:${receiver.port}`, auth: undefined }]);
  });

  it('sends an https endpoint through CONNECT too; a 403 answer is a ProxyError, not retried, without the credentials', async () => {
    const { proxy } = await setUp(() => 403);
    transport = createGotTransport({ proxy: withCredentials(proxy.url) });
    const error = await transport.send(request('https://hooks.example.com/in')).catch((e: unknown) => e);
    expect(proxy.seen).toEqual([{ method: 'CONNECT', target: 'hooks.example.com:443', auth: `Basic ${BASIC}` }]);
    expect(error).toBeInstanceOf(ProxyError);
    expect(error).toMatchObject({ code: 'ERR_NETWORK', errno: 'EPROXY', proxyStatus: 403 });
    expect((error as Error).message).toBe(`The proxy ${proxy.url} answered HTTP 403 to CONNECT hooks.example.com:443: a destination the proxy denies`);
    expect(classifyError(error as NetworkError)).toEqual({ retryable: false, throttled: false });
    expect(shown(error)).not.toContain(PASSWORD);
    expect(shown(error)).not.toContain(BASIC);
  });

  it('403 is permanent; 407 (its credentials) is retried; 502, 503 and 504 from the proxy are retried as throttling', async () => {
    const statuses = [403, 407, 502, 503, 504];
    const { receiver, proxy } = await setUp((_target, index) => statuses[index] ?? 'tunnel');
    transport = createGotTransport({ proxy: withCredentials(proxy.url) });
    const classes = [];
    for (const status of statuses) {
      const error = await transport.send(request(receiver.url)).catch((e: unknown) => e);
      expect(error).toMatchObject({ proxyStatus: status });
      expect(shown(error)).not.toContain(PASSWORD);
      classes.push(classifyError(error as NetworkError));
    }
    expect(classes).toEqual([
      { retryable: false, throttled: false },
      { retryable: true, throttled: false },
      { retryable: true, throttled: true },
      { retryable: true, throttled: true },
      { retryable: true, throttled: true },
    ]);
    expect(receiver.requests).toHaveLength(0);
    // The same transport goes through once the proxy lets it.
    expect((await transport.send(request(receiver.url))).status).toBe(200);
  });

  it('a proxy that refuses connections, or whose name does not resolve, is a retried ProxyError', async () => {
    const { receiver, proxy } = await setUp();
    transport = createGotTransport({ proxy: withCredentials(proxy.url) });
    await proxy.refuseConnections();
    const refused = await transport.send(request(receiver.url)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProxyError);
    expect(refused).toMatchObject({ code: 'ERR_NETWORK', errno: 'ECONNREFUSED', proxyStatus: undefined });
    expect((refused as Error).message).toBe(`The proxy ${proxy.url} could not be reached: ECONNREFUSED`);
    expect(classifyError(refused as NetworkError)).toEqual({ retryable: true, throttled: false });
    expect(shown(refused)).not.toContain(PASSWORD);
    await transport.close?.();
    // `.invalid` never resolves (RFC 2606); without a proxy, ENOTFOUND is not retried (a mistyped URL).
    transport = createGotTransport({ proxy: `http://egress:${PASSWORD}@proxy.invalid:3128` });
    const unresolved = await transport.send(request(receiver.url)).catch((e: unknown) => e);
    expect(unresolved).toMatchObject({ errno: 'ENOTFOUND', proxyStatus: undefined });
    expect(classifyError(unresolved as NetworkError)).toEqual({ retryable: true, throttled: false });
    expect(shown(unresolved)).not.toContain(PASSWORD);
  });

  it('ends an attempt at its timeout while the proxy never answers CONNECT, and on abort', async () => {
    const { receiver, proxy } = await setUp(() => 'hang');
    transport = createGotTransport({ proxy: proxy.url });
    // got's own timeout cannot end a request still waiting for its tunnel; the transport's deadline does.
    const hung = await transport.send(request(receiver.url, { timeoutMs: 100 })).catch((e: unknown) => e);
    expect(hung).toMatchObject({ code: 'ERR_TIMEOUT', message: `The request timed out (through the proxy ${proxy.url})` });
    const controller = new AbortController();
    const pending = transport.send(request(receiver.url, { signal: controller.signal }));
    while (proxy.seen.length < 2) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('says which proxy a failure went through when the endpoint itself drops the connection', async () => {
    const { receiver, proxy } = await setUp();
    receiver.setScript([{ drop: true }]);
    transport = createGotTransport({ proxy: withCredentials(proxy.url) });
    const error = await transport.send(request(receiver.url)).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(ProxyError);
    expect(error).toMatchObject({ code: 'ERR_NETWORK', errno: 'ECONNRESET', message: `The request failed: ECONNRESET (through the proxy ${proxy.url})` });
  });
});

describe('the proxy option', () => {
  it.each([
    ['not a string', 3128, 'got 3128'],
    ['not a URL', 'http//proxy', 'not an absolute URL'],
    ['without a scheme', `egress:${PASSWORD}@proxy:3128`, 'no scheme'],
    ['of another scheme', `ftp://egress:${PASSWORD}@proxy:3128`, 'another scheme'],
    ['a SOCKS URL', `socks5://egress:${PASSWORD}@proxy:1080`, 'SOCKS proxies are not supported'],
    ['with a path', `http://egress:${PASSWORD}@proxy:3128/pac.js`, 'no path, query or fragment'],
    ['with a query', `http://proxy:3128/?token=${PASSWORD}`, 'no path, query or fragment'],
    ['an IPv6 literal', 'http://[::1]:3128', 'IPv6'],
  ])('refuses a value %s, without quoting it', (_what, value, problem) => {
    const error = (() => {
      try {
        createGotTransport({ proxy: value as string });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'proxy' });
    expect((error as Error).message).toContain(problem);
    expect((error as Error).message).not.toContain(PASSWORD);
    expect((error as Error).message).not.toContain('egress');
  });

  it('accepts http: and https: proxies, with or without credentials and a trailing slash', () => {
    for (const proxy of ['http://proxy:3128', 'https://proxy.internal', `http://egress:${PASSWORD}@proxy:3128/`]) {
      const made = createGotTransport({ proxy });
      void made.close?.();
    }
  });

  it('refuses blockPrivateAddresses with a proxy: the addresses are the proxy\'s to see', () => {
    expect(() => createGotTransport({ proxy: 'http://proxy:3128', blockPrivateAddresses: true })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'blockPrivateAddresses', message: expect.stringContaining('Filter at the proxy') }),
    );
  });
});
