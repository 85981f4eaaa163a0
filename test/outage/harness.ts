/**
 * Outage harness: a real Outbox (MemoryStore, real runAttempt with Retry-After parsing, real flusher) on a
 * FakeClock, with a transport whose requests the test answers by hand, so "hours" of outage run in seconds.
 */
import { FakeClock } from '../../src/clock.js';
import { NetworkError } from '../../src/errors.js';
import { Outbox } from '../../src/outbox.js';
import type { OutboxOptions } from '../../src/options.js';
import type { CircuitEvent, DeadEvent, RetryEvent } from '../../src/delivery/flusher.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Transport, TransportRequest, TransportResponse } from '../../src/transport/transport.js';

export const URL_A = 'http://a.test/hook';
export const URL_B = 'http://b.test/hook';

export interface Pending {
  request: TransportRequest;
  url: string;
  id: string;
  at: number;
  answered: boolean;
  reply(status: number, headers?: Record<string, string>): void;
  fail(code: 'ERR_NETWORK' | 'ERR_TIMEOUT', errno?: string): void;
}

export interface Sent {
  url: string;
  id: string;
  at: number;
  /** Requests of this URL in flight when it was sent, itself included. */
  concurrency: number;
  status?: number;
}

/** A manual transport on `clock`; a request not answered within its `timeoutMs` rejects with ERR_TIMEOUT. */
export function manualTransport(clock: FakeClock): { transport: Transport; pending: Pending[]; sent: Sent[]; inFlight: Map<string, number> } {
  const pending: Pending[] = [];
  const sent: Sent[] = [];
  const inFlight = new Map<string, number>();
  const transport: Transport = {
    send: (request) =>
      new Promise<TransportResponse>((resolve, reject) => {
        const url = request.url;
        const now = inFlight.get(url) ?? 0;
        inFlight.set(url, now + 1);
        const record: Sent = { url, id: request.headers['webhook-id'] ?? '', at: clock.now(), concurrency: now + 1 };
        sent.push(record);
        const done = (): boolean => {
          if (p.answered) return false;
          p.answered = true;
          cancelTimeout();
          inFlight.set(url, (inFlight.get(url) ?? 1) - 1);
          return true;
        };
        const p: Pending = {
          request,
          url,
          id: record.id,
          at: record.at,
          answered: false,
          reply: (status, headers = {}) => {
            if (!done()) return;
            record.status = status;
            resolve({ status, headers, bodyExcerpt: '' });
          },
          fail: (code, errno) => {
            if (!done()) return;
            reject(new NetworkError(code, `fake ${code}`, errno));
          },
        };
        const cancelTimeout = clock.setTimer(() => p.fail('ERR_TIMEOUT', 'ETIMEDOUT'), request.timeoutMs);
        request.signal?.addEventListener('abort', () => {
          if (!done()) return;
          reject(new NetworkError('ERR_ABORTED', 'aborted', undefined));
        });
        pending.push(p);
      }),
  };
  return { transport, pending, sent, inFlight };
}

/** Lets promise chains (claims, settles) run. */
export async function flush(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

export async function openBox(options: Partial<OutboxOptions> = {}, clock = new FakeClock(1_700_000_000_000), store = new MemoryStore()) {
  const t = manualTransport(clock);
  const box = await Outbox.open({
    store,
    url: URL_A,
    clock,
    random: () => 0.5,
    transport: t.transport,
    ...options,
  } as OutboxOptions);
  const retries: RetryEvent[] = [];
  const circuits: (CircuitEvent & { at: number })[] = [];
  const dead: DeadEvent[] = [];
  const delivered: string[] = [];
  const errors: unknown[] = [];
  box.on('retry', (e) => retries.push(e));
  box.on('circuit', (e) => circuits.push({ ...e, at: clock.now() }));
  box.on('dead', (e) => dead.push(e));
  box.on('delivered', (e) => delivered.push(e.id));
  box.on('error', (e) => errors.push(e));
  return { box, clock, store, ...t, retries, circuits, dead, delivered, errors };
}

/** Unanswered requests. */
export function open(pending: Pending[]): Pending[] {
  return pending.filter((p) => !p.answered);
}

/** Requests sent in each fake minute from `from` (index 0 = the first minute). */
export function perMinute(sent: Sent[], from: number, minutes: number): number[] {
  const out = new Array<number>(minutes).fill(0);
  for (const s of sent) {
    const m = Math.floor((s.at - from) / 60_000);
    if (m >= 0 && m < minutes) out[m] = (out[m] as number) + 1;
  }
  return out;
}
