import pg from 'pg';
import { expect, inject, it, vi } from 'vitest';
import { main } from './postgres-transactional-outbox.js';

it('examples/postgres-transactional-outbox.ts: a webhook for every committed order, none for the rolled-back one', async () => {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  // Its own database: the example creates and drops its tables.
  const admin = new pg.Client(inject('postgres'));
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS example_orders');
  await admin.query('CREATE DATABASE example_orders');
  await admin.end();
  const result = await main({ ...inject('postgres'), database: 'example_orders' });
  const lines = log.mock.calls.map((call) => String(call[0]));
  log.mockRestore();
  expect(result.orders).toHaveLength(2);
  expect(result.delivered).toEqual(result.orders.map((id) => `order-${id}-created`).sort());
  expect(lines.filter((line) => line.includes('refused'))).toEqual([expect.stringMatching(/^order for 0 x pen refused \(.*quantity_check.*\): no order, no webhook$/)]);
});
