import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtPackage } from '../cli/run-cli.js';
import { createGotTransport } from '../../src/transport/got-transport.js';
import { startTestProxy, type TestProxy } from './test-proxy.js';

const built = builtPackage();
let certDir: string;
let server: Server;
let port: number;
let proxy: TestProxy;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'proxy-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'),
    '-days', '1', '-subj', '/CN=example.test', '-addext', 'subjectAltName=DNS:example.test'], { stdio: 'ignore' });
  server = createServer({ key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) }, (_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  proxy = await startTestProxy();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await proxy.close();
  rmSync(certDir, { recursive: true, force: true });
});

describe('TLS to the endpoint through the tunnel', () => {
  it('refuses an untrusted (self-signed) endpoint certificate through the proxy', async () => {
    const transport = createGotTransport({ proxy: proxy.url });
    const error = await transport.send({ url: `https://127.0.0.1:${port}/`, headers: {}, body: Buffer.from('{}'), timeoutMs: 5_000 }).catch((e: unknown) => e);
    await transport.close?.();
    expect(error).toMatchObject({ code: 'ERR_NETWORK' });
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('with the CA trusted (NODE_EXTRA_CA_CERTS), a certificate for another host name is refused through the proxy', async () => {
    const script = `
      const { createGotTransport } = await import(${JSON.stringify(built.indexUrl)});
      const t = createGotTransport({ proxy: ${JSON.stringify(proxy.url)} });
      const out = await t.send({ url: 'https://127.0.0.1:${port}/', headers: {}, body: Buffer.from('{}'), timeoutMs: 5000 })
        .then((r) => 'status ' + r.status, (e) => 'error ' + e.code + ' ' + (e.cause && e.cause.code));
      await t.close();
      console.log(out);`;
    const output = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(certDir, 'cert.pem') } });
      let text = '';
      child.stdout.on('data', (c: Buffer) => (text += c.toString()));
      child.stderr.on('data', (c: Buffer) => (text += c.toString()));
      child.on('close', () => resolve(text.trim()));
    });
    expect(output).toBe('error ERR_NETWORK ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
