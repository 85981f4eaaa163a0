import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { FAST_RETRY } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';
import { cleanedUpAfterEach, hooked, kind, settled, sleep, within } from './helpers.js';

const pool = testPool(12);

const cleanups = cleanedUpAfterEach();

describe('Outbox on a PostgresStore: a statement that never answers (a network partition without keepalive, a lock wait)', () => {
  it('drain({ timeoutMs }) rejects with ERR_DRAIN_TIMEOUT while the settle of a delivered event hangs', async () => {
    const table = freshTable();
    const receiver = await startFlakyReceiver();
    let hang = false;
    const q = hooked(pool, (text, _values, run) => (hang && kind(text) === 'settle' ? new Promise(() => {}) : run()));
    const outbox = await Outbox.open({ store: new PostgresStore({ pool: q, table, pollIntervalMs: 50 }), url: receiver.url, retry: FAST_RETRY });
    cleanups.push(async () => {
      hang = false;
      await within(settled(outbox.close({ timeoutMs: 100 })), 1_000);
      await receiver.close();
    });
    hang = true;
    await outbox.enqueue({ body: 1 });
    const drained = await within(settled(outbox.drain({ timeoutMs: 500 })), 5_000);
    expect(drained).not.toBe('timeout');
    expect((drained as { error?: { code?: string } }).error?.code).toBe('ERR_DRAIN_TIMEOUT');
  });

  it('close({ timeoutMs: 200 }) resolves (or rejects) within seconds while the settle of a delivered event never answers', async () => {
    const table = freshTable();
    const receiver = await startFlakyReceiver();
    let hang = false;
    const q = hooked(pool, (text, _values, run) => (hang && kind(text) === 'settle' ? new Promise(() => {}) : run()));
    const outbox = await Outbox.open({ store: new PostgresStore({ pool: q, table, pollIntervalMs: 50 }), url: receiver.url, retry: FAST_RETRY });
    cleanups.push(() => receiver.close());
    hang = true;
    const { id } = await outbox.enqueue({ body: 1 });
    for (let i = 0; i < 200 && receiver.countById(id) === 0; i++) await sleep(10);
    await sleep(100);
    // SIGTERM: the app closes the outbox with a bound, then ends its pool and exits.
    const closed = await within(settled(outbox.close({ timeoutMs: 200 })), 5_000);
    expect(closed).not.toBe('timeout');
  });

  it('close({ timeoutMs: 200 }) resolves within seconds while a claim never answers', async () => {
    const table = freshTable();
    let hang = false;
    const q = hooked(pool, (text, _values, run) => (hang && kind(text) === 'claim' ? new Promise(() => {}) : run()));
    const outbox = await Outbox.open({ store: new PostgresStore({ pool: q, table, pollIntervalMs: 50 }), url: 'http://127.0.0.1:1/x', retry: FAST_RETRY });
    hang = true;
    await outbox.enqueue({ body: 1 }); // pokes the flusher: its claim hangs
    await sleep(200);
    const closed = await within(settled(outbox.close({ timeoutMs: 200 })), 5_000);
    expect(closed).not.toBe('timeout');
  });
});
