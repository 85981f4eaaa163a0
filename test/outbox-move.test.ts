import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import type { AppendOptions, ClaimRequest, ClaimResult, NewEvent, Outcome, OutboxStore } from '../src/store/store.js';
import type { Transport, TransportRequest, TransportResponse } from '../src/transport/transport.js';
import { waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

const newDir = tempDirs('outbox-move');

const FROM = 'http://127.0.0.1:9/old';
const TO = 'http://127.0.0.1:9/new';
const A = 'http://127.0.0.1:9/a-old';
const A2 = 'http://127.0.0.1:9/a-new';
const B = 'http://127.0.0.1:9/b-old';
const B2 = 'http://127.0.0.1:9/b-new';

/** A MemoryStore whose claim() and settle() answer only when the test lets them (a slow disk). */
class GatedStore implements OutboxStore {
  readonly inner = new MemoryStore();
  claimGate: Promise<void> | undefined;
  settleGate: Promise<void> | undefined;
  claimsWaiting = 0;
  settlesWaiting = 0;
  settled: Outcome[] = [];
  open = (): Promise<void> => this.inner.open();
  append = (events: readonly NewEvent[], _options?: AppendOptions): Promise<void> => this.inner.append(events);
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const result = await this.inner.claim(request);
    if (this.claimGate !== undefined && result.events.length > 0) {
      this.claimsWaiting++;
      await this.claimGate;
      this.claimsWaiting--;
    }
    return result;
  }
  /** When set, each settle() call waits for a gate of its own: `openNextSettle()` lets the oldest through. */
  settleOneByOne = false;
  settleCalls = 0;
  readonly #settleGates: (() => void)[] = [];
  openNextSettle(): boolean {
    const open = this.#settleGates.shift();
    open?.();
    return open !== undefined;
  }
  settle: OutboxStore['settle'] = async (outcomes) => {
    this.settleCalls++;
    if (this.settleOneByOne) {
      this.settlesWaiting++;
      await new Promise<void>((resolve) => this.#settleGates.push(resolve));
      this.settlesWaiting--;
    } else if (this.settleGate !== undefined) {
      this.settlesWaiting++;
      await this.settleGate;
      this.settlesWaiting--;
    }
    this.settled.push(...outcomes);
    return this.inner.settle(outcomes);
  };
  deadLetters: OutboxStore['deadLetters'] = (query) => this.inner.deadLetters(query);
  replay: OutboxStore['replay'] = (ids, now, url) => this.inner.replay(ids, now, url);
  moveEndpoint = (from: string, to: string, now?: number): Promise<number> => this.inner.moveEndpoint(from, to, now);
  purge: OutboxStore['purge'] = (ids) => this.inner.purge(ids);
  stats: OutboxStore['stats'] = () => this.inner.stats();
  close = (): Promise<void> => this.inner.close();
}

const sent: string[] = [];
const transport: Transport = {
  async send(request: TransportRequest): Promise<TransportResponse> {
    sent.push(request.url);
    return { status: 200, headers: {}, bodyExcerpt: '' };
  },
};

let box: Outbox | undefined;
afterEach(async () => {
  await box?.close({ timeoutMs: 100 });
  box = undefined;
  sent.length = 0;
});

describe('Outbox.moveEndpoint racing the flusher', () => {
  it('moves events a claim in progress had taken when the move started, instead of sending them to the old URL', async () => {
    const store = new GatedStore();
    let open!: () => void;
    store.claimGate = new Promise<void>((resolve) => (open = resolve));
    box = await Outbox.open({ store, transport, autoFlush: true });
    for (let n = 0; n < 3; n++) await box.enqueue({ url: FROM, body: { n } });
    // The flusher's claim has taken the events and is still reading them.
    await waitFor(() => store.claimsWaiting > 0, 2_000, 'a claim in progress');
    const moving = box.moveEndpoint(FROM, TO, { timeoutMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    open();
    store.claimGate = undefined;
    const moved = await moving;
    await box.drain({ timeoutMs: 2_000 });
    expect({ moved, sent }).toEqual({ moved: 3, sent: [TO, TO, TO] });
  });
});

describe('Outbox with a signingSecret function that hangs once', () => {
  it('times the attempt out (timeoutMs) and retries, instead of keeping the event in flight forever', async () => {
    let calls = 0;
    box = await Outbox.open({
      store: new MemoryStore(),
      transport,
      timeoutMs: 50,
      retry: { baseDelayMs: 1, maxDelayMs: 5 },
      signingSecret: () => (calls++ === 0 ? new Promise<string>(() => {}) : undefined),
    });
    await box.enqueue({ url: FROM, body: { n: 1 } });
    await box.drain({ timeoutMs: 2_000 });
    expect(sent).toEqual([FROM]);
  });
});

describe('Outbox.moveEndpoint with two moves at once', () => {
  it('two moves of different URLs started during one claim: both wait for the hand-backs (none sent to an old URL)', async () => {
    const store = new GatedStore();
    let openClaim!: () => void;
    let openSettle!: () => void;
    store.claimGate = new Promise<void>((resolve) => (openClaim = resolve));
    box = await Outbox.open({ store, transport, autoFlush: true });
    await Promise.all([box.enqueue({ url: A, body: { n: 1 } }), box.enqueue({ url: B, body: { n: 2 } })]);
    // The flusher's claim has taken both events and is still reading them.
    await waitFor(() => store.claimsWaiting > 0, 2_000, 'a claim in progress');
    // Outcome writes are slow right now (a busy disk).
    store.settleGate = new Promise<void>((resolve) => (openSettle = resolve));
    const movingA = box.moveEndpoint(A, A2, { timeoutMs: 2_000 });
    const movingB = box.moveEndpoint(B, B2, { timeoutMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    openClaim();
    store.claimGate = undefined;
    await waitFor(() => store.settlesWaiting > 0, 2_000, 'the hand-backs being written');
    await new Promise((resolve) => setTimeout(resolve, 20));
    openSettle();
    store.settleGate = undefined;
    const moved = await Promise.all([movingA, movingB]);
    await box.drain({ timeoutMs: 2_000 });
    expect({ moved, sent: [...sent].sort() }).toEqual({ moved: [1, 1], sent: [A2, B2] });
  });
});

describe('Outbox.moveEndpoint and an event buried for max-age while the move runs', () => {
  it('moves the dead letter that a read-ahead event past retry.maxAgeMs becomes (not left at the old URL)', async () => {
    const store = new GatedStore();
    let answerFirst!: () => void;
    const firstAnswered = new Promise<void>((resolve) => (answerFirst = resolve));
    let requests = 0;
    const slow: Transport = {
      async send(request: TransportRequest): Promise<TransportResponse> {
        requests++;
        sent.push(request.url);
        if (requests === 1) await firstAnswered;
        return { status: 200, headers: {}, bodyExcerpt: '' };
      },
    };
    box = await Outbox.open({ store, transport: slow, concurrency: 1, retry: { maxAgeMs: 100 } });
    await Promise.all([box.enqueue({ url: A, body: { n: 1 } }), box.enqueue({ url: A, body: { n: 2 } })]);
    // Event 1 in flight, event 2 read ahead; both get older than maxAgeMs.
    await waitFor(() => requests === 1, 2_000, 'the first request');
    await new Promise((resolve) => setTimeout(resolve, 150));
    store.settleOneByOne = true;
    answerFirst();
    // Outcome 1 (delivered) is written; then event 2, dispatched next, is buried for max-age: that write is slow.
    await waitFor(() => store.settlesWaiting === 1, 2_000, 'outcome 1 being written');
    const calls = store.settleCalls;
    expect(store.openNextSettle()).toBe(true);
    await waitFor(() => store.settleCalls === calls + 1 && store.settlesWaiting === 1, 2_000, 'the burial being written');
    const moving = box.moveEndpoint(A, A2, { timeoutMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    store.settleOneByOne = false;
    while (store.openNextSettle());
    await moving;
    await waitFor(() => store.inner.stats().dead === 1, 2_000, 'the dead letter');
    expect((await box.deadLetters()).map((d) => [d.reason, d.url])).toEqual([['max-age', A2]]);
    expect(sent).toEqual([A]);
  });
});

describe('Outbox.moveEndpoint under steady traffic to other endpoints', () => {
  it('resolves within its timeoutMs although the flusher never stops pumping', async () => {
    const store = new GatedStore();
    // Claims take a few ms (a disk), as a FileStore's reading cold segments do.
    const claim = store.claim.bind(store);
    store.claim = async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return claim(request);
    };
    box = await Outbox.open({ store, transport, autoFlush: true });
    await box.enqueue({ url: A, body: { n: 0 } });
    await box.drain({ timeoutMs: 2_000 });
    let producing = true;
    const producer = (async () => {
      for (let n = 0; producing; n++) {
        await box?.enqueue({ url: B, body: { n } });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    const result = await Promise.race([
      box.moveEndpoint(A, A2, { timeoutMs: 200 }).then((n) => `moved ${n}`),
      new Promise<string>((resolve) => setTimeout(() => resolve('still pending after 2 s'), 2_000)),
    ]);
    const took = Date.now() - started;
    producing = false;
    await producer;
    expect({ result, inTime: took < 1_000 }).toEqual({ result: 'moved 0', inTime: true });
  });
});

describe('Outbox.close() while moveEndpoint() runs', () => {
  it('moveEndpoint resolves, or rejects with ERR_OUTBOX_CLOSED (not a store I/O error)', async () => {
    const dir = await newDir();
    let requests = 0;
    const hanging: Transport = {
      send(_request: TransportRequest): Promise<TransportResponse> {
        requests++;
        return new Promise(() => {});
      },
    };
    const box = await Outbox.open({ dir, transport: hanging, concurrency: 1, durability: 'fsync' });
    await box.enqueue({ url: A, body: { n: -1 } });
    await waitFor(() => requests === 1, 2_000, 'a request in flight');
    const moving = box.moveEndpoint(A, A2, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Enqueued for A while the move waits for the request in flight.
    for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 2000 }, (_, n) => box.enqueue({ url: A, body: { n } })));
    const closing = box.close({ timeoutMs: 1 });
    const [moved, closed] = await Promise.allSettled([moving, closing]);
    expect(closed.status).toBe('fulfilled');
    if (moved.status === 'rejected') expect(moved.reason).toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
  });
});
