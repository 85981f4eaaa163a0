import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkEndpointUrl } from '../../src/endpoint-check.js';
import { createSender } from '../../src/sender.js';
import { NetworkError } from '../../src/errors.js';
import { Outbox } from '../../src/outbox.js';
import { checkPrivateAddressPolicy } from '../../src/options.js';
import { MemoryStore } from '../../src/store/memory.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { createGotTransport, gotTransport } from '../../src/transport/got-transport.js';
import { createAddressGuard, isPrivateAddress, type HostResolver } from '../../src/transport/private-addresses.js';
import { closedAfterEach, FAST_RETRY } from '../outbox-helpers.js';

const PUBLIC_URL = 'https://hooks.example.com/in';

describe('isPrivateAddress', () => {
  it.each([
    '0.0.0.0', '10.1.2.3', '100.64.0.1', '127.0.0.1', '127.255.255.254', '169.254.169.254', '172.16.0.1', '172.31.255.255',
    '192.0.0.8', '192.0.2.1', '192.168.1.1', '198.18.0.1', '198.51.100.7', '203.0.113.9', '224.0.0.1', '240.0.0.1', '255.255.255.255',
    '::', '::1', 'fe80::1', 'fd00::1', 'fc00::1', 'ff02::1', 'fec0::1', '::ffff:10.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254',
    '64:ff9b::10.0.0.1', '64:ff9b::a9fe:a9fe', '2002:a00:1::1', '2002:7f00:1::', '2001:db8::1', '2001::1', '100::1',
    'not-an-address', '',
  ])('refuses %s', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each(['8.8.8.8', '93.184.216.34', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '64:ff9b::8.8.4.4', '2002:808:808::1'])(
    'lets %s through',
    (address) => {
      expect(isPrivateAddress(address)).toBe(false);
    },
  );
});

describe('the blockPrivateAddresses option', () => {
  it.each([
    ['yes', 'blockPrivateAddresses'],
    [null, 'blockPrivateAddresses'],
    [['10.0.0.0/8'], 'blockPrivateAddresses'],
    [{ allow: '10.0.0.0/8' }, 'blockPrivateAddresses'],
    [{ allow: [], deny: [] }, 'blockPrivateAddresses'],
    [{ allow: Array.from({ length: 101 }, () => '10.0.0.1') }, 'blockPrivateAddresses'],
    [{ allow: ['10.0.0.0/33'] }, 'blockPrivateAddresses.allow[0]'],
    [{ allow: ['::1', 'fd00::/129'] }, 'blockPrivateAddresses.allow[1]'],
    [{ allow: ['10.0.0.0/8/8'] }, 'blockPrivateAddresses.allow[0]'],
    [{ allow: ['10.0.0.0/x'] }, 'blockPrivateAddresses.allow[0]'],
    [{ allow: ['intranet.local'] }, 'blockPrivateAddresses.allow[0]'],
    [{ allow: [10] }, 'blockPrivateAddresses.allow[0]'],
  ])('refuses %j, naming %s', (value, option) => {
    expect(() => checkPrivateAddressPolicy(value)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }));
  });

  it('allows what `allow` names, as addresses and ranges of either family', () => {
    const guard = checkPrivateAddressPolicy({ allow: ['10.20.0.0/16', '127.0.0.1', 'fd00::/8'] });
    expect(guard?.blocks('10.20.3.4')).toBe(false);
    expect(guard?.blocks('10.21.0.1')).toBe(true);
    expect(guard?.blocks('127.0.0.1')).toBe(false);
    expect(guard?.blocks('::ffff:127.0.0.1')).toBe(false);
    expect(guard?.blocks('127.0.0.2')).toBe(true);
    expect(guard?.blocks('fd12::1')).toBe(false);
    expect(guard?.blocks('fe80::1')).toBe(true);
    expect(checkPrivateAddressPolicy(false)).toBeUndefined();
  });

  it('is refused with a transport of your own, which it could not guard', async () => {
    const transport = createGotTransport();
    await expect(Outbox.open({ store: new MemoryStore(), url: PUBLIC_URL, transport, blockPrivateAddresses: true })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'blockPrivateAddresses',
    });
    expect(() => createSender({ transport, blockPrivateAddresses: true })).toThrow(expect.objectContaining({ option: 'blockPrivateAddresses' }));
    await transport.close?.();
  });
});

describe('an outbox with blockPrivateAddresses', () => {
  const opened = closedAfterEach();

  it('refuses private IP literals and localhost at once, as the default url and per message, and stores nothing', async () => {
    await expect(Outbox.open({ store: new MemoryStore(), url: 'http://169.254.169.254/latest', blockPrivateAddresses: true })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'url',
    });
    opened.outbox = await Outbox.open({ store: new MemoryStore(), url: PUBLIC_URL, blockPrivateAddresses: true, autoFlush: false });
    const outbox = opened.outbox;
    for (const url of ['http://127.0.0.1:8080/', 'http://[::1]/', 'http://0x7f.1/', 'http://2130706433/', 'http://[::ffff:10.0.0.1]/', 'http://LOCALHOST./', 'http://api.localhost/']) {
      await expect(outbox.enqueue({ url, body: 1 }), url).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
    }
    await expect(outbox.replay([], { url: 'http://10.0.0.1/' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'url' });
    await expect(outbox.moveEndpoint(PUBLIC_URL, 'http://192.168.0.10/')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'to' });
    await outbox.enqueue({ url: 'https://8.8.8.8/hook', body: 2 });
    expect(outbox.stats()).toMatchObject({ pending: 1, dead: 0 });
  });

  it('delivers to an allowed address, reaching a name through the addresses the guard let through', async () => {
    opened.receiver = await startFlakyReceiver();
    const url = opened.receiver.url.replace('127.0.0.1', 'localhost');
    opened.outbox = await Outbox.open({ store: new MemoryStore(), url, blockPrivateAddresses: { allow: ['127.0.0.1'] }, retry: FAST_RETRY });
    const { id } = await opened.outbox.enqueue({ body: { n: 1 } });
    await opened.outbox.drain({ timeoutMs: 5_000 });
    expect(opened.receiver.countById(id)).toBe(1);
  });

  it('turns an event queued before the option was on into a dead letter, without sending it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wo-private-'));
    try {
      opened.receiver = await startFlakyReceiver();
      const before = await Outbox.open({ dir, url: opened.receiver.url, autoFlush: false });
      const { id } = await before.enqueue({ body: { n: 1 } });
      await before.close();
      opened.outbox = await Outbox.open({ dir, url: PUBLIC_URL, blockPrivateAddresses: true, retry: FAST_RETRY });
      await opened.outbox.drain({ timeoutMs: 5_000 });
      const [letter] = await opened.outbox.deadLetters();
      expect(letter).toMatchObject({ id, reason: 'invalid', attempts: 1 });
      expect(letter?.history.map((attempt) => attempt.error)).toEqual(['ERR_NETWORK EPRIVATEADDRESS']);
      expect(opened.receiver.requests).toHaveLength(0);
    } finally {
      await opened.outbox?.close();
      delete opened.outbox;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Answers names of the test's own: what DNS would say for them at connection time. */
function resolver(names: Record<string, string[]>): HostResolver {
  return (hostname, _options, callback) => {
    const addresses = names[hostname];
    if (addresses === undefined) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    else callback(null, addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
}

describe('checkEndpointUrl, for a URL a customer registers', () => {
  const resolve = resolver({ 'hooks.example.com': ['93.184.216.34', '2606:2800:220:1::1'], 'rebound.test': ['10.0.0.7'], 'mixed.test': ['10.0.0.7', '8.8.8.8'] });

  it('reports what the outbox would refuse when sending, and why', async () => {
    const block = { blockPrivateAddresses: true, resolve } as const;
    expect(await checkEndpointUrl('https://hooks.example.com/in', block)).toEqual({ ok: true, addresses: ['93.184.216.34', '2606:2800:220:1::1'] });
    expect(await checkEndpointUrl('https://mixed.test/in', block)).toEqual({ ok: true, addresses: ['8.8.8.8'] });
    expect(await checkEndpointUrl('https://rebound.test/in', block)).toMatchObject({ ok: false, reason: 'private-address', message: 'rebound.test resolves only to private or non-public addresses; blockPrivateAddresses refuses it' });
    expect(await checkEndpointUrl('http://169.254.169.254/latest', block)).toMatchObject({ ok: false, reason: 'private-address' });
    expect(await checkEndpointUrl('http://localhost:3000/', block)).toMatchObject({ ok: false, reason: 'private-address' });
    expect(await checkEndpointUrl('https://8.8.8.8/', block)).toEqual({ ok: true, addresses: ['8.8.8.8'] });
    expect(await checkEndpointUrl('https://typo.example.con/', block)).toMatchObject({ ok: false, reason: 'unresolvable', message: expect.stringContaining('ENOTFOUND') });
    expect(await checkEndpointUrl('ftp://user:hunter2@files.test/', block)).toMatchObject({ ok: false, reason: 'invalid-url' });
    expect(JSON.stringify(await checkEndpointUrl('ftp://user:hunter2@files.test/', block))).not.toContain('hunter2');
    expect(await checkEndpointUrl('http://unix:/var/run/app.sock:/hook', { resolve })).toMatchObject({ ok: false, reason: 'invalid-url', message: expect.stringContaining('Unix domain socket') });
  });

  it('without blockPrivateAddresses checks the form and that the host resolves; allow lets addresses through', async () => {
    expect(await checkEndpointUrl('https://rebound.test/in', { resolve })).toEqual({ ok: true, addresses: ['10.0.0.7'] });
    expect(await checkEndpointUrl('https://rebound.test/in', { resolve, blockPrivateAddresses: { allow: ['10.0.0.0/24'] } })).toEqual({ ok: true, addresses: ['10.0.0.7'] });
    expect(await checkEndpointUrl('https://nowhere.test/', { resolve })).toMatchObject({ ok: false, reason: 'unresolvable' });
    await expect(checkEndpointUrl('https://x.test/', { blockPrivateAddresses: 'yes' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });
});

describe('the guarded got transport', () => {
  const opened = closedAfterEach();

  it('refuses a name that resolves only to private addresses when it connects, and sends nothing', async () => {
    opened.receiver = await startFlakyReceiver();
    const { port } = new URL(opened.receiver.url);
    const transport = gotTransport({}, createAddressGuard(undefined, resolver({ 'rebound.test': ['10.0.0.1', '127.0.0.1'] })));
    try {
      const sent = transport.send({ url: `http://rebound.test:${port}/`, headers: { 'webhook-id': 'msg_1' }, body: Buffer.from('{}'), timeoutMs: 2_000 });
      await expect(sent).rejects.toBeInstanceOf(NetworkError);
      await expect(sent).rejects.toMatchObject({ code: 'ERR_NETWORK', errno: 'EPRIVATEADDRESS', message: expect.stringContaining('rebound.test resolves only to private') });
      // Whoever typed the URL does not learn what an internal name resolves to.
      await expect(sent).rejects.toSatisfy((error: Error) => !`${error.message} ${String((error.cause as Error).message)}`.includes('10.0.0.1'));
      const literal = transport.send({ url: opened.receiver.url, headers: { 'webhook-id': 'msg_2' }, body: Buffer.from('{}'), timeoutMs: 2_000 });
      await expect(literal).rejects.toMatchObject({ errno: 'EPRIVATEADDRESS' });
      expect(opened.receiver.requests).toHaveLength(0);
    } finally {
      await transport.close?.();
    }
  });

  it('connects to the allowed one of the addresses a name resolves to', async () => {
    opened.receiver = await startFlakyReceiver();
    const { port } = new URL(opened.receiver.url);
    const allowed = new BlockList();
    allowed.addAddress('127.0.0.1');
    const transport = gotTransport({}, createAddressGuard(allowed, resolver({ 'mixed.test': ['10.0.0.1', '127.0.0.1'] })));
    try {
      const response = await transport.send({ url: `http://mixed.test:${port}/hook`, headers: { 'webhook-id': 'msg_3' }, body: Buffer.from('{}'), timeoutMs: 2_000 });
      expect(response.status).toBe(200);
      expect(opened.receiver.countById('msg_3')).toBe(1);
    } finally {
      await transport.close?.();
    }
  });

  it('lets createSender report the refusal at once, without retrying', async () => {
    const sender = createSender({ blockPrivateAddresses: true, retry: { baseDelayMs: 1, maxAttempts: 3 } });
    try {
      await expect(sender.send({ url: 'http://10.1.2.3/', body: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
    } finally {
      await sender.close();
    }
  });
});
