import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import type { AppendOptions, ClaimRequest, ClaimResult, NewEvent, OutboxStore } from '../src/store/store.js';
import type { Transport, TransportRequest, TransportResponse } from '../src/transport/transport.js';
import { waitFor } from './outbox-helpers.js';

const FROM = 'http://127.0.0.1:9/old';
const TO = 'http://127.0.0.1:9/new';

/** A MemoryStore whose claim() answers only when the test lets it (a FileStore reading cold segments). */
class GatedStore implements OutboxStore {
  readonly inner = new MemoryStore();
  gate: Promise<void> | undefined;
  claimsWaiting = 0;
  open = (): Promise<void> => this.inner.open();
  append = (events: readonly NewEvent[], _options?: AppendOptions): Promise<void> => this.inner.append(events);
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const result = await this.inner.claim(request);
    if (this.gate !== undefined && result.events.length > 0) {
      this.claimsWaiting++;
      await this.gate;
      this.claimsWaiting--;
    }
    return result;
  }
  settle: OutboxStore['settle'] = (outcomes) => this.inner.settle(outcomes);
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
    store.gate = new Promise<void>((resolve) => (open = resolve));
    box = await Outbox.open({ store, transport, autoFlush: true });
    for (let n = 0; n < 3; n++) await box.enqueue({ url: FROM, body: { n } });
    // The flusher's claim has taken the events and is still reading them.
    await waitFor(() => store.claimsWaiting > 0, 2_000, 'a claim in progress');
    const moving = box.moveEndpoint(FROM, TO, { timeoutMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    open();
    store.gate = undefined;
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
