/**
 * A tiny real HTTP proxy on 127.0.0.1 for the tests: CONNECT is tunnelled to the target (or answered with
 * a status, or left hanging, on cue); it records what it saw,
 * `Proxy-Authorization` included. It can refuse connections for a while on the same port.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does with one CONNECT: tunnel it, answer it with this status, or never answer. */
export type ConnectReply = 'tunnel' | 'hang' | number;

/** One request the proxy received. */
export interface ProxySeen {
  method: string;
  /** `host:port` for CONNECT, the absolute URI otherwise. */
  target: string;
  /** The `Proxy-Authorization` header, if any. */
  auth: string | undefined;
}

/** A running test proxy. */
export interface TestProxy {
  /** `http://127.0.0.1:<port>`, without credentials. */
  readonly url: string;
  readonly port: number;
  /** Everything received, in order. */
  readonly seen: ProxySeen[];
  /** Tunnels opened: the CONNECTs that were answered 200. */
  readonly tunnels: number;
  /** The `webhook-id` of every request that went through a tunnel (read from the plaintext of http targets). */
  tunnelledIds(): string[];
  /** Stops listening and destroys every socket: connections are refused on the same port. */
  refuseConnections(): Promise<void>;
  /** Listens again on the same port. */
  acceptConnections(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy; `reply` decides each CONNECT (default: tunnel). */
export async function startTestProxy(reply: (target: string, index: number) => ConnectReply = () => 'tunnel'): Promise<TestProxy> {
  const seen: ProxySeen[] = [];
  const sockets = new Set<Socket>();
  let tunnels = 0;
  // What each tunnel carried towards the target, in the clear for an http endpoint.
  const traffic: string[] = [];
  let connects = 0;
  let server: Server | undefined;
  let port = 0;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const auth = (req: IncomingMessage): string | undefined => req.headers['proxy-authorization'];

  const listen = async (): Promise<void> => {
    // hpagent tunnels http endpoints too, so an absolute-URI request is only recorded (tests expect none).
    const s = createServer((req, res) => {
      seen.push({ method: req.method ?? '', target: req.url ?? '', auth: auth(req) });
      res.writeHead(405, { connection: 'close' });
      res.end('this proxy only tunnels');
    });
    s.on('connection', track);
    s.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
      const target = req.url ?? '';
      seen.push({ method: 'CONNECT', target, auth: auth(req) });
      const decision = reply(target, connects++);
      if (decision === 'hang') return;
      if (typeof decision === 'number') {
        client.end(`HTTP/1.1 ${decision} Refused\r\ncontent-length: 6\r\nconnection: close\r\n\r\ndenied`);
        return;
      }
      const [host = '', targetPort = ''] = target.split(/:(?=\d+$)/);
      const upstream = net.connect(Number(targetPort), host, () => {
        const index = tunnels++;
        traffic[index] = '';
        client.on('data', (chunk: Buffer) => {
          traffic[index] += chunk.toString('latin1');
        });
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      track(upstream);
      upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n'));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
    port = (s.address() as AddressInfo).port;
    server = s;
  };

  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (s === undefined) return;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    seen,
    get tunnels() {
      return tunnels;
    },
    tunnelledIds: () => traffic.flatMap((text) => [...text.matchAll(/^webhook-id: *(\S+)\r$/gim)].map((match) => match[1] ?? '')),
    refuseConnections: stop,
    acceptConnections: listen,
    close: stop,
  };
}
