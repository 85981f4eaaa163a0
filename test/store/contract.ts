import { afterEach, describe, expect, it } from 'vitest';
import { MAX_HISTORY } from '../../src/store/store.js';
import type { AttemptRecord, DeadLetterQuery, DeadReason, NewEvent, OutboxStore } from '../../src/store/store.js';

/** What a store test file hands to {@link describeStoreContract}. */
export interface ContractTarget {
  /** Creates a store in a fresh, empty location (not opened yet). */
  fresh(options?: { maxBytes?: number }): Promise<StoreUnderTest>;
  /** Durable stores also run the reopen tests; their `fresh()` must return `reopen`. */
  durable: boolean;
  /** `false` for a store without a byte limit (`PostgresStore`: the database's own quotas apply); its test is not registered. */
  maxBytes?: boolean;
}

/** A store plus, for durable stores, a way to open another instance on the same location. */
export interface StoreUnderTest {
  store: OutboxStore;
  /** Present for durable stores: a new, unopened instance over the same files. */
  reopen?: () => OutboxStore;
}

const T0 = 1_700_000_000_000;
const A = 'http://127.0.0.1:1/a';
const B = 'http://127.0.0.1:1/b';
const C = 'http://127.0.0.1:2/moved-here';

/** Builds a test event. */
export function makeEvent(id: string, overrides: Partial<NewEvent> = {}): NewEvent {
  return {
    id,
    url: A,
    headers: { 'content-type': 'application/json', 'x-n': id },
    body: new TextEncoder().encode(JSON.stringify({ id, pad: 'x'.repeat(20) })),
    createdAt: T0,
    nextAttemptAt: T0,
    ...overrides,
  };
}

function attempt(n: number, status = 503): AttemptRecord {
  return { at: T0 + n, durationMs: 5, status, error: `HTTP ${status}` };
}

/**
 * The `OutboxStore` contract: every store implementation runs this suite.
 */
export function describeStoreContract(name: string, target: ContractTarget): void {
  describe(`${name}: OutboxStore contract`, () => {
    const open: OutboxStore[] = [];

    async function setup(options?: { maxBytes?: number }): Promise<StoreUnderTest> {
      const sut = await target.fresh(options);
      await sut.store.open();
      open.push(sut.store);
      return sut;
    }

    async function reopened(sut: StoreUnderTest): Promise<OutboxStore> {
      if (sut.reopen === undefined) throw new Error('not a durable store');
      await sut.store.close();
      const store = sut.reopen();
      await store.open();
      open.push(store);
      return store;
    }

    afterEach(async () => {
      for (const store of open.splice(0)) await store.close();
    });

    it('returns appended events unchanged, with no attempts', async () => {
      const { store } = await setup();
      const event = makeEvent('e1', { headers: { 'content-type': 'text/plain', 'x-a': 'é' }, body: new Uint8Array([0, 255, 10]) });
      await store.append([event]);
      const { events } = await store.claim({ limit: 10, now: T0 });
      expect(events).toEqual([{ ...event, attempts: 0, history: [] }]);
      expect(events[0]?.body).toBeInstanceOf(Uint8Array);
    });

    it('skips ids that are already pending or dead, and duplicates within a batch', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1'), makeEvent('e1', { url: B })]);
      await store.append([makeEvent('e1', { url: B }), makeEvent('e2')]);
      const first = await store.claim({ limit: 10, now: T0 });
      expect(first.events.map((e) => [e.id, e.url])).toEqual([['e1', A], ['e2', A]]);
      await store.settle([{ id: 'e2', type: 'dead', reason: 'http-status', at: T0 }]);
      await store.append([makeEvent('e2', { url: B })]);
      expect(store.stats().pending).toBe(1);
      expect(store.stats().dead).toBe(1);
      expect((await store.deadLetters())[0]?.url).toBe(A);
    });

    it('takes the newIds hint for a batch of fresh ids like any other batch', async () => {
      const { store } = await setup();
      await store.append([makeEvent('n1'), makeEvent('n2', { url: B })], { newIds: true });
      const { events } = await store.claim({ limit: 10, now: T0 });
      expect(events.map((e) => [e.id, e.url, e.attempts])).toEqual([['n1', A, 0], ['n2', B, 0]]);
    });

    it('accepts an id again once it was delivered', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1')]);
      await store.claim({ limit: 1, now: T0 });
      await store.settle([{ id: 'e1', type: 'delivered', attempt: attempt(0, 200) }]);
      await store.append([makeEvent('e1', { url: B })]);
      const { events } = await store.claim({ limit: 1, now: T0 });
      expect(events.map((e) => e.url)).toEqual([B]);
    });

    it('claims only due events, oldest due first, at most limit, and reports the next due time', async () => {
      const { store } = await setup();
      await store.append([
        makeEvent('late', { nextAttemptAt: T0 + 500 }),
        makeEvent('b', { nextAttemptAt: T0 + 20 }),
        makeEvent('a', { nextAttemptAt: T0 + 10 }),
        makeEvent('c', { nextAttemptAt: T0 + 20 }),
      ]);
      const none = await store.claim({ limit: 10, now: T0 });
      expect(none.events).toEqual([]);
      expect(none.nextDueAt).toBe(T0 + 10);
      for (const limit of [0, Number.NaN]) expect((await store.claim({ limit, now: T0 + 100 })).events).toEqual([]);
      const two = await store.claim({ limit: 2, now: T0 + 100 });
      expect(two.events.map((e) => e.id)).toEqual(['a', 'b']);
      expect(two.nextDueAt).toBe(T0 + 20);
      const rest = await store.claim({ limit: 10, now: T0 + 100 });
      expect(rest.events.map((e) => e.id)).toEqual(['c']);
      expect(rest.nextDueAt).toBe(T0 + 500);
      const empty = await store.claim({ limit: 10, now: T0 + 100 });
      expect(empty.events).toEqual([]);
      expect(empty.nextDueAt).toBe(T0 + 500);
      expect(store.stats()).toMatchObject({ pending: 4, claimed: 3 });
    });

    it('never hands out a claimed event twice; release makes it claimable again', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1'), makeEvent('e2')]);
      const first = await store.claim({ limit: 1, now: T0 });
      const second = await store.claim({ limit: 5, now: T0 });
      expect(first.events.map((e) => e.id)).toEqual(['e1']);
      expect(second.events.map((e) => e.id)).toEqual(['e2']);
      await store.settle([{ id: 'e1', type: 'release' }]);
      const third = await store.claim({ limit: 5, now: T0 });
      expect(third.events.map((e) => e.id)).toEqual(['e1']);
      expect(third.events[0]?.attempts).toBe(0);
    });

    it('claims oldest due first across endpoints; retried and released events take their place again', async () => {
      const { store } = await setup();
      await store.append([
        makeEvent('a1', { url: A, nextAttemptAt: T0 + 1 }),
        makeEvent('b1', { url: B, nextAttemptAt: T0 + 2 }),
        makeEvent('a2', { url: A, nextAttemptAt: T0 + 3 }),
        makeEvent('b2', { url: B, nextAttemptAt: T0 + 3 }),
        makeEvent('b3', { url: B, nextAttemptAt: T0 + 4 }),
        makeEvent('a3', { url: A, nextAttemptAt: T0 + 50 }),
      ]);
      const first = await store.claim({ limit: 4, now: T0 + 10 });
      expect(first.events.map((e) => e.id)).toEqual(['a1', 'b1', 'a2', 'b2']);
      expect(first.nextDueAt).toBe(T0 + 4);
      await store.settle([
        { id: 'a1', type: 'retry', attempt: attempt(1), nextAttemptAt: T0 + 30, countsAsAttempt: true },
        { id: 'b1', type: 'release' },
      ]);
      const second = await store.claim({ limit: 10, now: T0 + 40 });
      expect(second.events.map((e) => e.id)).toEqual(['b1', 'b3', 'a1']);
      expect(second.nextDueAt).toBe(T0 + 50);
      const last = await store.claim({ limit: 10, now: T0 + 50 });
      expect(last).toEqual({ events: [expect.objectContaining({ id: 'a3' })], nextDueAt: undefined });
    });

    it('honours endpoint and excludeEndpoints, including for nextDueAt', async () => {
      const { store } = await setup();
      await store.append([
        makeEvent('a1', { url: A }),
        makeEvent('b1', { url: B }),
        makeEvent('a2', { url: A, nextAttemptAt: T0 + 5 }),
        makeEvent('b2', { url: B, nextAttemptAt: T0 + 9 }),
      ]);
      const onlyB = await store.claim({ limit: 10, now: T0, excludeEndpoints: new Set([A]) });
      expect(onlyB.events.map((e) => e.id)).toEqual(['b1']);
      expect(onlyB.nextDueAt).toBe(T0 + 9);
      const forA = await store.claim({ limit: 10, now: T0, endpoint: A });
      expect(forA.events.map((e) => e.id)).toEqual(['a1']);
      expect(forA.nextDueAt).toBe(T0 + 5);
      const excludedAll = await store.claim({ limit: 10, now: T0 + 10, excludeEndpoints: new Set([A, B]) });
      expect(excludedAll).toEqual({ events: [], nextDueAt: undefined });
    });

    it('records retries: attempts, history (newest MAX_HISTORY) and the new due time', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1')]);
      let now = T0;
      for (let i = 0; i < MAX_HISTORY + 2; i++) {
        const { events } = await store.claim({ limit: 1, now });
        expect(events.map((e) => e.id)).toEqual(['e1']);
        now += 100;
        await store.settle([{ id: 'e1', type: 'retry', attempt: attempt(i), nextAttemptAt: now, countsAsAttempt: i !== 0 }]);
      }
      expect((await store.claim({ limit: 1, now: now - 1 })).nextDueAt).toBe(now);
      const { events } = await store.claim({ limit: 1, now });
      expect(events[0]?.attempts).toBe(MAX_HISTORY + 1);
      expect(events[0]?.nextAttemptAt).toBe(now);
      expect(events[0]?.history).toEqual(Array.from({ length: MAX_HISTORY }, (_, i) => attempt(i + 2)));
    });

    it('removes delivered events and counts them', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1'), makeEvent('e2', { url: B })]);
      await store.claim({ limit: 10, now: T0 });
      await store.settle([
        { id: 'e1', type: 'delivered', attempt: attempt(0, 200) },
        { id: 'e2', type: 'release' },
      ]);
      expect(store.stats()).toMatchObject({ pending: 1, claimed: 0, delivered: 1, dead: 0 });
      expect(store.stats().endpoints).toEqual({ [B]: { pending: 1, dead: 0 } });
      expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['e2']);
    });

    it('ignores outcomes for events that are not claimed', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1')]);
      await store.settle([
        { id: 'e1', type: 'delivered', attempt: attempt(0, 200) },
        { id: 'nope', type: 'dead', reason: 'invalid', at: T0 },
      ]);
      expect(store.stats()).toMatchObject({ pending: 1, delivered: 0, dead: 0 });
    });

    it('keeps dead letters with reason, history and payload, oldest first, filtered by ids and limit', async () => {
      const { store } = await setup();
      await store.append([makeEvent('d1'), makeEvent('d2', { url: B }), makeEvent('d3')]);
      await store.claim({ limit: 10, now: T0 });
      await store.settle([{ id: 'd2', type: 'dead', reason: 'max-age', at: T0 + 1 }]);
      await store.settle([
        { id: 'd1', type: 'dead', reason: 'http-status', attempt: attempt(3, 410), at: T0 + 2 },
        { id: 'd3', type: 'dead', reason: 'max-attempts', attempt: attempt(4), at: T0 + 3 },
      ]);
      const all = await store.deadLetters();
      expect(all.map((d) => [d.id, d.reason, d.deadAt, d.attempts])).toEqual([
        ['d2', 'max-age', T0 + 1, 0],
        ['d1', 'http-status', T0 + 2, 1],
        ['d3', 'max-attempts', T0 + 3, 1],
      ]);
      expect(all[1]).toMatchObject({ url: A, history: [attempt(3, 410)], body: makeEvent('d1').body });
      expect((await store.deadLetters({ limit: 2 })).map((d) => d.id)).toEqual(['d2', 'd1']);
      expect((await store.deadLetters({ ids: ['d3', 'zz'] })).map((d) => d.id)).toEqual(['d3']);
      expect(store.stats()).toMatchObject({ pending: 0, dead: 3 });
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 0, dead: 2 }, [B]: { pending: 0, dead: 1 } });
      expect((await store.claim({ limit: 10, now: T0 + 10 })).events).toEqual([]);
    });

    it('keeps every dead reason as written, also after a reopen', async () => {
      const sut = await setup();
      let { store } = sut;
      const reasons: DeadReason[] = ['http-status', 'max-age', 'max-attempts', 'invalid', 'endpoint-gone'];
      await store.append(reasons.map((reason) => makeEvent(reason)));
      await store.claim({ limit: 10, now: T0 });
      await store.settle(reasons.map((reason, i) => ({ id: reason, type: 'dead' as const, reason, at: T0 + i })));
      const read = async (): Promise<string[][]> => (await store.deadLetters()).map((d) => [d.id, d.reason]);
      expect(await read()).toEqual(reasons.map((reason) => [reason, reason]));
      if (sut.reopen !== undefined) {
        store = await reopened(sut);
        expect(await read()).toEqual(reasons.map((reason) => [reason, reason]));
      }
    });

    it('filters dead letters by endpoint URL and time of death, with ids and limit, also after a move and a reopen', async () => {
      const sut = await setup();
      let { store } = sut;
      await store.append(['a1', 'a2', 'a3', 'b1', 'b2'].map((id) => makeEvent(id, { url: id.startsWith('a') ? A : B })));
      await store.claim({ limit: 10, now: T0 });
      await store.settle(['a1', 'b1', 'a2', 'b2', 'a3'].map((id, i) => ({ id, type: 'dead' as const, reason: 'http-status' as const, at: T0 + 10 * i })));
      const ids = async (query: DeadLetterQuery): Promise<string[]> => (await store.deadLetters(query)).map((d) => d.id);
      expect(await ids({ endpoint: A })).toEqual(['a1', 'a2', 'a3']);
      expect(await ids({ endpoint: B, since: T0 + 10 })).toEqual(['b1', 'b2']);
      expect(await ids({ since: T0 + 10, until: T0 + 30 })).toEqual(['b1', 'a2']);
      expect(await ids({ endpoint: A, until: T0 + 40, limit: 1 })).toEqual(['a1']);
      expect(await ids({ endpoint: A, ids: ['a3', 'b2'] })).toEqual(['a3']);
      expect(await ids({ endpoint: 'http://127.0.0.1:1/none' })).toEqual([]);
      if (store.moveEndpoint !== undefined) {
        await store.moveEndpoint(B, C, T0 + 100);
        expect(await ids({ endpoint: B })).toEqual([]);
        expect(await ids({ endpoint: C, until: T0 + 30 })).toEqual(['b1']);
      }
      if (sut.reopen !== undefined) {
        store = await reopened(sut);
        expect(await ids({ endpoint: A, since: T0 + 20 })).toEqual(['a2', 'a3']);
        expect(await ids({ endpoint: store.moveEndpoint === undefined ? B : C })).toEqual(['b1', 'b2']);
      }
    });

    it('finds an event by id with its payload and where it stands: pending, claimed, retried, dead, gone', async () => {
      const sut = await setup();
      let { store } = sut;
      if (store.get === undefined) throw new Error('every built-in store has get()');
      const event = makeEvent('e1', { orderingKey: 'k1' });
      await store.append([event, makeEvent('e2')]);
      expect(await store.get('e1')).toEqual({ ...event, attempts: 0, history: [], state: 'pending' });
      expect(await store.get('nope')).toBeUndefined();
      await store.claim({ limit: 10, now: T0 });
      expect(await store.get('e1')).toMatchObject({ id: 'e1', state: 'claimed' });
      await store.settle([
        { id: 'e1', type: 'retry', attempt: attempt(1), nextAttemptAt: T0 + 99, countsAsAttempt: true },
        { id: 'e2', type: 'dead', attempt: attempt(2, 400), reason: 'http-status', at: T0 + 7 },
      ]);
      const found = [await store.get('e1'), await store.get('e2')];
      expect(found[0]).toEqual({ ...event, attempts: 1, history: [attempt(1)], nextAttemptAt: T0 + 99, state: 'pending' });
      expect(found[1]).toMatchObject({ id: 'e2', state: 'dead', reason: 'http-status', deadAt: T0 + 7, attempts: 1, history: [attempt(2, 400)] });
      if (sut.reopen !== undefined) {
        store = await reopened(sut);
        expect([await store.get?.('e1'), await store.get?.('e2')]).toEqual(found);
      }
      await store.purge(['e2']);
      expect(await store.get?.('e2')).toBeUndefined();
      await store.claim({ limit: 10, now: T0 + 100 });
      await store.settle([{ id: 'e1', type: 'delivered', attempt: attempt(3, 200) }]);
      expect(await store.get?.('e1')).toBeUndefined();
    });

    it('replays dead letters with attempts and age reset, due at once', async () => {
      const { store } = await setup();
      await store.append([makeEvent('d1'), makeEvent('d2')]);
      await store.claim({ limit: 10, now: T0 });
      await store.settle([
        { id: 'd1', type: 'dead', reason: 'max-attempts', attempt: attempt(1), at: T0 + 1 },
        { id: 'd2', type: 'dead', reason: 'max-attempts', attempt: attempt(1), at: T0 + 2 },
      ]);
      expect(await store.replay(['d2', 'missing'], T0 + 1000)).toBe(1);
      expect(store.stats()).toMatchObject({ pending: 1, dead: 1, oldestPendingAt: T0 + 1000 });
      const { events } = await store.claim({ limit: 10, now: T0 + 1000 });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ id: 'd2', attempts: 0, createdAt: T0 + 1000, nextAttemptAt: T0 + 1000 });
      expect(events[0]?.history).toEqual([attempt(1)]);
      expect(await store.replay(undefined, T0 + 2000)).toBe(1);
      expect(store.stats()).toMatchObject({ pending: 2, dead: 0 });
    });

    it('replays dead letters to another URL: same id, headers and body there; counters and claims follow', async () => {
      const { store } = await setup();
      await store.append([makeEvent('m1', { headers: { 'x-k': 'v' } }), makeEvent('m2'), makeEvent('stay', { url: B })]);
      await store.claim({ limit: 10, now: T0 });
      await store.settle(['m1', 'm2', 'stay'].map((id) => ({ id, type: 'dead' as const, reason: 'http-status' as const, attempt: attempt(1, 404), at: T0 + 1 })));
      expect(await store.replay(['m1', 'm2'], T0 + 5, C)).toBe(2);
      expect(store.stats().endpoints).toEqual({ [B]: { pending: 0, dead: 1 }, [C]: { pending: 2, dead: 0 } });
      expect((await store.claim({ limit: 10, now: T0 + 5, excludeEndpoints: new Set([C]) })).events).toEqual([]);
      const { events } = await store.claim({ limit: 10, now: T0 + 5, endpoint: C });
      expect(events.map((e) => e.id).sort()).toEqual(['m1', 'm2']);
      expect(events.find((e) => e.id === 'm1')).toEqual({
        ...makeEvent('m1', { headers: { 'x-k': 'v' }, url: C }),
        createdAt: T0 + 5,
        nextAttemptAt: T0 + 5,
        attempts: 0,
        history: [attempt(1, 404)],
      });
      await store.settle([{ id: 'm2', type: 'dead', reason: 'invalid', at: T0 + 6 }]);
      expect((await store.deadLetters({ ids: ['m2'] }))[0]?.url).toBe(C);
      expect(await store.replay(['stay'], T0 + 7)).toBe(1);
      expect(store.stats().endpoints).toEqual({ [B]: { pending: 1, dead: 0 }, [C]: { pending: 1, dead: 1 } });
    });

    it('moves an endpoint: pending due at once with attempts reset, dead stay dead, claimed and other endpoints stay', async () => {
      const { store } = await setup();
      if (store.moveEndpoint === undefined) throw new Error('every store of this package can move an endpoint');
      await store.append([makeEvent('p1', { nextAttemptAt: T0 + 500 }), makeEvent('p2'), makeEvent('d1'), makeEvent('c1'), makeEvent('b1', { url: B })]);
      const first = await store.claim({ limit: 10, now: T0 });
      expect(first.events.map((e) => e.id).sort()).toEqual(['b1', 'c1', 'd1', 'p2']);
      await store.settle([
        { id: 'p2', type: 'retry', attempt: attempt(1, 503), nextAttemptAt: T0 + 900, countsAsAttempt: true },
        { id: 'd1', type: 'dead', reason: 'http-status', attempt: attempt(2, 404), at: T0 + 3 },
        { id: 'b1', type: 'release' },
      ]);
      // c1 stays claimed (in flight) through the move.
      expect(await store.moveEndpoint(A, C, T0 + 100)).toBe(3);
      expect(store.stats()).toMatchObject({ pending: 4, claimed: 1, dead: 1 });
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1, dead: 0 }, [B]: { pending: 1, dead: 0 }, [C]: { pending: 2, dead: 1 } });
      const moved = (await store.claim({ limit: 10, now: T0 + 100, endpoint: C })).events;
      // Both due at the move's time; the earlier arrival first.
      expect(moved.map((e) => [e.id, e.url, e.attempts, e.nextAttemptAt, e.createdAt])).toEqual([
        ['p1', C, 0, T0 + 100, T0],
        ['p2', C, 0, T0 + 100, T0],
      ]);
      expect(moved[1]?.history).toEqual([attempt(1, 503)]);
      expect(await store.deadLetters()).toEqual([{ ...makeEvent('d1', { url: C }), attempts: 1, history: [attempt(2, 404)], reason: 'http-status', deadAt: T0 + 3 }]);
      await store.settle([{ id: 'c1', type: 'retry', attempt: attempt(3, 503), nextAttemptAt: T0 + 200, countsAsAttempt: true }]);
      expect((await store.claim({ limit: 10, now: T0 + 200, endpoint: A })).events.map((e) => e.id)).toEqual(['c1']);
      expect(await store.moveEndpoint(C, C, T0)).toBe(0);
      expect(await store.moveEndpoint('http://127.0.0.1:1/nobody', C, T0)).toBe(0);
    });

    it('purges dead letters by id or all of them', async () => {
      const { store } = await setup();
      await store.append([makeEvent('d1'), makeEvent('d2'), makeEvent('d3'), makeEvent('p')]);
      await store.claim({ limit: 3, now: T0 });
      await store.settle(['d1', 'd2', 'd3'].map((id) => ({ id, type: 'dead' as const, reason: 'invalid' as const, at: T0 })));
      expect(await store.purge(['d2', 'p'])).toBe(1);
      expect((await store.deadLetters()).map((d) => d.id)).toEqual(['d1', 'd3']);
      expect(await store.purge()).toBe(2);
      expect(await store.deadLetters()).toEqual([]);
      expect(store.stats()).toMatchObject({ pending: 1, dead: 0 });
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1, dead: 0 } });
    });

    it('hands out the events of one ordering key one at a time, oldest appended first; other keys and unkeyed ones go on', async () => {
      const { store } = await setup();
      const K = { orderingKey: 'order-42' };
      await store.append([makeEvent('k1', K), makeEvent('k2', K), makeEvent('other', { orderingKey: 'order-7' }), makeEvent('free')]);
      await store.append([makeEvent('k3', K)]);
      const ids = async (now: number): Promise<string[]> => (await store.claim({ limit: 10, now })).events.map((e) => e.id);
      const first = (await store.claim({ limit: 10, now: T0 })).events;
      expect(first.map((e) => [e.id, e.orderingKey])).toEqual([
        ['k1', 'order-42'],
        ['other', 'order-7'],
        ['free', undefined],
      ]);
      expect(await ids(T0)).toEqual([]);
      // A retry holds the key until it is due and goes first again.
      await store.settle([{ id: 'k1', type: 'retry', attempt: attempt(1), nextAttemptAt: T0 + 100, countsAsAttempt: true }]);
      const waiting = await store.claim({ limit: 10, now: T0 + 50 });
      expect(waiting).toEqual({ events: [], nextDueAt: T0 + 100 });
      expect(await ids(T0 + 100)).toEqual(['k1']);
      // Death does not hold it: the next goes.
      await store.settle([{ id: 'k1', type: 'dead', reason: 'http-status', attempt: attempt(2, 400), at: T0 + 101 }]);
      expect(await ids(T0 + 101)).toEqual(['k2']);
      await store.settle([{ id: 'k2', type: 'delivered', attempt: attempt(3, 200) }]);
      expect(await ids(T0 + 102)).toEqual(['k3']);
      await store.settle([{ id: 'k3', type: 'release' }]);
      expect(await ids(T0 + 102)).toEqual(['k3']);
      // Replayed while k3 is out, k1 waits for it, then goes before it (its place is before k3's).
      expect(await store.replay(['k1'], T0 + 103)).toBe(1);
      expect(await ids(T0 + 103)).toEqual([]);
      await store.settle([{ id: 'k3', type: 'retry', attempt: attempt(4), nextAttemptAt: T0 + 103, countsAsAttempt: true }]);
      expect(await ids(T0 + 104)).toEqual(['k1']);
      await store.settle([{ id: 'k1', type: 'delivered', attempt: attempt(5, 200) }]);
      expect(await ids(T0 + 104)).toEqual(['k3']);
      await store.settle([{ id: 'k3', type: 'delivered', attempt: attempt(6, 200) }, { id: 'other', type: 'delivered', attempt: attempt(6, 200) }]);
      expect(store.stats()).toMatchObject({ pending: 1, claimed: 1, dead: 0 });
    });

    it('supersede: a key\'s earlier events are handed out marked while a later superseding one is pending; the claimed one is not recalled', async () => {
      const { store } = await setup();
      const K = { orderingKey: 'customer-42' };
      const S = { orderingKey: 'customer-42', supersede: true };
      const claim = async (now: number): Promise<[string, string | undefined][]> =>
        (await store.claim({ limit: 10, now })).events.map((e) => [e.id, e.supersededBy]);
      await store.append([makeEvent('k1', K), makeEvent('other', { orderingKey: 'customer-7' })]);
      expect(await claim(T0)).toEqual([
        ['k1', undefined],
        ['other', undefined],
      ]);
      // k1 is out: later appends do not recall it.
      await store.append([makeEvent('k2', K), makeEvent('k3', S), makeEvent('k4', K), makeEvent('k5', S)]);
      await store.append([makeEvent('k6', K)]);
      expect(await claim(T0)).toEqual([]);
      // Its retry, once pending again, is judged at its turn: k5 is pending then.
      await store.settle([{ id: 'k1', type: 'retry', attempt: attempt(1), nextAttemptAt: T0 + 10, countsAsAttempt: true }]);
      expect(await claim(T0 + 5)).toEqual([]);
      // The ones after it that k5 supersedes come in the same claim, as far as the limit goes.
      const first = await store.claim({ limit: 2, now: T0 + 10 });
      expect(first.events.map((e) => [e.id, e.supersededBy])).toEqual([
        ['k1', 'k5'],
        ['k2', 'k5'],
      ]);
      // The key's next waits until every claimed one of it has ended.
      await store.settle([{ id: 'k1', type: 'superseded', by: 'k5' }]);
      expect(await claim(T0 + 10)).toEqual([]);
      await store.settle([{ id: 'k2', type: 'release' }]);
      expect(await claim(T0 + 10)).toEqual([
        ['k2', 'k5'],
        ['k3', 'k5'],
        ['k4', 'k5'],
      ]);
      await store.settle(['k2', 'k3', 'k4'].map((id) => ({ id, type: 'superseded' as const, by: 'k5' })));
      // The superseding event itself goes, and what came after it is not affected by it.
      const [k5] = (await store.claim({ limit: 10, now: T0 + 10 })).events;
      expect(k5).toEqual({ ...makeEvent('k5', S), attempts: 0, history: [] });
      await store.settle([{ id: 'k5', type: 'retry', attempt: attempt(2), nextAttemptAt: T0 + 20, countsAsAttempt: true }]);
      expect(await claim(T0 + 20)).toEqual([['k5', undefined]]);
      await store.settle([{ id: 'k5', type: 'delivered', attempt: attempt(3, 200) }]);
      expect(await claim(T0 + 20)).toEqual([['k6', undefined]]);
      await store.settle([{ id: 'k6', type: 'delivered', attempt: attempt(4, 200) }, { id: 'other', type: 'delivered', attempt: attempt(4, 200) }]);
      expect(store.stats()).toMatchObject({ pending: 0, claimed: 0, dead: 0, delivered: 3 });
      expect(await store.get?.('k2')).toBeUndefined();
    });

    it('supersede: dead letters are untouched; replayed, they are judged like any pending event; the rule follows the superseder leaving', async () => {
      const sut = await setup();
      let { store } = sut;
      const K = { orderingKey: 'k' };
      const S = { orderingKey: 'k', supersede: true };
      const claim = async (now: number): Promise<[string, string | undefined][]> =>
        (await store.claim({ limit: 10, now })).events.map((e) => [e.id, e.supersededBy]);
      await store.append([makeEvent('e0', K)]);
      expect(await claim(T0)).toEqual([['e0', undefined]]);
      await store.settle([{ id: 'e0', type: 'dead', reason: 'http-status', attempt: attempt(1, 400), at: T0 + 1 }]);
      await store.append([makeEvent('s0', S)]);
      expect(await claim(T0 + 1)).toEqual([['s0', undefined]]);
      await store.settle([{ id: 's0', type: 'dead', reason: 'max-attempts', attempt: attempt(2), at: T0 + 2 }]);
      await store.append([makeEvent('s2', S)]);
      expect(await claim(T0 + 2)).toEqual([['s2', undefined]]);
      // Dead letters are not superseded: both are still there.
      expect((await store.deadLetters()).map((d) => [d.id, d.supersede])).toEqual([
        ['e0', undefined],
        ['s0', true],
      ]);
      // Replayed while s2 is out, they wait for it; s2 is then delivered, so s0 is the key's latest superseder.
      expect(await store.replay(['e0', 's0'], T0 + 3)).toBe(2);
      expect(await claim(T0 + 3)).toEqual([]);
      await store.settle([{ id: 's2', type: 'delivered', attempt: attempt(3, 200) }]);
      expect(await claim(T0 + 3)).toEqual([['e0', 's0']]);
      if (sut.reopen !== undefined) {
        // Recovery finds the same: s0 is the key's latest pending superseder.
        store = await reopened({ store, reopen: sut.reopen });
        expect(await claim(T0 + 3)).toEqual([['e0', 's0']]);
      } else {
        await store.settle([{ id: 'e0', type: 'release' }]);
        expect(await claim(T0 + 3)).toEqual([['e0', 's0']]);
      }
      await store.settle([{ id: 'e0', type: 'superseded', by: 's0' }]);
      expect(await claim(T0 + 3)).toEqual([['s0', undefined]]);
      // A superseder that dies leaves no rule behind either.
      await store.append([makeEvent('a', K), makeEvent('s3', S)]);
      await store.settle([{ id: 's0', type: 'dead', reason: 'http-status', attempt: attempt(4, 400), at: T0 + 4 }]);
      expect(await claim(T0 + 4)).toEqual([['a', 's3']]);
      await store.settle([{ id: 'a', type: 'release' }]);
      expect(await claim(T0 + 4)).toEqual([['a', 's3']]);
      await store.settle([{ id: 'a', type: 'superseded', by: 's3' }]);
      expect(await claim(T0 + 4)).toEqual([['s3', undefined]]);
      await store.settle([{ id: 's3', type: 'dead', reason: 'http-status', attempt: attempt(5, 400), at: T0 + 5 }]);
      expect(await store.replay(['s0'], T0 + 5)).toBe(1);
      await store.append([makeEvent('b', K)]);
      // s3 is dead: only s0 (replayed, now pending) supersedes, and b came after it.
      expect(await claim(T0 + 5)).toEqual([['s0', undefined]]);
      await store.settle([{ id: 's0', type: 'delivered', attempt: attempt(6, 200) }]);
      expect(await claim(T0 + 5)).toEqual([['b', undefined]]);
      expect(store.stats()).toMatchObject({ pending: 1, claimed: 1, dead: 1, delivered: sut.reopen === undefined ? 2 : 1 });
    });

    it('rejects supersede without an ordering key, or not a boolean', async () => {
      const { store } = await setup();
      await expect(store.append([makeEvent('good'), makeEvent('s', { supersede: true })])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'supersede' });
      await expect(store.append([makeEvent('s', { orderingKey: 'k', supersede: 'yes' } as never)])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'supersede' });
      expect(store.stats().pending).toBe(0);
    });

    it('moves the waiting events of an ordering key with their endpoint; they still wait for the one in flight', async () => {
      const { store } = await setup();
      if (store.moveEndpoint === undefined) return;
      const K = { orderingKey: 'tenant-1' };
      await store.append([makeEvent('a', K), makeEvent('b', K), makeEvent('c', { ...K, url: B })]);
      expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => e.id)).toEqual(['a']);
      expect(await store.moveEndpoint(A, C, T0 + 1)).toBe(1);
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1, dead: 0 }, [B]: { pending: 1, dead: 0 }, [C]: { pending: 1, dead: 0 } });
      expect((await store.claim({ limit: 10, now: T0 + 1 })).events).toEqual([]);
      await store.settle([{ id: 'a', type: 'delivered', attempt: attempt(1, 200) }]);
      expect((await store.claim({ limit: 10, now: T0 + 1 })).events.map((e) => [e.id, e.url])).toEqual([['b', C]]);
      await store.settle([{ id: 'b', type: 'delivered', attempt: attempt(2, 200) }]);
      expect((await store.claim({ limit: 10, now: T0 + 1 })).events.map((e) => [e.id, e.url])).toEqual([['c', B]]);
    });

    it('reports the oldest pending creation time and per-endpoint counters', async () => {
      const { store } = await setup();
      expect(store.stats()).toMatchObject({ pending: 0, claimed: 0, delivered: 0, dead: 0, corrupt: 0, oldestPendingAt: undefined, endpoints: {} });
      await store.append([makeEvent('a', { createdAt: T0 + 5 }), makeEvent('b', { url: B, createdAt: T0 + 3 }), makeEvent('c', { createdAt: T0 + 9 })]);
      expect(store.stats()).toMatchObject({ pending: 3, oldestPendingAt: T0 + 3 });
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 2, dead: 0 }, [B]: { pending: 1, dead: 0 } });
      await store.claim({ limit: 10, now: T0, endpoint: B });
      await store.settle([{ id: 'b', type: 'delivered', attempt: attempt(0, 204) }]);
      expect(store.stats().oldestPendingAt).toBe(T0 + 5);
    });

    it('keeps oldestPendingAt exact through out-of-order appends, deliveries in any order, retries, dead letters, replays, purges and reopens', async () => {
      const sut = await setup();
      let store = sut.store;
      // A deterministic pseudo-random sequence (xorshift), so a failure can be replayed.
      let x = 12345;
      const next = (n: number): number => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return (x >>> 0) % n;
      };
      const model = new Map<string, { createdAt: number; state: 'pending' | 'claimed' | 'dead' }>();
      const expected = (): number | undefined => {
        const times = [...model.values()].filter((e) => e.state !== 'dead').map((e) => e.createdAt);
        return times.length === 0 ? undefined : Math.min(...times);
      };
      const ids = (state: 'pending' | 'claimed' | 'dead'): string[] => [...model].filter(([, e]) => e.state === state).map(([id]) => id);
      let made = 0;
      for (let step = 0; step < 160; step++) {
        const op = next(10);
        if (op <= 2) {
          const batch = Array.from({ length: 1 + next(4) }, () => {
            made++;
            // Mostly in creation order; one in four is older than what is already there.
            const createdAt = next(4) === 0 ? T0 + next(made * 10) : T0 + made * 10;
            return makeEvent(`e${made}`, { url: next(2) === 0 ? A : B, createdAt });
          });
          await store.append(batch);
          for (const event of batch) model.set(event.id, { createdAt: event.createdAt, state: 'pending' });
        } else if (op <= 4) {
          const { events } = await store.claim({ limit: 1 + next(5), now: T0 + 1e9 });
          for (const event of events) (model.get(event.id) as { state: string }).state = 'claimed';
        } else if (op <= 7) {
          const claimed = ids('claimed');
          // Settles a random claimed event, not the oldest: deliveries out of FIFO order.
          const id = claimed[next(Math.max(1, claimed.length))];
          if (id === undefined) continue;
          const entry = model.get(id) as { createdAt: number; state: 'pending' | 'claimed' | 'dead' };
          const kind = next(4);
          if (kind === 0) {
            await store.settle([{ id, type: 'delivered', attempt: attempt(step, 200) }]);
            model.delete(id);
          } else if (kind === 1) {
            await store.settle([{ id, type: 'retry', attempt: attempt(step), nextAttemptAt: T0 + step, countsAsAttempt: true }]);
            entry.state = 'pending';
          } else if (kind === 2) {
            await store.settle([{ id, type: 'dead', reason: 'http-status', attempt: attempt(step, 400), at: T0 + step }]);
            entry.state = 'dead';
          } else {
            await store.settle([{ id, type: 'release' }]);
            entry.state = 'pending';
          }
        } else if (op === 8) {
          const dead = ids('dead');
          const chosen = dead.filter(() => next(2) === 0);
          if (next(2) === 0) {
            const now = T0 + made * 10 + next(20);
            expect(await store.replay(chosen, now)).toBe(chosen.length);
            for (const id of chosen) model.set(id, { createdAt: now, state: 'pending' });
          } else {
            expect(await store.purge(chosen)).toBe(chosen.length);
            for (const id of chosen) model.delete(id);
          }
        } else if (sut.reopen !== undefined && next(3) === 0) {
          store = await reopened({ store, reopen: sut.reopen });
          for (const entry of model.values()) if (entry.state === 'claimed') entry.state = 'pending';
        }
        expect(store.stats().oldestPendingAt, `step ${step}`).toBe(expected());
      }
      expect(made).toBeGreaterThan(50);
    });

    it('hands out copies: mutating a returned event changes nothing in the store', async () => {
      const { store } = await setup();
      const event = makeEvent('e1');
      await store.append([event]);
      event.headers['x-n'] = 'changed';
      event.body[0] = 0;
      const { events } = await store.claim({ limit: 1, now: T0 });
      const claimed = events[0];
      if (claimed === undefined) throw new Error('nothing claimed');
      claimed.headers['x-n'] = 'again';
      claimed.history.push(attempt(1));
      await store.settle([{ id: 'e1', type: 'release' }]);
      const again = (await store.claim({ limit: 1, now: T0 })).events[0];
      expect(again).toEqual({ ...makeEvent('e1'), attempts: 0, history: [] });
    });

    it('rejects bad input with a typed error and keeps nothing of the batch', async () => {
      const { store } = await setup();
      const bad = { ...makeEvent('bad'), body: 'not bytes' } as unknown as NewEvent;
      await expect(store.append([makeEvent('good'), bad])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      await expect(store.append([makeEvent('x', { createdAt: Number.NaN })])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      await expect(store.append([makeEvent('')])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
      for (const orderingKey of ['', 'k'.repeat(257), 'lone-\uDC00', 7]) {
        await expect(store.append([makeEvent('good'), makeEvent('k', { orderingKey } as never)])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'orderingKey' });
      }
      expect(store.stats().pending).toBe(0);
      if (store.stats().bytesOnDisk > 0) {
        const before = store.stats().bytesOnDisk;
        await expect(store.append([bad])).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE' });
        expect(store.stats().bytesOnDisk).toBe(before);
      }
    });

    if (target.maxBytes !== false) it('rejects a batch that would exceed maxBytes, writing none of it', async () => {
      const { store } = await setup({ maxBytes: 4096 });
      await store.append([makeEvent('small')]);
      const big = makeEvent('big', { body: new Uint8Array(5000) });
      await expect(store.append([makeEvent('ok'), big])).rejects.toMatchObject({ code: 'ERR_OUTBOX_FULL' });
      expect(store.stats().pending).toBe(1);
      const { events } = await store.claim({ limit: 10, now: T0 });
      expect(events.map((e) => e.id)).toEqual(['small']);
      await store.settle([{ id: 'small', type: 'delivered', attempt: attempt(0, 200) }]);
      await store.append([makeEvent('after')]);
      expect(store.stats().pending).toBe(1);
    });

    it('rejects every call with ERR_OUTBOX_CLOSED after close; close is idempotent', async () => {
      const { store } = await setup();
      await store.append([makeEvent('e1')]);
      await store.close();
      await store.close();
      const closed = { code: 'ERR_OUTBOX_CLOSED' };
      await expect(store.append([makeEvent('e2')])).rejects.toMatchObject(closed);
      await expect(store.claim({ limit: 1, now: T0 })).rejects.toMatchObject(closed);
      await expect(store.settle([{ id: 'e1', type: 'release' }])).rejects.toMatchObject(closed);
      await expect(store.deadLetters()).rejects.toMatchObject(closed);
      await expect(store.replay()).rejects.toMatchObject(closed);
      await expect(store.purge()).rejects.toMatchObject(closed);
    });

    if (!target.durable) return;

    it('keeps ordering keys and their order across reopens: a retried first event still holds its key', async () => {
      const sut = await setup();
      if (sut.reopen === undefined) throw new Error('a durable target must return reopen');
      const K = { orderingKey: 'customer/acme' };
      await sut.store.append([makeEvent('k1', K), makeEvent('k2', K), makeEvent('k3', K)]);
      await sut.store.claim({ limit: 10, now: T0 });
      await sut.store.settle([{ id: 'k1', type: 'dead', reason: 'http-status', attempt: attempt(1, 400), at: T0 + 1 }]);
      await sut.store.claim({ limit: 10, now: T0 + 1 });
      await sut.store.settle([{ id: 'k2', type: 'retry', attempt: attempt(2), nextAttemptAt: T0 + 500, countsAsAttempt: true }]);
      let store = await reopened(sut);
      expect((await store.claim({ limit: 10, now: T0 + 100 })).events).toEqual([]);
      const [k2] = (await store.claim({ limit: 10, now: T0 + 500 })).events;
      expect(k2).toMatchObject({ id: 'k2', orderingKey: 'customer/acme', attempts: 1 });
      await store.settle([{ id: 'k2', type: 'release' }]);
      expect(await store.replay(['k1'], T0 + 600)).toBe(1);
      store = await reopened({ store, reopen: sut.reopen });
      const ids = async (): Promise<string[]> => (await store.claim({ limit: 10, now: T0 + 600 })).events.map((e) => e.id);
      expect(await ids()).toEqual(['k1']);
      await store.settle([{ id: 'k1', type: 'delivered', attempt: attempt(3, 200) }]);
      expect(await ids()).toEqual(['k2']);
      await store.settle([{ id: 'k2', type: 'delivered', attempt: attempt(4, 200) }]);
      expect(await ids()).toEqual(['k3']);
      expect((await store.deadLetters()).length).toBe(0);
    });

    it('keeps supersede across reopens: an event marked but not settled before the reopen is judged again', async () => {
      const sut = await setup();
      if (sut.reopen === undefined) throw new Error('a durable target must return reopen');
      const K = { orderingKey: 'customer/acme' };
      await sut.store.append([makeEvent('a', K), makeEvent('b', { ...K, supersede: true }), makeEvent('c', K)]);
      const marked = (await sut.store.claim({ limit: 10, now: T0 })).events;
      expect(marked.map((e) => [e.id, e.supersededBy])).toEqual([['a', 'b']]);
      // Gone before its outcome was written: a is pending again, and marked again.
      let store = await reopened(sut);
      expect(await store.get?.('b')).toMatchObject({ id: 'b', supersede: true, state: 'pending' });
      expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => [e.id, e.supersededBy])).toEqual([['a', 'b']]);
      await store.settle([{ id: 'a', type: 'superseded', by: 'b' }]);
      store = await reopened({ store, reopen: sut.reopen });
      expect(store.stats()).toMatchObject({ pending: 2, delivered: 0 });
      expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => [e.id, e.supersededBy, e.supersede])).toEqual([['b', undefined, true]]);
      await store.settle([{ id: 'b', type: 'delivered', attempt: attempt(1, 200) }]);
      expect((await store.claim({ limit: 10, now: T0 })).events.map((e) => [e.id, e.supersededBy])).toEqual([['c', undefined]]);
    });

    it('keeps a moved endpoint moved across reopens, with attempts, histories and dead reasons', async () => {
      const sut = await setup();
      if (sut.reopen === undefined || sut.store.moveEndpoint === undefined) throw new Error('a durable target must return reopen');
      await sut.store.append([makeEvent('r1'), makeEvent('n1', { nextAttemptAt: T0 + 50 }), makeEvent('x1'), makeEvent('b1', { url: B })]);
      await sut.store.claim({ limit: 10, now: T0, endpoint: A });
      await sut.store.settle([
        { id: 'r1', type: 'retry', attempt: attempt(1, 500), nextAttemptAt: T0 + 9_000, countsAsAttempt: true },
        { id: 'x1', type: 'dead', reason: 'max-attempts', attempt: attempt(2, 503), at: T0 + 4 },
      ]);
      expect(await sut.store.moveEndpoint(A, C, T0 + 10)).toBe(3);
      let store = await reopened(sut);
      expect(store.stats().endpoints).toEqual({ [B]: { pending: 1, dead: 0 }, [C]: { pending: 2, dead: 1 } });
      const events = (await store.claim({ limit: 10, now: T0 + 10, endpoint: C })).events;
      expect(events.map((e) => [e.id, e.url, e.attempts, e.nextAttemptAt])).toEqual([
        ['r1', C, 0, T0 + 10],
        ['n1', C, 0, T0 + 10],
      ]);
      expect(events[0]?.history).toEqual([attempt(1, 500)]);
      await store.settle([{ id: 'r1', type: 'retry', attempt: attempt(3, 500), nextAttemptAt: T0 + 20, countsAsAttempt: true }, { id: 'n1', type: 'release' }]);
      store = await reopened({ store, reopen: sut.reopen });
      expect(store.stats().endpoints).toEqual({ [B]: { pending: 1, dead: 0 }, [C]: { pending: 2, dead: 1 } });
      expect((await store.deadLetters()).map((d) => [d.id, d.url, d.reason, d.deadAt])).toEqual([['x1', C, 'max-attempts', T0 + 4]]);
      expect((await store.claim({ limit: 10, now: T0 + 20, endpoint: C })).events.map((e) => [e.id, e.attempts])).toEqual([
        ['n1', 0],
        ['r1', 1],
      ]);
    });

    it('keeps a dead letter replayed to another URL there across reopens, retries, death and replay', async () => {
      const sut = await setup();
      if (sut.reopen === undefined) throw new Error('a durable target must return reopen');
      await sut.store.append([makeEvent('mv'), makeEvent('other')]);
      await sut.store.claim({ limit: 10, now: T0, endpoint: A });
      await sut.store.settle([{ id: 'mv', type: 'dead', reason: 'http-status', attempt: attempt(1, 410), at: T0 + 1 }, { id: 'other', type: 'release' }]);
      expect(await sut.store.replay(['mv'], T0 + 2, C)).toBe(1);
      let store = await reopened(sut);
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1, dead: 0 }, [C]: { pending: 1, dead: 0 } });
      let [event] = (await store.claim({ limit: 10, now: T0 + 2, endpoint: C })).events;
      expect(event).toMatchObject({ id: 'mv', url: C, body: makeEvent('mv').body });
      await store.settle([{ id: 'mv', type: 'retry', attempt: attempt(2, 503), nextAttemptAt: T0 + 3, countsAsAttempt: true }]);
      store = await reopened({ store, reopen: sut.reopen });
      [event] = (await store.claim({ limit: 10, now: T0 + 3, endpoint: C })).events;
      expect(event).toMatchObject({ id: 'mv', url: C, attempts: 1 });
      await store.settle([{ id: 'mv', type: 'dead', reason: 'max-attempts', attempt: attempt(3, 503), at: T0 + 4 }]);
      store = await reopened({ store, reopen: sut.reopen });
      expect((await store.deadLetters()).map((d) => [d.id, d.url])).toEqual([['mv', C]]);
      expect(await store.replay(['mv'], T0 + 5)).toBe(1);
      store = await reopened({ store, reopen: sut.reopen });
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1, dead: 0 }, [C]: { pending: 1, dead: 0 } });
      [event] = (await store.claim({ limit: 10, now: T0 + 5, endpoint: C })).events;
      expect(event).toMatchObject({ id: 'mv', url: C, history: [attempt(1, 410), attempt(2, 503), attempt(3, 503)] });
      await store.settle([{ id: 'mv', type: 'delivered', attempt: attempt(4, 200) }]);
      store = await reopened({ store, reopen: sut.reopen });
      expect(store.stats()).toMatchObject({ pending: 1, dead: 0 });
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1, dead: 0 } });
    });

    it('keeps pending state, dead letters and deliveries across a reopen; claims are not kept', async () => {
      const sut = await setup();
      const { store } = sut;
      if (sut.reopen === undefined) throw new Error('a durable target must return reopen');
      await store.append([makeEvent('p1'), makeEvent('p2', { url: B }), makeEvent('dv'), makeEvent('dd'), makeEvent('cl')]);
      await store.claim({ limit: 10, now: T0 });
      await store.settle([
        { id: 'p1', type: 'retry', attempt: attempt(1), nextAttemptAt: T0 + 50, countsAsAttempt: true },
        { id: 'dv', type: 'delivered', attempt: attempt(2, 200) },
        { id: 'dd', type: 'dead', reason: 'http-status', attempt: attempt(3, 400), at: T0 + 7 },
        { id: 'p2', type: 'release' },
      ]);
      const again = await reopened(sut);
      expect(again.stats()).toMatchObject({ pending: 3, claimed: 0, dead: 1, oldestPendingAt: T0 });
      expect(again.stats().endpoints).toEqual({ [A]: { pending: 2, dead: 1 }, [B]: { pending: 1, dead: 0 } });
      const { events } = await again.claim({ limit: 10, now: T0 + 50 });
      expect(events.map((e) => e.id).sort()).toEqual(['cl', 'p1', 'p2']);
      expect(events.find((e) => e.id === 'p1')).toMatchObject({ attempts: 1, nextAttemptAt: T0 + 50, history: [attempt(1)] });
      expect(events.find((e) => e.id === 'p2')).toEqual({ ...makeEvent('p2', { url: B }), attempts: 0, history: [] });
      const dead = await again.deadLetters();
      expect(dead).toEqual([{ ...makeEvent('dd'), attempts: 1, history: [attempt(3, 400)], reason: 'http-status', deadAt: T0 + 7 }]);
      await again.settle([{ id: 'p1', type: 'delivered', attempt: attempt(4, 200) }]);
      expect(await again.replay(['dd'], T0 + 99)).toBe(1);
      const third = await reopened({ store: again, reopen: sut.reopen });
      expect(third.stats()).toMatchObject({ pending: 3, dead: 0, oldestPendingAt: T0 });
      const replayed = (await third.claim({ limit: 10, now: T0 + 99 })).events.find((e) => e.id === 'dd');
      expect(replayed).toMatchObject({ attempts: 0, createdAt: T0 + 99, nextAttemptAt: T0 + 99 });
      await third.settle([{ id: 'dd', type: 'dead', reason: 'invalid', at: T0 + 100 }]);
      expect(await third.purge()).toBe(1);
      const fourth = await reopened({ store: third, reopen: sut.reopen });
      expect(fourth.stats()).toMatchObject({ pending: 2, dead: 0 });
      expect(await fourth.deadLetters()).toEqual([]);
    });
  });
}
