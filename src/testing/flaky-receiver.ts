/**
 * A real HTTP receiver on 127.0.0.1 that misbehaves on cue: scripted statuses, drops, hangs, latency,
 * a capacity limit and connection refusals on the same port. It records every request with its
 * `webhook-id` and whether its Standard Webhooks signature verified.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyingKeys, verifyWebhook } from '../signing/sign.js';

/** How the receiver answers one request. */
export interface ReplySpec {
  /**
   * HTTP status to answer with.
   * @default 200
   */
  status?: number;
  /** Response headers, e.g. `{ 'retry-after': '1' }`. */
  headers?: Record<string, string>;
  /** Response body. */
  body?: string;
  /** Answer after this many milliseconds (on top of the receiver's `latencyMs`). */
  delayMs?: number;
  /** Destroy the socket without answering: the sender sees ECONNRESET / socket hang up. */
  drop?: boolean;
  /** Never answer; the socket is destroyed by `close()` or `refuseConnections()`. */
  hang?: boolean;
}

/** A status code alone, or a full {@link ReplySpec}. */
export type Reply = number | ReplySpec;

/**
 * What the receiver does: a list (the n-th scripted request gets `script[n]`, then 200 once the list is
 * used up) or a function of the request and its index among scripted requests. Requests refused for
 * capacity or sent to another path do not consume the script.
 */
export type ReplyScript = readonly Reply[] | ((req: ReceivedRequest, index: number) => Reply | Promise<Reply>);

/** One request as the receiver saw it. */
export interface ReceivedRequest {
  /** The `webhook-id` header. */
  id: string | undefined;
  /** The `webhook-timestamp` header. */
  timestamp: string | undefined;
  /** Whether the Standard Webhooks signature verified with the receiver's `secret`; `undefined` without one. */
  signatureValid: boolean | undefined;
  /** Request headers as Node parsed them (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
  /** The request body, decoded as UTF-8. */
  body: string;
  /** The status the receiver answered; `undefined` while pending and for drops and hangs. */
  status: number | undefined;
  /** `Date.now()` when the request arrived. */
  at: number;
  /** Requests in progress when this one arrived, including itself. */
  concurrency: number;
  /** The request method. */
  method: string;
  /** The request path with its query string. */
  path: string;
}

/** Options of {@link startFlakyReceiver}. */
export interface FlakyReceiverOptions {
  /**
   * A Standard Webhooks secret (`whsec_` + base64) or ed25519 public key (`whpk_`). When set, every
   * request's signature is verified with `verifyWebhook` and the result recorded in `signatureValid`; a bad
   * signature is recorded, not refused.
   * The timestamp is not held to a tolerance: tests often drive the sender with a fake clock.
   * @default undefined
   */
  secret?: string;
  /**
   * How to answer. See {@link ReplyScript}.
   * @default [] (always 200)
   */
  script?: ReplyScript;
  /**
   * More than this many requests in progress at once are answered 429 immediately.
   * @default Infinity
   */
  capacity?: number;
  /**
   * `Retry-After` value (seconds) sent with capacity 429s; none when undefined.
   * @default undefined
   */
  capacityRetryAfter?: number;
  /**
   * Milliseconds added before every scripted answer.
   * @default 0
   */
  latencyMs?: number;
  /**
   * The path webhooks are posted to; other paths get 404 and do not consume the script.
   * @default '/hook'
   */
  path?: string;
}

/** A running flaky receiver. Always `close()` it (in `afterEach`) so no handle leaks. */
export interface FlakyReceiver {
  /** `http://127.0.0.1:<port><path>`. */
  readonly url: string;
  /** The port; stays the same across `refuseConnections()` / `acceptConnections()`. */
  readonly port: number;
  /** Every request in arrival order (recorded once its body has been read). */
  readonly requests: ReceivedRequest[];
  /** The highest number of requests in progress at the same time. */
  readonly peakConcurrency: number;
  /** Requests in progress right now. */
  readonly inProgress: number;
  /** The `webhook-id`s that were answered with a 2xx. */
  deliveredIds(): Set<string>;
  /** How many requests carried this `webhook-id`. */
  countById(id: string): number;
  /** Replaces the script; a list starts again at its first entry. */
  setScript(script: ReplyScript): void;
  /** Changes the capacity limit (`Infinity` for none) and the `Retry-After` of its 429s. */
  setCapacity(capacity: number, retryAfter?: number): void;
  /** Stops listening and destroys open sockets: new connections get ECONNREFUSED on the same port. */
  refuseConnections(): Promise<void>;
  /** Listens again on the same port. */
  acceptConnections(): Promise<void>;
  /** Closes the server and every socket, including hanging and keep-alive ones. Idempotent. */
  close(): Promise<void>;
}

/** Starts a flaky receiver on 127.0.0.1 on a free port. */
export async function startFlakyReceiver(options: FlakyReceiverOptions = {}): Promise<FlakyReceiver> {
  const receiver = new FlakyReceiverImpl(options);
  await receiver.listen(0);
  return receiver;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

class FlakyReceiverImpl implements FlakyReceiver {
  readonly requests: ReceivedRequest[] = [];
  #server: Server;
  #port = 0;
  #path: string;
  #secret: string | undefined;
  #script: ReplyScript;
  #scriptIndex = 0;
  #capacity: number;
  #capacityRetryAfter: number | undefined;
  #latencyMs: number;
  #inProgress = 0;
  #peak = 0;
  #sockets = new Set<Socket>();
  #timers = new Set<NodeJS.Timeout>();
  #unfinished = new Set<() => void>();
  #listening = false;
  #closed = false;

  constructor(options: FlakyReceiverOptions) {
    this.#path = options.path ?? '/hook';
    if (options.secret !== undefined) verifyingKeys(options.secret);
    this.#secret = options.secret;
    this.#script = options.script ?? [];
    this.#capacity = options.capacity ?? Infinity;
    this.#capacityRetryAfter = options.capacityRetryAfter;
    this.#latencyMs = options.latencyMs ?? 0;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500).end(String(error));
        }
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}${this.#path}`;
  }

  get port(): number {
    return this.#port;
  }

  get peakConcurrency(): number {
    return this.#peak;
  }

  get inProgress(): number {
    return this.#inProgress;
  }

  deliveredIds(): Set<string> {
    const ids = new Set<string>();
    for (const request of this.requests) {
      if (request.id !== undefined && request.status !== undefined && request.status >= 200 && request.status < 300) {
        ids.add(request.id);
      }
    }
    return ids;
  }

  countById(id: string): number {
    return this.requests.filter((request) => request.id === id).length;
  }

  setScript(script: ReplyScript): void {
    this.#script = script;
    this.#scriptIndex = 0;
  }

  setCapacity(capacity: number, retryAfter?: number): void {
    this.#capacity = capacity;
    this.#capacityRetryAfter = retryAfter;
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.once('error', onError);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', onError);
        this.#port = (this.#server.address() as AddressInfo).port;
        this.#listening = true;
        resolve();
      });
    });
  }

  async refuseConnections(): Promise<void> {
    await this.#stop();
  }

  async acceptConnections(): Promise<void> {
    if (this.#closed) throw new Error('FlakyReceiver is closed');
    if (this.#listening) return;
    await this.listen(this.#port);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#stop();
  }

  async #stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = this.#listening
      ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
      : Promise.resolve();
    this.#listening = false;
    for (const socket of this.#sockets) socket.destroy();
    for (const finish of this.#unfinished) finish();
    await closed;
  }

  #wait(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve(true);
      }, ms);
      this.#timers.add(timer);
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#inProgress += 1;
    const concurrency = this.#inProgress;
    this.#peak = Math.max(this.#peak, concurrency);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.#inProgress -= 1;
      this.#unfinished.delete(finish);
    };
    this.#unfinished.add(finish);
    res.once('close', finish);
    const at = Date.now();

    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const id = firstHeader(req.headers['webhook-id']);
    const timestamp = firstHeader(req.headers['webhook-timestamp']);
    const record: ReceivedRequest = {
      id,
      timestamp,
      signatureValid:
        this.#secret === undefined
          ? undefined
          : verifyWebhook(this.#secret, req.headers, raw, { toleranceSeconds: Number.POSITIVE_INFINITY }).ok,
      headers: { ...req.headers },
      body: raw.toString('utf8'),
      status: undefined,
      at,
      concurrency,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
    };
    this.requests.push(record);

    const pathname = record.path.split('?')[0];
    if (pathname !== this.#path) {
      this.#answer(res, record, { status: 404, body: 'not found' });
      return;
    }
    if (concurrency > this.#capacity) {
      const headers: Record<string, string> =
        this.#capacityRetryAfter === undefined ? {} : { 'retry-after': String(this.#capacityRetryAfter) };
      this.#answer(res, record, { status: 429, headers, body: 'over capacity' });
      return;
    }

    const index = this.#scriptIndex++;
    const script = this.#script;
    let reply: Reply;
    try {
      reply = typeof script === 'function' ? await script(record, index) : (script[index] ?? 200);
    } catch (error) {
      // A script that throws answers 500, recorded like any other answer.
      reply = { status: 500, body: error instanceof Error ? error.message : String(error) };
    }
    const spec: ReplySpec = typeof reply === 'number' ? { status: reply } : reply;
    // An async script may settle after close(): no timer may start then, it would keep the process alive.
    if (spec.hang === true || this.#closed || res.destroyed) return;
    await this.#wait(this.#latencyMs + (spec.delayMs ?? 0));
    if (this.#closed || res.destroyed) return;
    if (spec.drop === true) {
      req.socket.destroy();
      return;
    }
    this.#answer(res, record, spec);
  }

  #answer(res: ServerResponse, record: ReceivedRequest, spec: ReplySpec): void {
    const status = spec.status ?? 200;
    record.status = status;
    res.writeHead(status, { 'content-type': 'text/plain', ...spec.headers });
    res.end(spec.body ?? '');
  }
}
