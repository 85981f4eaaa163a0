import { spawn } from 'node:child_process';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtPackage } from '../cli/run-cli.js';

const built = builtPackage();
let server: net.Server;
let port: number;
const sockets = new Set<Socket>();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  // A proxy that answers CONNECT one byte every 50 ms and never finishes the head.
  server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => {
      const head = 'HTTP/1.1 200 Connection Established\r\nX-Pad: ' + 'a'.repeat(10_000);
      let i = 0;
      const t = setInterval(() => (socket.destroyed ? clearInterval(t) : socket.write(head[i++ % head.length] ?? 'a')), 50);
      timers.add(t);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const t of timers) clearInterval(t);
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

describe('process exit with a slow proxy', () => {
  it('a process exits after sender.close() although the proxy trickles its CONNECT answer (timeoutMs 300)', async () => {
    const script = `
      const { createSender } = await import(${JSON.stringify(built.indexUrl)});
      const sender = createSender({ proxy: 'http://egress:s3cret@127.0.0.1:${port}', timeoutMs: 300, retry: { maxAttempts: 1 } });
      const out = await sender.send({ url: 'http://127.0.0.1:9/hook', body: {} }).then(() => 'ok', (e) => e.code);
      await sender.close();
      console.log('closed', out);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    const exited = new Promise<string>((r) => child.on('exit', (code) => r(`exited ${code}`)));
    // 20x timeoutMs after close is far more than "up to timeoutMs".
    const outcome = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running 6 s later'), 6_000))]);
    child.kill('SIGKILL');
    expect(text).toContain('closed');
    expect(outcome).toBe('exited 0');
  }, 20_000);
});
