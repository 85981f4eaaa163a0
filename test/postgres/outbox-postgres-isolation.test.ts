import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { closedAfterEach, FAST_RETRY, waitFor } from '../outbox-helpers.js';
import { freshTable, testPool } from './pool.js';

const pool = testPool();
const opened = closedAfterEach();

describe('Outbox on a PostgresStore: enqueue in a REPEATABLE READ transaction', () => {
  it('a keyed event enqueued in a REPEATABLE READ transaction is refused (it could be parked for good); in READ COMMITTED it is sent after its key\'s first', async () => {
    const receiver = (opened.receiver = await startFlakyReceiver());
    const table = freshTable();
    const outbox = (opened.outbox = await Outbox.open({ store: new PostgresStore({ pool, table, pollIntervalMs: 20 }), url: receiver.url, retry: FAST_RETRY, autoFlush: false }));
    const client = await pool.connect();
    try {
      const { id: first } = await outbox.enqueue({ body: { step: 1 }, orderingKey: 'order-1' }); // stored, not sent yet
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await client.query('SELECT 1 AS read_the_order'); // the transaction's snapshot: the first event pending
      await outbox.drain({ timeoutMs: 10_000 }); // the first is delivered meanwhile
      await waitFor(() => receiver.countById(first) === 1, 10_000, 'the first event');
      await expect(outbox.enqueue({ body: { step: 2 }, orderingKey: 'order-1' }, { transaction: client })).rejects.toMatchObject({
        code: 'ERR_INVALID_OPTION',
        message: expect.stringContaining('READ COMMITTED'),
      });
      await client.query('ROLLBACK');
      // The same in a READ COMMITTED transaction (the default) goes after the first.
      await client.query('BEGIN');
      const { id: second } = await outbox.enqueue({ body: { step: 2 }, orderingKey: 'order-1' }, { transaction: client });
      await client.query('COMMIT');
      const drained = await outbox.drain({ timeoutMs: 10_000 }).then(() => 'drained', (error: Error & { code?: string }) => String(error.code));
      expect({ drained, secondSent: receiver.countById(second) }).toEqual({ drained: 'drained', secondSent: 1 });
    } finally {
      client.release();
    }
  });
});
