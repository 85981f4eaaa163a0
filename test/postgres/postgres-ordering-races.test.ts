import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshTable, testPool } from './pool.js';
import { dead, delivered, ev, retryAt, sleep, openedPair } from './helpers.js';

const pool = testPool(4);

/**
 * Makes the statement that first leases event `id` take `ms` longer once its rows are locked (a BEFORE UPDATE
 * trigger): the window any claim has on a loaded server, widened so the test hits it every time.
 */
async function slowFirstLease(table: string, id: string, ms: number): Promise<void> {
  await pool.query(`CREATE TABLE ${table}_ctl (done boolean)`);
  await pool.query(`CREATE FUNCTION ${table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.id = '${id}' AND NEW.lease_owner IS NOT NULL AND OLD.lease_owner IS NULL AND NOT EXISTS (SELECT 1 FROM ${table}_ctl) THEN
        INSERT INTO ${table}_ctl VALUES (true);
        PERFORM pg_sleep(${ms / 1000});
      END IF;
      RETURN NEW;
    END $$`);
  await pool.query(`CREATE TRIGGER slow BEFORE UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_slow()`);
}

describe('PostgresStore: ordering keys across flushers under READ COMMITTED', () => {
  it('a dead letter replayed while another flusher is claiming its key\'s next event: never two events of the key out at once', async () => {
    const table = freshTable();
    const a = new PostgresStore({ pool: testPool(2), table, leaseMs: 60_000, pollIntervalMs: 1000 });
    const b = new PostgresStore({ pool: testPool(2), table, leaseMs: 60_000, pollIntervalMs: 1000 });
    await a.open();
    await b.open();
    try {
      await a.append([ev('e1', { orderingKey: 'K' }), ev('e2', { orderingKey: 'K' })]);
      const first = await a.claim({ limit: 10, now: Date.now() });
      expect(first.events.map((e) => e.id)).toEqual(['e1']);
      await a.settle([dead('e1')]); // e1 dead: e2 is the key's next
      await slowFirstLease(table, 'e2', 600);
      const bClaim = b.claim({ limit: 10, now: Date.now() }); // takes e2 (slowly)
      await sleep(150);
      expect(await a.replay(['e1'], Date.now())).toBe(1); // e1 back in its place, before e2
      const aGot = (await a.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
      const bGot = (await bClaim).events.map((e) => e.id);
      // Either order of b's claim and the replay allows one of them out, never both.
      expect({ a: aGot, b: bGot, out: aGot.length + bGot.length }).toMatchObject({ out: 1 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('an enqueue to a key whose transaction is open does not wait for it; nothing of the key goes until it commits, then the transaction\'s event first', async () => {
    const table = freshTable();
    const a = new PostgresStore({ pool: testPool(2), table, leaseMs: 1_500, pollIntervalMs: 50 });
    const b = new PostgresStore({ pool: testPool(2), table, leaseMs: 1_500, pollIntervalMs: 50 });
    await a.open();
    await b.open();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await a.appendIn(client, [ev('t1', { orderingKey: 'K' })]); // not committed yet
      await a.append([ev('t2', { orderingKey: 'K' })]); // resolves at once, t2 parked behind the open transaction
      await sleep(200);
      expect((await b.claim({ limit: 10, now: Date.now() })).events).toEqual([]);
      await client.query('COMMIT');
      const aGot = (await a.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
      const bGot = (await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
      expect({ a: aGot, b: bGot }).toEqual({ a: ['t1'], b: [] });
      await a.settle([delivered('t1')]);
      let next: string[] = [];
      for (let i = 0; i < 100 && next.length === 0; i++) {
        next = (await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id);
        if (next.length === 0) await sleep(20);
      }
      expect(next).toEqual(['t2']);
    } finally {
      client.release();
      await a.close();
      await b.close();
    }
  });

  it('a replayed dead letter waits for its key\'s event that is out, then goes before the later ones', async () => {
    const table = freshTable();
    const [a, b] = await openedPair({ pool, table });
    try {
      await a.append(['r1', 'r2', 'r3'].map((id) => ev(id, { orderingKey: 'K' })));
      await a.settle([dead((await a.claim({ limit: 10, now: Date.now() })).events[0]!.id)]);
      expect((await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['r2']);
      expect(await a.replay(['r1'], Date.now())).toBe(1);
      expect((await a.claim({ limit: 10, now: Date.now() })).events).toEqual([]);
      await b.settle([retryAt('r2', Date.now())]);
      expect((await a.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['r1']);
      expect((await b.claim({ limit: 10, now: Date.now() })).events).toEqual([]);
      await a.settle([delivered('r1')]);
      expect((await b.claim({ limit: 10, now: Date.now() })).events.map((e) => e.id)).toEqual(['r2']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
