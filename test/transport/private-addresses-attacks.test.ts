/**
 * blockPrivateAddresses against an attacker who controls the endpoint URL and its DNS (from the review of 6802016).
 */
import { BlockList, getDefaultAutoSelectFamily } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createSender } from '../../src/sender.js';
import { Outbox } from '../../src/outbox.js';
import { MemoryStore } from '../../src/store/memory.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { gotTransport } from '../../src/transport/got-transport.js';
import { createAddressGuard, isPrivateAddress, type HostResolver } from '../../src/transport/private-addresses.js';
import { closedAfterEach } from '../outbox-helpers.js';

function resolver(names: Record<string, string[]>, seen: string[] = []): HostResolver {
  return (hostname, options, callback) => {
    seen.push(`${hostname} family=${String(options.family)} all=${String(options.all)}`);
    const addresses = names[hostname];
    if (addresses === undefined) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    else callback(null, addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
}

const send = (transport: ReturnType<typeof gotTransport>, url: string, id = 'msg') =>
  transport.send({ url, headers: { 'webhook-id': id }, body: Buffer.from('{}'), timeoutMs: 2_000 });

describe('SSRF guard: URL spellings are normalised before the literal check', () => {
  const opened = closedAfterEach();
  it.each([
    'http://0x7f.1/', 'http://0177.0.0.1/', 'http://127.1/', 'http://2130706433/', 'http://0x7f000001/', 'http://127.0.0.1./',
    'http://%31%32%37.0.0.1/', 'http://\uff11\uff12\uff17.0.0.1/', 'http://0/', 'http://[::]/', 'http://[::1]/', 'http://[0:0:0:0:0:0:0:1]/',
    'http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/', 'http://[::127.0.0.1]/', 'http://[64:ff9b::127.0.0.1]/', 'http://[64:ff9b::a9fe:a9fe]/',
    'http://[2002:a9fe:a9fe::1]/', 'http://[fe80::1]/', 'http://[fd00:ec2::254]/', 'http://[::ffff:0:7f00:1]/', 'http://[2001::1]/',
    'http://169.254.169.254/', 'http://100.100.100.200/', 'http://LOCALHOST/', 'http://localhost./', 'http://foo.localhost/', 'http://user:pw@127.0.0.1/',
  ])('refuses %s at enqueue and in the transport', async (url) => {
    opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'https://hooks.example.com/', blockPrivateAddresses: true, autoFlush: false });
    await expect(opened.outbox.enqueue({ url, body: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
    const transport = gotTransport({}, createAddressGuard(undefined, resolver({})));
    await expect(send(transport, url)).rejects.toMatchObject({ errno: 'EPRIVATEADDRESS' });
    await transport.close?.();
  });
});

describe('SSRF guard: names checked at connection time', () => {
  const opened = closedAfterEach();

  it('Node 20 uses autoSelectFamily (happy eyeballs) by default; the guard gets all: true and filters', async () => {
    expect(getDefaultAutoSelectFamily()).toBe(true);
    opened.receiver = await startFlakyReceiver();
    const seen: string[] = [];
    const allowed = new BlockList();
    allowed.addAddress('127.0.0.1');
    const transport = gotTransport({}, createAddressGuard(allowed, resolver({ 'mixed.test': ['::1', '10.0.0.1', '::ffff:169.254.169.254', '127.0.0.1'] }, seen)));
    const response = await send(transport, opened.receiver.url.replace('127.0.0.1', 'mixed.test'), 'm1');
    expect(response.status).toBe(200);
    expect(seen[0]).toContain('all=true');
    await transport.close?.();
  });

  it.each([
    [['::1']], [['::ffff:127.0.0.1']], [['::ffff:7f00:1']], [['64:ff9b::7f00:1']], [['2002:7f00:1::1']], [['::127.0.0.1']], [['0.0.0.0']],
    [['fe80::1%lo']], [['127.0.0.1', '::1']], [['10.0.0.1', '::ffff:10.0.0.1']],
  ])('refuses a name resolving to %j (no request sent)', async (addresses) => {
    opened.receiver = await startFlakyReceiver();
    const transport = gotTransport({}, createAddressGuard(undefined, resolver({ 'evil.test': addresses })));
    await expect(send(transport, `http://evil.test:${opened.receiver.port}/`)).rejects.toMatchObject({ code: 'ERR_NETWORK', errno: 'EPRIVATEADDRESS' });
    expect(opened.receiver.requests).toHaveLength(0);
    await transport.close?.();
  });

  it('https goes through the same lookup (refused before any TLS)', async () => {
    opened.receiver = await startFlakyReceiver();
    const transport = gotTransport({}, createAddressGuard(undefined, resolver({ 'secure.test': ['127.0.0.1'] })));
    await expect(send(transport, `https://secure.test:${opened.receiver.port}/`)).rejects.toMatchObject({ errno: 'EPRIVATEADDRESS' });
    expect(opened.receiver.requests).toHaveLength(0);
    await transport.close?.();
  });

  it('DNS rebinding after a keep-alive connection: a pooled socket stays on the address first allowed, a new name is looked up again', async () => {
    opened.receiver = await startFlakyReceiver();
    const names: Record<string, string[]> = { 'rebind.test': ['127.0.0.1'] };
    const allowed = new BlockList();
    allowed.addAddress('127.0.0.1');
    const guard = createAddressGuard(allowed, resolver(names));
    const transport = gotTransport({}, guard);
    expect((await send(transport, opened.receiver.url.replace('127.0.0.1', 'rebind.test'))).status).toBe(200);
    names['rebind.test'] = ['10.0.0.1'];
    names['other.test'] = ['10.0.0.1'];
    // Another host on the same port does not reuse rebind.test's pooled socket.
    await expect(send(transport, `http://other.test:${opened.receiver.port}/`)).rejects.toMatchObject({ errno: 'EPRIVATEADDRESS' });
    await transport.close?.();
  });

  it('a real name from /etc/hosts (getaddrinfo) is refused by createSender at once, not retried', async () => {
    opened.receiver = await startFlakyReceiver();
    const sender = createSender({ blockPrivateAddresses: true, retry: { baseDelayMs: 1, maxAttempts: 5 } });
    try {
      // `vm` and `runsc` resolve to 127.0.0.1 in this sandbox's /etc/hosts; localhost.localdomain-style names work alike.
      await expect(sender.send({ url: `http://vm:${opened.receiver.port}/`, body: 1 })).rejects.toMatchObject({ errno: 'EPRIVATEADDRESS' });
      expect(opened.receiver.requests).toHaveLength(0);
    } finally {
      await sender.close();
    }
  });

  it('redirects are not followed (a public receiver cannot 302 to the metadata service)', async () => {
    opened.receiver = await startFlakyReceiver({ script: [{ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } }] });
    const allowed = new BlockList();
    allowed.addAddress('127.0.0.1');
    const transport = gotTransport({}, createAddressGuard(allowed, resolver({})));
    const response = await send(transport, opened.receiver.url);
    expect(response.status).toBe(302);
    await transport.close?.();
  });

  it('proxy environment variables are ignored by got and Node 20', async () => {
    opened.receiver = await startFlakyReceiver();
    const saved = { ...process.env };
    process.env.HTTP_PROXY = 'http://127.0.0.1:9';
    process.env.http_proxy = 'http://127.0.0.1:9';
    try {
      const allowed = new BlockList();
      allowed.addAddress('127.0.0.1');
      const transport = gotTransport({}, createAddressGuard(allowed, resolver({})));
      expect((await send(transport, opened.receiver.url)).status).toBe(200);
      await transport.close?.();
    } finally {
      process.env = saved;
    }
  });
});

describe('SSRF guard: public addresses stay reachable', () => {
  it.each(['64:ff9b::5db8:d822', '2002:5db8:d822::1', '::ffff:93.184.216.34', '2606:2800:220:1::', '1.1.1.1', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '192.167.255.255', '192.169.0.0', '198.17.255.255', '198.20.0.0'])(
    '%s is public',
    (address) => expect(isPrivateAddress(address)).toBe(false),
  );
});
