import { describe, expect, it } from 'vitest';
import { FAILURE_THRESHOLD } from '../../src/delivery/flusher.js';
import { StoreIoError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { NewEvent } from '../../src/store/store.js';
import { A, B, flush, setup } from './flusher-harness.js';
import { delegatingStore } from '../store/delegating-store.js';

function ev(id: string, url: string, now: number, extra: Partial<NewEvent> = {}): NewEvent {
  return { id, url, headers: {}, body: new Uint8Array([1]), createdAt: now, nextAttemptAt: now, ...extra };
}

/** The flusher's side of 410 Gone (docs/06): what is buried, when, and what is never sent. */
describe('A gone endpoint in the flusher', () => {
  it('a 410 answering a request sent before enable() does not disable the endpoint again', async () => {
    const t = await setup({ concurrency: 4 });
    await t.enqueue(4, A, 'x');
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(4);
    t.calls[0]?.answer(410);
    await flush();
    expect(t.flusher.gone.has(A)).toBe(true);
    // The owner brings the endpoint back; the app enables it.
    expect(t.flusher.enable(A)).toBe(true);
    // A request that was out before the enable (answered by the old, deleted receiver) answers 410 late.
    t.calls[1]?.answer(410);
    await flush();
    await t.enqueue(1, A, 'late');
    t.flusher.poke();
    await flush();
    // The endpoint is back: the event enqueued after the enable is sent, not buried.
    expect(t.calls.map((c) => c.event.id)).toContain('late0');
    expect(t.gone).toHaveLength(1);
    expect(t.flusher.gone.has(A)).toBe(false);
    await t.flusher.stop(0);
  });

  it('a half-open probe answered 410: circuit closes, the rest are buried, nothing stays pending', async () => {
    const t = await setup({ concurrency: 1 });
    await t.enqueue(30, A, 'p');
    t.flusher.start();
    await flush();
    for (let i = 0; i < FAILURE_THRESHOLD; i++) {
      t.calls[i]?.answer(500);
      await flush();
    }
    expect(t.circuits.at(-1)).toMatchObject({ state: 'open' });
    for (let i = 0; i < 20 && t.calls.length === FAILURE_THRESHOLD; i++) {
      t.clock.advance(60_000);
      await flush();
    }
    expect(t.calls).toHaveLength(FAILURE_THRESHOLD + 1);
    t.calls[FAILURE_THRESHOLD]?.answer(410);
    await flush();
    await flush();
    expect(t.gone).toHaveLength(1);
    expect(t.calls).toHaveLength(FAILURE_THRESHOLD + 1);
    // Retries of the 5 failed events come due within the backoff; advance past them.
    for (let i = 0; i < 20 && t.store.stats().pending > 0; i++) {
      t.clock.advance(60_000);
      await flush();
    }
    expect(t.store.stats().pending).toBe(0);
    expect(t.store.stats().dead).toBe(30);
    expect(t.calls).toHaveLength(FAILURE_THRESHOLD + 1);
    await t.flusher.stop(0);
  });

  it('an ordering key on a gone URL does not wedge: every event of the key is buried, the key to another URL goes on', async () => {
    const store = new MemoryStore();
    await store.open();
    const t = await setup({ store, concurrency: 4 });
    const now = t.clock.now();
    await store.append([ev('g0', A, now)]);
    await store.append(Array.from({ length: 10 }, (_, i) => ev(`k${i}`, A, now, { orderingKey: 'K' })));
    await store.append([ev('kb', B, now, { orderingKey: 'K' })]);
    t.flusher.start();
    await flush();
    const first = t.calls.find((c) => c.event.id === 'g0');
    first?.answer(410);
    for (let i = 0; i < 30 && !t.calls.some((c) => c.event.id === 'kb'); i++) {
      for (const c of t.calls) if (!c.answered && c.event.url === A) c.answer('ok');
      await flush();
    }
    const kb = t.calls.find((c) => c.event.id === 'kb');
    expect(kb).toBeDefined();
    kb?.answer('ok');
    await flush();
    expect(t.store.stats().pending).toBe(0);
    await t.flusher.stop(0);
  });

  it('supersede on a gone URL: the superseded one is removed, the superseder buried, nothing left pending', async () => {
    const store = new MemoryStore();
    await store.open();
    const t = await setup({ store, concurrency: 1 });
    const now = t.clock.now();
    await store.append([ev('g0', A, now)]);
    await store.append([ev('s1', A, now, { orderingKey: 'S' }), ev('s2', A, now, { orderingKey: 'S' }), ev('s3', A, now, { orderingKey: 'S', supersede: true })]);
    t.flusher.start();
    await flush();
    t.calls[0]?.answer(410);
    await flush();
    await flush();
    expect(t.calls).toHaveLength(1);
    expect(t.store.stats().pending).toBe(0);
    expect(new Set(t.superseded)).toEqual(new Set(['s1', 's2']));
    expect(t.dead.sort()).toEqual(['g0', 's3']);
    await t.flusher.stop(0);
  });

  it('events of a gone URL waiting for a retry are buried without waiting for their retry time', async () => {
    const t = await setup({ concurrency: 2 });
    await t.enqueue(2, A, 'r');
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(2);
    t.calls[1]?.answer(500); // r1: a retry, due later
    await flush();
    t.calls[0]?.answer(410); // r0: the endpoint is gone
    await flush();
    expect(t.calls).toHaveLength(2);
    // Nothing will ever be sent for r1; is it a dead letter yet?
    expect(t.store.stats()).toMatchObject({ pending: 0, dead: 2 });
    await t.flusher.stop(0);
  });

  it('a burial the store cannot write while the URL is gone: no spin, everything buried once the disk has room', async () => {
    const inner = new MemoryStore();
    await inner.open();
    let failing = true;
    let deadWrites = 0;
    const store = delegatingStore(inner, {
      settle: async (outcomes) => {
        if (outcomes.some((o) => o.type === 'dead' && o.reason === 'endpoint-gone')) {
          deadWrites++;
          if (failing) throw new StoreIoError('ENOSPC: no space left on device');
        }
        return inner.settle(outcomes);
      },
    });
    const t = await setup({ store, concurrency: 1, collectErrors: true });
    await t.enqueue(50, A, 'f');
    t.flusher.start();
    await flush();
    t.calls[0]?.answer(410);
    for (let i = 0; i < 5; i++) await flush();
    const writesWhileFull = deadWrites;
    for (let i = 0; i < 5; i++) await flush();
    // No time passed: no more attempts to write (no spin).
    expect(deadWrites).toBe(writesWhileFull);
    expect(t.calls).toHaveLength(1);
    failing = false;
    for (let i = 0; i < 20 && t.store.stats().pending > 0; i++) {
      t.clock.advance(1_000);
      await flush();
    }
    expect(t.store.stats()).toMatchObject({ pending: 0, dead: 50 });
    expect(t.calls).toHaveLength(1);
    expect(t.flusher.busyWith(A)).toBe(false);
    await t.flusher.stop(0);
  });

  it('an endpoint-gone dead letter keeps the attempts and history it had (a retry waiting when the 410 came)', async () => {
    const t = await setup({ concurrency: 3 });
    await t.enqueue(3, A, 'n');
    t.flusher.start();
    await flush();
    t.calls[2]?.answer('ok'); // the endpoint is up: n1's failure is its own attempt
    await flush();
    t.calls[1]?.answer(500); // n1: one attempt made, retry due later
    await flush();
    t.calls[0]?.answer(410);
    for (let i = 0; i < 20 && t.store.stats().pending > 0; i++) {
      t.clock.advance(1_000);
      await flush();
    }
    const letter = (await t.store.deadLetters({})).find((l) => l.id === 'n1');
    expect(letter).toMatchObject({ reason: 'endpoint-gone', attempts: 1 });
    expect(letter?.history.map((a) => a.status)).toEqual([500]);
    await t.flusher.stop(0);
  });

  it('events enqueued after the 410 while the URL\'s circuit is open are buried at once, not at the probe time', async () => {
    const t = await setup({ concurrency: 8 });
    await t.enqueue(8, A, 'o');
    t.flusher.start();
    await flush();
    expect(t.calls).toHaveLength(8);
    t.calls[0]?.answer(410);
    await flush();
    // The rest of the window, out before the 410, answers 503 (the deleted receiver's load balancer): the circuit opens.
    for (let i = 1; i <= FAILURE_THRESHOLD; i++) {
      t.calls[i]?.answer(500);
      await flush();
    }
    expect(t.circuits.at(-1)).toMatchObject({ state: 'open' });
    await t.enqueue(10, A, 'late');
    t.flusher.poke();
    await flush();
    // Nothing will ever be sent to A: the events enqueued now are dead letters now, not at the probe time.
    const late = (await t.store.deadLetters({})).filter((l) => l.id.startsWith('late'));
    expect(late).toHaveLength(10);
    await t.flusher.stop(0);
  });
});
