/**
 * The transactional outbox with `PostgresStore`: an order and its `order.created` webhook are written in
 * one database transaction, so there is never an order without its webhook, nor a webhook for an order
 * that was rolled back. Any replica of the app that opens the same table delivers.
 *
 * `main(connection)` places three orders against a local receiver; the second breaks a constraint, so its
 * transaction rolls back and its webhook is never sent. `npm test` typechecks it and runs `main()` against
 * the tests' PostgreSQL server (examples/postgres-transactional-outbox.test.ts).
 */
import pg from 'pg';
import { Outbox, PostgresStore } from 'webhook-outbox';
import { startFlakyReceiver } from 'webhook-outbox/testing';

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** Writes the order and enqueues its webhook in one transaction; rejects (and writes neither) on any error. */
export async function placeOrder(pool: pg.Pool, outbox: Outbox, sku: string, quantity: number): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: number }>('INSERT INTO orders (sku, quantity) VALUES ($1, $2) RETURNING id', [sku, quantity]);
    const orderId = (rows[0] as { id: number }).id;
    // The database gave the order its id: the webhook's id follows it, so a retried request cannot enqueue twice.
    await outbox.enqueue({ id: `order-${orderId}-created`, body: { type: 'order.created', orderId, sku, quantity } }, { transaction: client });
    await client.query('COMMIT');
    return orderId;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

/** Runs the story; returns the order ids written and the webhook ids the receiver got. */
export async function main(connection: pg.PoolConfig): Promise<{ orders: number[]; delivered: string[] }> {
  const receiver = await startFlakyReceiver({ secret, script: [503] });
  const pool = new pg.Pool(connection);
  // node-postgres reports a lost idle connection here; without a listener Node would end the process.
  pool.on('error', (error) => console.error(`PostgreSQL: ${error.message}`));
  await pool.query('DROP TABLE IF EXISTS orders, example_outbox');
  await pool.query('CREATE TABLE orders (id serial PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL CHECK (quantity > 0))');
  const outbox = await Outbox.open({
    store: new PostgresStore({ pool, table: 'example_outbox' }),
    url: receiver.url,
    signingSecret: secret,
    retry: { baseDelayMs: 50 },
  });
  try {
    for (const [sku, quantity] of [['book', 1], ['pen', 0], ['lamp', 2]] as const) {
      try {
        console.log(`order ${await placeOrder(pool, outbox, sku, quantity)} placed: ${quantity} x ${sku}`);
      } catch (error) {
        console.log(`order for ${quantity} x ${sku} refused (${(error as Error).message}): no order, no webhook`);
      }
    }
    await outbox.drain({ timeoutMs: 10_000 });
    const orders = (await pool.query<{ id: number }>('SELECT id FROM orders ORDER BY id')).rows.map((row) => row.id);
    const delivered = [...receiver.deliveredIds()].sort();
    console.log(`orders in the database: ${orders.join(', ')}; webhooks delivered: ${delivered.join(', ')}`);
    return { orders, delivered };
  } finally {
    await outbox.close();
    await pool.end();
    await receiver.close();
  }
}
