import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StoreIoError } from '../src/errors.js';
import { Outbox } from '../src/outbox.js';
import { generateSigningKeyPair } from '../src/signing/ed25519-keys.js';
import { verifyWebhook } from '../src/signing/sign.js';
import { createSender } from '../src/sender.js';
import type { OutboxOptions } from '../src/options.js';
import { FileStore } from '../src/store/file/file-store.js';
import { LowdbStore } from '../src/store/lowdb.js';
import { MemoryStore } from '../src/store/memory.js';
import type { AppendOptions, DeadLetter, DeadLetterQuery, NewEvent, OutboxStore } from '../src/store/store.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { FlakyReceiver, Reply } from '../src/testing/flaky-receiver.js';
import type { Transport } from '../src/transport/transport.js';
import { bodyOf, closedAfterEach, enqueueMany, expectAllDelivered, FAST_RETRY, newSecret, waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

const tempDir = tempDirs('outbox');

const opened = closedAfterEach();

interface StoreKind {
  name: string;
  create(): Promise<OutboxStore>;
}

const stores: StoreKind[] = [
  { name: 'MemoryStore', create: async () => new MemoryStore() },
  { name: 'FileStore', create: async () => new FileStore({ dir: await tempDir() }) },
];

async function openOutbox(
  rx: FlakyReceiver,
  secret: string,
  store: OutboxStore,
  options: Partial<OutboxOptions> = {},
): Promise<Outbox> {
  opened.outbox = await Outbox.open({ store, url: rx.url, signingSecret: secret, retry: FAST_RETRY, timeoutMs: 5_000, ...options });
  return opened.outbox;
}

describe.each(stores)('Outbox delivery ($name)', (kind) => {
  it('delivers every enqueued event once, signed, with its body and a unique id', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    const box = await openOutbox(rx, secret, await kind.create());
    const delivered: string[] = [];
    box.on('delivered', (event) => delivered.push(event.id));
    const enqueued = await enqueueMany(box, 200);
    await box.drain({ timeoutMs: 10_000 });
    expectAllDelivered(rx, enqueued);
    expect(rx.requests).toHaveLength(200);
    expect(delivered.sort()).toEqual([...enqueued.keys()].sort());
    expect(box.stats()).toMatchObject({ pending: 0, inFlight: 0, delivered: 200, dead: 0 });
    expect(rx.peakConcurrency).toBeLessThanOrEqual(16);
  });

  it('replays an incident: 500s, then 503 + Retry-After, then 200 with random 500s and drops; nothing lost', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    // Phases by time since the first request, so they last as long whatever the client does.
    let start: number | undefined;
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    rx.setScript((req): Reply => {
      start ??= req.at;
      const elapsed = req.at - start;
      if (elapsed < 400) return 500;
      if (elapsed < 700) return { status: 503, headers: { 'retry-after': '1' } };
      const roll = random();
      if (roll < 0.05) return 500;
      if (roll < 0.08) return { drop: true };
      return 200;
    });
    const box = await openOutbox(rx, secret, await kind.create(), { concurrency: 8 });
    const errors: unknown[] = [];
    box.on('error', (error) => errors.push(error));
    const enqueued = await enqueueMany(box, 2_000);
    await box.drain({ timeoutMs: 50_000 });

    expectAllDelivered(rx, enqueued);
    const duringOutage = rx.requests.filter((r) => start !== undefined && r.at - start < 700).length;
    // The outage is probed, not hammered: a handful of requests per phase, not one per event.
    expect(duringOutage).toBeLessThan(100);
    expect(box.stats()).toMatchObject({ pending: 0, inFlight: 0, delivered: 2_000, dead: 0 });
    expect(errors).toEqual([]);
  }, 60_000);

  it('sends the events of each ordering key one at a time and in order through 500s and drops, while other keys go on', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret, latencyMs: 3 }));
    let seed = 7;
    rx.setScript((): Reply => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      const roll = seed / 2 ** 31;
      if (roll < 0.2) return 500;
      if (roll < 0.25) return { drop: true };
      return 200;
    });
    const box = await openOutbox(rx, secret, await kind.create(), { concurrency: 8 });
    const keys = ['order-1', 'order-2', 'order-3', 'order-4'];
    const enqueued: string[] = [];
    for (let n = 0; n < 25; n++) {
      for (const key of keys) enqueued.push((await box.enqueue({ orderingKey: key, body: { key, n } })).id);
      enqueued.push((await box.enqueue({ body: { n } })).id);
    }
    await box.drain({ timeoutMs: 30_000 });

    expect(rx.deliveredIds()).toEqual(new Set(enqueued));
    for (const key of keys) {
      const seen = rx.requests.map((r) => ({ ...(JSON.parse(r.body) as { key?: string; n: number }), status: r.status })).filter((r) => r.key === key);
      // Every attempt for n + 1 comes after the 2xx for n: never two at once, never out of order.
      expect(seen.map((r) => r.n)).toEqual([...seen.map((r) => r.n)].sort((a, b) => a - b));
      for (let i = 1; i < seen.length; i++) if ((seen[i] as { n: number }).n !== (seen[i - 1] as { n: number }).n) expect(seen[i - 1]?.status).toBe(200);
      expect(new Set(seen.map((r) => r.n)).size).toBe(25);
    }
    expect(rx.requests.some((r) => r.status === 500)).toBe(true);
    expect(rx.peakConcurrency).toBeGreaterThan(1);
    expect(box.stats()).toMatchObject({ pending: 0, inFlight: 0, delivered: 125, dead: 0 });
  }, 40_000);

  it('signs with an ed25519 whsk_ key next to a whsec_ secret; a receiver holding only the whpk_ accepts every request', async () => {
    const pair = generateSigningKeyPair();
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret: pair.publicKey, script: [500, { drop: true }] }));
    const box = await openOutbox(rx, pair.secretKey, await kind.create(), { signingSecret: [pair.secretKey, secret] });
    const enqueued = await enqueueMany(box, 20);
    await box.drain({ timeoutMs: 10_000 });
    expectAllDelivered(rx, enqueued);
    for (const request of rx.requests) {
      expect(String(request.headers['webhook-signature'])).toMatch(/^v1a,\S+ v1,\S+$/);
      expect(verifyWebhook(secret, request.headers, request.body, { toleranceSeconds: Number.POSITIVE_INFINITY }).ok).toBe(true);
    }
  });

  it('keeps the signing secret and sent credentials out of dead-letter excerpts', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    rx.setScript(() => ({ status: 400, body: `bad signature, expected key ${secret} (${secret.slice(6)}), you sent Bearer tok-123456` }));
    const box = await openOutbox(rx, secret, await kind.create(), { headers: { authorization: 'Bearer tok-123456' } });
    await box.enqueue({ body: 1 });
    await box.drain({ timeoutMs: 5_000 });
    const [letter] = await box.deadLetters();
    const error = letter?.history.at(-1)?.error ?? '';
    expect(error).toContain('bad signature, expected key [redacted] ([redacted]), you sent [redacted]');
    expect(error).not.toContain(secret.slice(6, 20));
  });

  it('dead-letters 400, 410 and 422 after one attempt, with status and excerpt; replay delivers them', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    const statusFor = new Map<string, number>();
    rx.setScript((req): Reply => {
      const status = statusFor.get(req.id ?? '');
      return status === undefined ? 200 : { status, body: `rejected ${status}` };
    });
    const box = await openOutbox(rx, secret, await kind.create(), { autoFlush: false });
    const dead: string[] = [];
    box.on('dead', (event) => dead.push(`${event.reason}:${event.status}`));
    for (const status of [400, 410, 422]) {
      const { id } = await box.enqueue({ body: bodyOf(status) });
      statusFor.set(id, status);
    }
    const { id: fine } = await box.enqueue({ body: bodyOf(1) });
    await box.drain({ timeoutMs: 5_000 });

    expect(dead.sort()).toEqual(['http-status:400', 'http-status:410', 'http-status:422']);
    for (const id of statusFor.keys()) expect(rx.countById(id)).toBe(1);
    expect(rx.deliveredIds()).toEqual(new Set([fine]));
    const letters = await box.deadLetters();
    expect(letters.map((l) => l.id).sort()).toEqual([...statusFor.keys()].sort());
    for (const letter of letters) {
      const status = statusFor.get(letter.id) as number;
      expect(letter).toMatchObject({ reason: 'http-status', attempts: 1 });
      expect(letter.history).toHaveLength(1);
      expect(letter.history[0]).toMatchObject({ status, error: `HTTP ${status}: rejected ${status}` });
    }
    expect(box.stats().dead).toBe(3);

    statusFor.clear();
    // The 410 disabled the URL (docs/06): its owner brought it back.
    expect(await box.enableEndpoint(rx.url)).toBe(true);
    expect(await box.replay()).toBe(3);
    await box.drain({ timeoutMs: 5_000 });
    expect(rx.deliveredIds().size).toBe(4);
    expect(await box.deadLetters()).toEqual([]);
    expect(box.stats()).toMatchObject({ pending: 0, dead: 0, delivered: 4 });
  });

  it('replays dead letters to the URL a receiver moved to: same webhook-id and body, signed, old URL not asked again', async () => {
    const secret = newSecret();
    const old = (opened.receiver = await startFlakyReceiver({ secret, script: () => ({ status: 410, body: 'moved' }) }));
    const moved = await startFlakyReceiver({ secret });
    try {
      // All three are sent together: a 410 disables the URL, and one enqueued after it would not be sent.
      const box = await openOutbox(old, secret, await kind.create(), { autoFlush: false });
      const ids = [];
      for (let n = 0; n < 3; n++) ids.push((await box.enqueue({ body: bodyOf(n) })).id);
      await box.drain({ timeoutMs: 5_000 });
      expect(box.stats()).toMatchObject({ dead: 3 });
      const url = `${moved.url}?tenant=7`;
      await expect(box.replay(ids, { url: 'ftp://example.test/x' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'url' });
      await expect(box.replay(ids, { uri: url } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      expect(box.stats()).toMatchObject({ dead: 3, pending: 0 });
      expect(await box.replay(ids.slice(0, 2), { url })).toBe(2);
      await box.drain({ timeoutMs: 5_000 });
      expect(old.requests).toHaveLength(3);
      expect(moved.requests.map((r) => [r.id, r.path, r.signatureValid, JSON.parse(r.body)])).toEqual(
        ids.slice(0, 2).map((id, n) => [id, `${new URL(moved.url).pathname}?tenant=7`, true, bodyOf(n)]),
      );
      expect((await box.deadLetters()).map((l) => [l.id, l.url])).toEqual([[ids[2], old.url]]);
      expect(box.stats()).toMatchObject({ pending: 0, dead: 1, delivered: 2 });
    } finally {
      await moved.close();
    }
  });

  it('signs each endpoint with its own secret through a resolver; a resolver outage delays, never loses', async () => {
    const [secretA, secretB] = [newSecret(), newSecret()];
    const a = (opened.receiver = await startFlakyReceiver({ secret: secretA }));
    const b = await startFlakyReceiver({ secret: secretB });
    let outage = 2;
    try {
      const box = (opened.outbox = await Outbox.open({
        store: await kind.create(),
        retry: FAST_RETRY,
        signingSecret: async (url) => {
          if (url === b.url && outage-- > 0) throw new Error('vault sealed');
          return url === a.url ? secretA : secretB;
        },
      }));
      const retries: string[] = [];
      box.on('retry', (event) => retries.push(event.error));
      for (let n = 0; n < 4; n++) await box.enqueue({ url: n % 2 === 0 ? a.url : b.url, body: bodyOf(n) });
      await box.drain({ timeoutMs: 5_000 });
      expect(box.stats()).toMatchObject({ pending: 0, dead: 0, delivered: 4 });
      for (const rx of [a, b]) {
        expect(rx.requests.map((r) => r.signatureValid)).toEqual([true, true]);
        expect(rx.deliveredIds().size).toBe(2);
      }
      // The two failed attempts sent nothing, and say why.
      expect(retries).toEqual(['ERR_SIGNING', 'ERR_SIGNING']);
    } finally {
      await b.close();
    }
  });

  it('moves an endpoint: waits for the request in flight, then everything queued goes to the new URL only', async () => {
    const secret = newSecret();
    const old = (opened.receiver = await startFlakyReceiver({ secret, latencyMs: 40, script: () => 503 }));
    const moved = await startFlakyReceiver({ secret });
    try {
      // Backoff of a minute: without the move these would wait at the old URL.
      const box = await openOutbox(old, secret, await kind.create(), { concurrency: 2, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } });
      const ids: string[] = [];
      for (let n = 0; n < 20; n++) ids.push((await box.enqueue({ body: bodyOf(n) })).id);
      await waitFor(() => old.requests.length >= 3 && old.inProgress > 0, 5_000, 'requests in flight to the old URL');
      expect(await box.moveEndpoint(old.url, moved.url)).toBe(20);
      const sentToOld = old.requests.length;
      expect(old.inProgress).toBe(0);
      await box.drain({ timeoutMs: 10_000 });
      expect(old.requests).toHaveLength(sentToOld);
      expect(moved.deliveredIds()).toEqual(new Set(ids));
      expect(moved.requests.every((r) => r.signatureValid)).toBe(true);
      expect(box.stats()).toMatchObject({ pending: 0, dead: 0, delivered: 20 });
      for (const counts of Object.values(box.stats().endpoints)) expect(counts).toMatchObject({ pending: 0, dead: 0 });
    } finally {
      await moved.close();
    }
  });

  it('moves events older than maxAge to the dead letters while the receiver keeps failing', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret, script: () => 500 }));
    const box = await openOutbox(rx, secret, await kind.create(), {
      retry: { ...FAST_RETRY, maxAgeMs: 300 },
    });
    const enqueued = await enqueueMany(box, 50);
    await box.drain({ timeoutMs: 5_000 });
    const letters = await box.deadLetters();
    expect(letters.map((l) => l.id).sort()).toEqual([...enqueued.keys()].sort());
    expect(letters.every((l) => l.reason === 'max-age')).toBe(true);
    expect(rx.deliveredIds().size).toBe(0);
    // The circuit opened: far fewer requests than events times attempts.
    expect(rx.requests.length).toBeLessThan(60);
  });

  it('maxAttempts dead-letters an event that keeps failing on its own', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    const { id: bad } = { id: 'evt_always_500' };
    rx.setScript((req): Reply => (req.id === bad ? 500 : 200));
    const box = await openOutbox(rx, secret, await kind.create(), { retry: { ...FAST_RETRY, maxAttempts: 3 } });
    // The endpoint shows it is up: a failure is then the event's own (an endpoint that answers nothing but
    // failures is taken for down, and the event waits for retry.maxAgeMs instead: see the outage tests).
    await box.enqueue({ id: 'evt_fine', body: bodyOf(0) });
    await box.drain({ timeoutMs: 5_000 });
    await box.enqueue({ id: bad, body: bodyOf(1) });
    await box.drain({ timeoutMs: 5_000 });
    expect(rx.countById(bad)).toBe(3);
    const [letter] = await box.deadLetters();
    expect(letter).toMatchObject({ id: bad, reason: 'max-attempts', attempts: 3 });
    expect(letter?.history.map((h) => h.status)).toEqual([500, 500, 500]);
  });

  it('finds an event by id while it waits, while its request is out, once dead; not once delivered', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret }));
    let answer: ((reply: Reply) => void) | undefined;
    rx.setScript((req): Promise<Reply> | Reply => (req.id === 'slow' && answer === undefined ? new Promise((resolve) => (answer = resolve)) : req.id === 'bad' ? 422 : 200));
    const box = await openOutbox(rx, secret, await kind.create(), { concurrency: 1 });
    await box.enqueue({ id: 'slow', body: bodyOf(1), orderingKey: 'k' });
    await box.enqueue({ id: 'next', body: bodyOf(2), orderingKey: 'k' });
    await box.enqueue({ id: 'bad', body: bodyOf(3) });
    await waitFor(() => answer !== undefined, 5_000, 'slow sent');
    expect(await box.find('slow')).toMatchObject({ id: 'slow', state: 'in-flight', attempts: 0, url: rx.url, orderingKey: 'k' });
    // Waiting for its key: pending, with its payload.
    const next = await box.find('next');
    expect(next).toMatchObject({ id: 'next', state: 'pending', attempts: 0 });
    expect(JSON.parse(Buffer.from(next?.body ?? []).toString())).toEqual(bodyOf(2));
    answer?.(503);
    await waitFor(() => rx.countById('slow') === 2, 5_000, 'slow retried');
    await box.drain({ timeoutMs: 5_000 });
    expect(await box.find('bad')).toMatchObject({ id: 'bad', state: 'dead', reason: 'http-status', attempts: 1, history: [expect.objectContaining({ status: 422 })] });
    for (const id of ['slow', 'next', 'never-enqueued']) expect(await box.find(id)).toBeUndefined();
    await expect(box.find('')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'id' });
  });
});

describe('Outbox lifecycle', () => {
  it('rejects enqueue, drain and replay after close; close is idempotent', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url }));
    const first = box.close();
    expect(box.close()).toBe(first);
    await first;
    await expect(box.enqueue({ body: 1 })).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
    await expect(box.drain()).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
    await expect(box.replay()).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
  });

  it('close() during drain() makes the drain reject at once with ERR_OUTBOX_CLOSED, not at its timeout', async () => {
    const rx = (opened.receiver = await startFlakyReceiver({ script: () => ({ status: 500 }) }));
    // The event waits a minute for its retry and the drain an hour: only close() can end the drain in time.
    const retry = { ...FAST_RETRY, baseDelayMs: 60_000, maxDelayMs: 60_000 };
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, retry, random: () => 0.99 }));
    const retried = new Promise((resolve) => box.once('retry', resolve));
    await enqueueMany(box, 1);
    await retried;
    // Let the retry's bookkeeping finish: nothing is in flight or being written when close() comes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const draining = box.drain({ timeoutMs: 3_600_000 });
    const closed = box.close({ timeoutMs: 0 });
    await expect(draining).rejects.toMatchObject({ code: 'ERR_OUTBOX_CLOSED' });
    await closed;
  });

  it('takes drain and close timeouts as whole ms or Infinity, and rejects anything else with ERR_INVALID_OPTION', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url }));
    for (const timeoutMs of [-1, Number.NaN, 1.5, '10' as unknown as number]) {
      await expect(box.drain({ timeoutMs })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      await expect(box.close({ timeoutMs })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    }
    await enqueueMany(box, 3);
    await box.drain({ timeoutMs: Number.POSITIVE_INFINITY });
    expect(rx.deliveredIds().size).toBe(3);
    await box.close({ timeoutMs: Number.POSITIVE_INFINITY });
  });

  it('sends what was enqueued while its first claims were running (a poke as a pump ends is not lost)', async () => {
    let sends = 0;
    const transport = {
      send: (): Promise<never> => {
        sends++;
        return new Promise(() => {});
      },
    };
    // Opening starts a pump; the batch lands while its claims run, and its poke just as it ends.
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://127.0.0.1:9/hook', transport }));
    await enqueueMany(box, 5);
    await waitFor(() => sends === 5, 5_000, 'five requests');
    expect(box.stats()).toMatchObject({ pending: 5, inFlight: 5 });
  });

  it('drain rejects with ERR_DRAIN_TIMEOUT and the remaining count while the receiver hangs', async () => {
    const rx = (opened.receiver = await startFlakyReceiver({ script: () => ({ hang: true }) }));
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, retry: FAST_RETRY }));
    await enqueueMany(box, 5);
    await expect(box.drain({ timeoutMs: 100 })).rejects.toMatchObject({ code: 'ERR_DRAIN_TIMEOUT', remaining: 5 });
    expect(box.stats()).toMatchObject({ pending: 5, inFlight: 5 });
  });

  it('close abandons hanging requests after its timeout and leaves them pending', async () => {
    const rx = (opened.receiver = await startFlakyReceiver({ script: () => ({ hang: true }) }));
    const store = new MemoryStore();
    const box = (opened.outbox = await Outbox.open({ store, url: rx.url, retry: FAST_RETRY }));
    await enqueueMany(box, 3);
    await waitFor(() => rx.inProgress === 3, 5_000, 'three hanging requests');
    const pendingBefore = store.stats().pending;
    await box.close({ timeoutMs: 50 });
    expect(pendingBefore).toBe(3);
    expect(store.stats()).toMatchObject({ pending: 3, claimed: 0, delivered: 0 });
    // The hanging requests end (aborted, their sockets closed): the receiver sees their connections close.
    await waitFor(() => rx.inProgress === 0, 5_000, 'the abandoned requests to be aborted');
  });

  it('refuses a second Outbox on the same dir with ERR_OUTBOX_LOCKED until the first is closed', async () => {
    const dir = await tempDir();
    const box = (opened.outbox = await Outbox.open({ dir, url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    await box.enqueue({ body: 1 });
    await expect(Outbox.open({ dir, url: 'http://127.0.0.1:9/hook' })).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED' });
    await box.close();
    const again = (opened.outbox = await Outbox.open({ dir, url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    expect(again.stats().pending).toBe(1);
  });

  it('requests abandoned by close stay on disk and go out after reopening, with the same webhook-id', async () => {
    const secret = newSecret();
    const rx = (opened.receiver = await startFlakyReceiver({ secret, script: () => ({ hang: true }) }));
    const dir = await tempDir();
    const first = await Outbox.open({ dir, url: rx.url, signingSecret: secret, retry: FAST_RETRY });
    const enqueued = await enqueueMany(first, 3);
    await waitFor(() => rx.inProgress === 3, 5_000, 'three hanging requests');
    await first.close({ timeoutMs: 50 });

    rx.setScript(() => 200);
    const second = (opened.outbox = await Outbox.open({ dir, url: rx.url, signingSecret: secret, retry: FAST_RETRY }));
    expect(second.stats().pending).toBe(3);
    await second.drain({ timeoutMs: 5_000 });
    expect(rx.deliveredIds()).toEqual(new Set(enqueued.keys()));
    for (const id of enqueued.keys()) expect(rx.countById(id)).toBe(2);
  });

  it('close waits for in-flight requests that finish within its timeout', async () => {
    const rx = (opened.receiver = await startFlakyReceiver({ script: () => ({ status: 200, delayMs: 100 }) }));
    const store = new MemoryStore();
    const box = (opened.outbox = await Outbox.open({ store, url: rx.url }));
    await enqueueMany(box, 3);
    await waitFor(() => rx.inProgress === 3, 5_000, 'three slow requests');
    await box.close({ timeoutMs: 5_000 });
    expect(rx.deliveredIds().size).toBe(3);
    expect(store.stats()).toMatchObject({ pending: 0, delivered: 3 });
  });

  it('autoFlush: false only produces; drain delivers on demand', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, autoFlush: false }));
    await enqueueMany(box, 10);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rx.requests).toHaveLength(0);
    expect(box.stats().pending).toBe(10);
    await box.drain({ timeoutMs: 5_000 });
    expect(rx.deliveredIds().size).toBe(10);
  });

  it('rejects enqueue with ERR_OUTBOX_FULL when the store is full, and keeps what it accepted', async () => {
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore({ maxBytes: 2_000 }), url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    await box.enqueue({ body: 'x'.repeat(1_000) });
    await expect(box.enqueue({ body: 'y'.repeat(1_500) })).rejects.toMatchObject({ code: 'ERR_OUTBOX_FULL' });
    expect(box.stats().pending).toBe(1);
  });

  it('enqueues made in the same tick near maxBytes each get their own verdict, for FileStore too', async () => {
    for (const options of [{ store: new MemoryStore({ maxBytes: 2_000 }) }, { dir: await tempDir(), maxBytes: 2_000 }]) {
      const box = await Outbox.open({ ...options, url: 'http://127.0.0.1:9/hook', autoFlush: false });
      try {
        const results = await Promise.allSettled(Array.from({ length: 7 }, (_, i) => box.enqueue({ id: `e${i}`, body: 'x'.repeat(300) })));
        const accepted = results.filter((r) => r.status === 'fulfilled').length;
        // Together the seven do not fit; the first ones do, one by one, in order.
        expect(accepted).toBeGreaterThanOrEqual(3);
        expect(results.slice(0, accepted).every((r) => r.status === 'fulfilled')).toBe(true);
        for (const r of results.slice(accepted)) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'ERR_OUTBOX_FULL' } });
        expect(box.stats().pending).toBe(accepted);
      } finally {
        await box.close();
      }
    }
  });

  // A segment is deleted only once a newer one is started, at segmentBytes (16 MiB by default): with a
  // smaller maxBytes the outbox filled once and then refused every enqueue for good, drained or reopened.
  it('a dir outbox with a maxBytes below 16 MiB that filled up accepts events again once drained, also after a restart', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const dir = await tempDir();
    const maxBytes = 256 * 1024;
    const options = { dir, maxBytes, url: rx.url, autoFlush: false };
    let box = (opened.outbox = await Outbox.open(options));
    let accepted = 0;
    let refused: unknown;
    for (let i = 0; i < 2_000 && refused === undefined; i++) {
      await box.enqueue({ body: 'x'.repeat(1_000) }).then(
        () => (accepted += 1),
        (error: unknown) => (refused = error),
      );
    }
    expect(refused).toMatchObject({ code: 'ERR_OUTBOX_FULL' });
    expect(accepted).toBeGreaterThan(100);
    await box.drain({ timeoutMs: 20_000 });
    expect(rx.deliveredIds().size).toBe(accepted);
    expect(box.stats().bytesOnDisk).toBeLessThan(maxBytes / 2);
    await box.enqueue({ id: 'after-the-outage', body: 1 });
    await box.close();
    box = opened.outbox = await Outbox.open(options);
    await box.enqueue({ id: 'after-a-restart', body: 2 });
    await box.drain({ timeoutMs: 5_000 });
    expect([...rx.deliveredIds()].slice(-2).sort()).toEqual(['after-a-restart', 'after-the-outage']);
  });

  it('hands the enqueues of one tick to the store as one batch, also when producers loop on enqueue', async () => {
    const batches: number[] = [];
    class Counting extends MemoryStore {
      override append(events: Parameters<MemoryStore['append']>[0]): Promise<void> {
        batches.push(events.length);
        return super.append(events);
      }
    }
    const box = (opened.outbox = await Outbox.open({ store: new Counting(), url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    const producer = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) await box.enqueue({ body: i });
    };
    await Promise.all(Array.from({ length: 20 }, producer));
    expect(batches).toEqual([20, 20, 20]);
    expect(box.stats().pending).toBe(60);
  });

  it('reports a store fault as an error event and keeps delivering afterwards', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    class FaultyOnce extends MemoryStore {
      #failed = false;
      override async claim(request: Parameters<MemoryStore['claim']>[0]): ReturnType<MemoryStore['claim']> {
        if (!this.#failed) {
          this.#failed = true;
          throw new StoreIoError('disk went away');
        }
        return super.claim(request);
      }
    }
    const box = (opened.outbox = await Outbox.open({ store: new FaultyOnce(), url: rx.url, autoFlush: false }));
    const errors: Error[] = [];
    box.on('error', (error) => errors.push(error));
    await enqueueMany(box, 3);
    await box.drain({ timeoutMs: 5_000 });
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_STORE_IO' })]);
    expect(rx.deliveredIds().size).toBe(3);
  });

  it('runs over LowdbStore: delivers, dead-letters, and a reopened file keeps the dead letters', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    rx.setScript((req): Reply => (req.id === 'rejected' ? 422 : 200));
    const file = join(await tempDir(), 'outbox.json');
    const box = await Outbox.open({ store: new LowdbStore({ file }), url: rx.url, retry: FAST_RETRY });
    const enqueued = await enqueueMany(box, 20);
    await box.enqueue({ id: 'rejected', body: 0 });
    await box.drain({ timeoutMs: 5_000 });
    await box.close();
    expect(rx.deliveredIds()).toEqual(new Set(enqueued.keys()));
    const reopened = (opened.outbox = await Outbox.open({ store: new LowdbStore({ file }), url: rx.url, autoFlush: false }));
    expect((await reopened.deadLetters()).map((l) => [l.id, l.reason])).toEqual([['rejected', 'http-status']]);
    expect(reopened.stats().pending).toBe(0);
  });

  it('rejects bad messages with the sender codes and stores nothing', async () => {
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    await expect(box.enqueue({ body: undefined })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'body' });
    await expect(box.enqueue({ body: 1, id: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'id' });
    await expect(box.enqueue({ body: 1, url: 'ftp://x' })).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
    await expect(box.enqueue({ body: 1, url: 'http://unix:/var/run/app.sock:/hook' })).rejects.toMatchObject({ code: 'ERR_INVALID_URL', field: 'url' });
    await expect(box.enqueue({ body: 'x'.repeat(2_000_000) })).rejects.toMatchObject({ code: 'ERR_BODY_TOO_LARGE' });
    for (const orderingKey of ['', 'k'.repeat(257), 42, null, 'order-\uD800']) {
      await expect(box.enqueue({ body: 1, orderingKey } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'orderingKey' });
    }
    expect(box.stats().pending).toBe(0);
    await box.enqueue({ body: 1, orderingKey: 'k'.repeat(256) });
    // A sender sends at once: an ordering key means nothing there, and is refused rather than ignored.
    const sender = createSender({ url: 'http://127.0.0.1:9/hook' });
    await expect(sender.send({ body: 1, orderingKey: 'k' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_MESSAGE', field: 'orderingKey' });
    await sender.close();
  });

  it('keeps the caller id as webhook-id and ignores a second enqueue of the same id', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: rx.url, autoFlush: false }));
    expect(await box.enqueue({ id: 'order-1', body: 1 })).toEqual({ id: 'order-1' });
    expect(await box.enqueue({ id: 'order-1', body: 2 })).toEqual({ id: 'order-1' });
    await box.drain({ timeoutMs: 5_000 });
    expect(rx.requests.map((r) => [r.id, r.body])).toEqual([['order-1', '1']]);
  });

  it('lets the store skip its duplicate check only for a batch of ids it generated', async () => {
    const rx = (opened.receiver = await startFlakyReceiver());
    const hints: (boolean | undefined)[] = [];
    class WatchedStore extends MemoryStore {
      override append(events: readonly NewEvent[], options?: AppendOptions): Promise<void> {
        hints.push(options?.newIds);
        return super.append(events);
      }
    }
    const box = (opened.outbox = await Outbox.open({ store: new WatchedStore(), url: rx.url, autoFlush: false }));
    await Promise.all([box.enqueue({ body: 1 }), box.enqueue({ body: 2 })]);
    await box.enqueue({ id: 'order-1', body: 3 });
    const [, again] = await Promise.all([box.enqueue({ body: 4 }), box.enqueue({ id: 'order-1', body: 5 })]);
    expect(again).toEqual({ id: 'order-1' });
    expect(hints).toEqual([true, false, false]);
    await box.drain({ timeoutMs: 5_000 });
    expect(rx.requests.map((r) => r.body).sort()).toEqual(['1', '2', '3', '4']);
  });

  it('rejects a bad moveEndpoint with ERR_INVALID_OPTION, also on a store that cannot move', async () => {
    const store = new MemoryStore();
    const box = (opened.outbox = await Outbox.open({ store, url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    await box.enqueue({ body: 1 });
    for (const [from, to, option] of [
      ['ftp://x.test/', 'http://127.0.0.1:9/new', 'from'],
      ['http://127.0.0.1:9/hook', 'not a url', 'to'],
      ['http://127.0.0.1:9/hook', 'http://unix:/var/run/app.sock:/hook', 'to'],
      [undefined, 'http://127.0.0.1:9/new', 'from'],
    ] as const) {
      await expect(box.moveEndpoint(from as string, to)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option });
    }
    await expect(box.moveEndpoint('http://127.0.0.1:9/hook', 'http://127.0.0.1:9/new', { timeoutMs: -1 })).rejects.toMatchObject({ option: 'timeoutMs' });
    expect(box.stats().endpoints['http://127.0.0.1:9/hook']).toMatchObject({ pending: 1, dead: 0 });
    expect(box.stats().endpoints['http://127.0.0.1:9/new']).toBeUndefined();
    await box.close();
    const plain: OutboxStore = Object.assign(new MemoryStore(), { moveEndpoint: undefined });
    const other = (opened.outbox = await Outbox.open({ store: plain, url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    await expect(other.moveEndpoint('http://127.0.0.1:9/hook', 'http://127.0.0.1:9/new')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'store' });
  });


  it('rejects bad dead-letter arguments with ERR_INVALID_OPTION and changes nothing', async () => {
    const box = (opened.outbox = await Outbox.open({ store: new MemoryStore(), url: 'http://127.0.0.1:9/hook', autoFlush: false }));
    const bad: (() => Promise<unknown>)[] = [
      () => box.deadLetters({ limit: -1 }),
      () => box.deadLetters({ limit: 1.5 }),
      () => box.deadLetters({ ids: 'e1' as unknown as string[] }),
      () => box.deadLetters({ id: ['e1'] } as never),
      () => box.replay('e1' as unknown as string[]),
      () => box.purge([''] as string[]),
      () => box.purge([1] as unknown as string[]),
    ];
    for (const call of bad) await expect(call()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(await box.deadLetters({ ids: [], limit: Number.POSITIVE_INFINITY })).toEqual([]);
  });

  it('rejects bad options with InvalidOptionError naming the option', async () => {
    const store = new MemoryStore();
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'dir'],
      [{ store, dir: '/tmp/x' }, 'dir'],
      [{ store, durability: 'write' }, 'durability'],
      [{ dir: '/tmp/x', durability: 'sometimes' }, 'durability'],
      [{ store, concurrency: 0 }, 'concurrency'],
      [{ store, globalConcurrency: 1.5 }, 'globalConcurrency'],
      [{ store, autoFlush: 'yes' }, 'autoFlush'],
      [{ store, retry: { baseDelayMs: -1 } }, 'retry.baseDelayMs'],
      [{ store, store2: 1 }, 'store2'],
      [{ store: { open: 1 } }, 'store'],
      // A store without the dead-letter methods of the port would fail at the first call instead.
      [{ store: { open() {}, append() {}, claim() {}, settle() {}, stats() {}, close() {} } }, 'store'],
    ];
    for (const [options, option] of cases) {
      await expect(Outbox.open(options as OutboxOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option });
    }
    await expect(Outbox.open(undefined as unknown as OutboxOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'dir' });
    await expect(Outbox.open(null as unknown as OutboxOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });
});

describe('Outbox dead letters selected by a query', () => {
  const A = 'http://127.0.0.1:9/a';
  const B = 'http://127.0.0.1:9/b';
  const T = 1_700_000_000_000;
  /** `count` dead letters alternating between A and B, dying a second apart; letter n died at T + n s. */
  function letters(count: number): DeadLetter[] {
    return Array.from({ length: count }, (_, n) => ({
      id: `d${n}`,
      url: n % 2 === 0 ? A : B,
      headers: { 'content-type': 'application/json' },
      body: new TextEncoder().encode(`{"n":${n}}`),
      createdAt: T,
      nextAttemptAt: T,
      attempts: 3,
      history: [],
      reason: 'http-status' as const,
      deadAt: T + n * 1_000,
    }));
  }

  /** A custom store written before queries: its deadLetters() ignores every filter but ids and limit, and it has no deadLetterIds(). */
  class CoarseStore implements OutboxStore {
    readonly inner: MemoryStore;
    constructor(options: ConstructorParameters<typeof MemoryStore>[0]) {
      this.inner = new MemoryStore(options);
    }
    open = (): Promise<void> => this.inner.open();
    append: OutboxStore['append'] = (events) => this.inner.append(events);
    claim: OutboxStore['claim'] = (request) => this.inner.claim(request);
    settle: OutboxStore['settle'] = (outcomes) => this.inner.settle(outcomes);
    deadLetters = (query: DeadLetterQuery = {}): Promise<DeadLetter[]> =>
      this.inner.deadLetters({ ...(query.ids === undefined ? {} : { ids: query.ids }), ...(query.limit === undefined ? {} : { limit: query.limit }) });
    replay: OutboxStore['replay'] = (ids, now) => this.inner.replay(ids, now);
    purge: OutboxStore['purge'] = (ids) => this.inner.purge(ids);
    stats: OutboxStore['stats'] = () => this.inner.stats();
    close = (): Promise<void> => this.inner.close();
  }

  for (const Store of [MemoryStore, CoarseStore]) {
    it(`replays and purges what a query selects, never more (${Store.name})`, async () => {
      const store = new Store({ snapshot: { pending: [], dead: letters(2_600) } });
      const box = (opened.outbox = await Outbox.open({ store, url: A, autoFlush: false }));
      expect((await box.deadLetters({ endpoint: B, since: T + 10_000, until: T + 16_000 })).map((l) => l.id)).toEqual(['d11', 'd13', 'd15']);
      // A limit caps the total; a store that ignores the filter has its letters checked again.
      expect(await box.replay({ endpoint: A, limit: 1_100 })).toBe(1_100);
      expect(store.stats().endpoints).toEqual({ [A]: { pending: 1_100, dead: 200 }, [B]: { pending: 0, dead: 1_300 } });
      expect((await box.deadLetters({ endpoint: A })).every((l) => l.url === A)).toBe(true);
      // Died before T + 100 s, any endpoint (letters 0-99; A's among them may already be pending).
      const early = (await box.deadLetters({ until: T + 100_000 })).length;
      expect(await box.purge({ until: T + 100_000 })).toBe(early);
      expect(await box.deadLetters({ until: T + 100_000 })).toEqual([]);
      expect(store.stats().endpoints[B]).toEqual({ pending: 0, dead: 1_250 });
    });
  }

  it('checks queries and refuses a new URL for every endpoint at once, changing nothing', async () => {
    const store = new MemoryStore({ snapshot: { pending: [], dead: letters(4) } });
    const box = (opened.outbox = await Outbox.open({ store, url: A, autoFlush: false }));
    const bad: (() => Promise<unknown>)[] = [
      () => box.deadLetters({ endpoint: 7 } as never),
      () => box.deadLetters({ since: -1 }),
      () => box.deadLetters({ until: 1.5 }),
      () => box.replay({ url: A } as never),
      () => box.replay({ since: T }, { url: 'http://127.0.0.1:9/new' }),
      () => box.purge({ endpoint: B, ids: 'd1' } as never),
    ];
    for (const call of bad) await expect(call()).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    expect(store.stats()).toMatchObject({ pending: 0, dead: 4 });
    expect(await box.replay({ endpoint: B }, { url: 'http://127.0.0.1:9/new' })).toBe(2);
    expect(Object.keys(store.stats().endpoints).sort()).toEqual([A, 'http://127.0.0.1:9/new']);
  });
});

describe('Outbox dead letters selected by a query, while other work goes on', () => {
  const A = 'http://127.0.0.1:9/a';
  const B = 'http://127.0.0.1:9/b';
  const T = 1_700_000_000_000;
  const event = (id: string, url: string): NewEvent => ({ id, url, headers: {}, body: new Uint8Array(8), createdAt: T, nextAttemptAt: T });

  it('replays each selected letter once, and ends, while the receiver still rejects them and they die again', async () => {
    const sent = new Map<string, number>();
    /** A still answers 400 (dead at once); B answers 200. */
    const transport: Transport = {
      async send(request) {
        const id = request.headers['webhook-id'] as string;
        if (request.url === A) sent.set(id, (sent.get(id) ?? 0) + 1);
        return { status: request.url === A ? 400 : 200, headers: {}, bodyExcerpt: '' };
      },
    };
    /** Writes that take a while, as a database's do: the flusher kills replayed letters again meanwhile. */
    class SlowStore extends MemoryStore {
      override async replay(ids?: readonly string[], now?: number, url?: string): Promise<number> {
        const count = await super.replay(ids, now, url);
        await new Promise((resolve) => setTimeout(resolve, 30));
        return count;
      }
    }
    const box = (opened.outbox = await Outbox.open({ store: new SlowStore(), url: A, transport }));
    await Promise.all(Array.from({ length: 2_500 }, () => box.enqueue({ body: {} })));
    await waitFor(() => box.stats().dead === 2_500, 20_000, 'all dead');
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        await box.enqueue({ url: B, body: {} });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const replayed = await box.replay({ endpoint: A, since: 0 });
    stop = true;
    await traffic;
    expect(replayed).toBe(2_500);
    await waitFor(() => box.stats().dead === 2_500, 20_000, 'dead again');
    expect(Math.max(...sent.values())).toBe(2);
  }, 30_000);

  it('skips letters a move holds, as a replay or purge by ids does, and acts on the rest', async () => {
    const store = new FileStore({ dir: await tempDir() });
    const box = (opened.outbox = await Outbox.open({ store, url: A, autoFlush: false }));
    const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    await store.append([...ids('a', 1_200).map((id) => event(id, A)), ...ids('b', 300).map((id) => event(id, B))]);
    await store.claim({ limit: 2_000, now: T });
    await store.settle([...ids('a', 1_200), ...ids('b', 300)].map((id, i) => ({ id, type: 'dead' as const, reason: 'http-status' as const, at: T + i })));
    const moving = store.moveEndpoint(A, 'http://127.0.0.1:9/c', T);
    expect(await box.purge({ until: T + 10_000 })).toBe(300);
    expect(await moving).toBe(1_200);
    expect(store.stats().endpoints).toEqual({ 'http://127.0.0.1:9/c': { pending: 0, dead: 1_200 } });
  });

  it('selects once, whatever the size: no rescans of every dead letter per batch', async () => {
    let listed = 0;
    class Counting extends MemoryStore {
      override async deadLetterIds(query: DeadLetterQuery): Promise<string[]> {
        listed += this.stats().dead;
        return super.deadLetterIds(query);
      }
    }
    const dead = Array.from({ length: 100_000 }, (_, i) => ({ ...event(`d${i}`, A), attempts: 1, history: [], reason: 'http-status' as const, deadAt: T + i }));
    const store = new Counting({ snapshot: { pending: [], dead } });
    const box = (opened.outbox = await Outbox.open({ store, url: A, autoFlush: false }));
    expect(await box.purge({ until: T + 60_000 })).toBe(60_000);
    expect(listed).toBe(100_000);
    expect(store.stats().dead).toBe(40_000);
  });
});

describe('Outbox.replay to a new URL with a store that cannot move events', () => {
  /** A custom store as docs/10 describes the port without the optional moveEndpoint(): replay(ids?, now?). */
  class PlainStore implements OutboxStore {
    readonly #inner = new MemoryStore();
    open = (): Promise<void> => this.#inner.open();
    append = (events: readonly NewEvent[], _options?: AppendOptions): Promise<void> => this.#inner.append(events);
    claim: OutboxStore['claim'] = (request) => this.#inner.claim(request);
    settle: OutboxStore['settle'] = (outcomes) => this.#inner.settle(outcomes);
    deadLetters: OutboxStore['deadLetters'] = (query) => this.#inner.deadLetters(query);
    replay = (ids?: readonly string[], now?: number): Promise<number> => this.#inner.replay(ids, now);
    purge: OutboxStore['purge'] = (ids) => this.#inner.purge(ids);
    stats: OutboxStore['stats'] = () => this.#inner.stats();
    close = (): Promise<void> => this.#inner.close();
  }

  it('refuses with ERR_INVALID_OPTION instead of reporting a replay that goes to the old URL', async () => {
    const secret = newSecret();
    const old = (opened.receiver = await startFlakyReceiver({ secret, script: () => ({ status: 410, body: 'moved' }) }));
    const outbox = (opened.outbox = await Outbox.open({ store: new PlainStore(), url: old.url, signingSecret: secret, retry: FAST_RETRY }));
    const { id } = await outbox.enqueue({ body: bodyOf(1) });
    await outbox.drain({ timeoutMs: 5_000 });
    await expect(outbox.replay([id], { url: 'http://127.0.0.1:9/new' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'url' });
    // Every dead letter to one URL is refused on any store: name them, or move one endpoint.
    await expect(outbox.replay(undefined, { url: 'http://127.0.0.1:9/new' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'ids' });
    expect(outbox.stats()).toMatchObject({ dead: 1, pending: 0 });
    expect(old.requests).toHaveLength(1);
  });
});
