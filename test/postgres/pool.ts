import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';

/** A pool on the run's PostgreSQL server, ended after the file's tests. */
export function testPool(max = 10): pg.Pool {
  const pool = new pg.Pool({ ...inject('postgres'), max });
  afterAll(() => pool.end());
  return pool;
}

/** A table name no other test uses. */
export function freshTable(): string {
  return `outbox_${randomBytes(6).toString('hex')}`;
}
