/**
 * Where the commands find the outbox: a directory (`--dir`, a `FileStore`) or a PostgreSQL table
 * (`--postgres`, `--table`, a `PostgresStore`). The one place that chooses the store: the commands read
 * through {@link inspectTarget} and write through {@link withOutbox}.
 */
import type { Pool } from 'pg';
import { InvalidOptionError } from '../../errors.js';
import { Outbox } from '../../outbox.js';
import type { OutboxOptions } from '../../options.js';
import { FileStore } from '../../store/file/file-store.js';
import { PostgresStore } from '../../store/postgres.js';
import type { DeadLetter, DeadLetterQuery, FoundEvent, StoreStats } from '../../store/store.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { assertOutboxDir, openOutbox } from './outbox-dir.js';
import { openPool } from './postgres-pool.js';

/** The default `--table`, as `PostgresStore`'s. */
export const DEFAULT_TABLE = 'webhook_outbox';

/** An outbox directory, or a table in the PostgreSQL database `connectionString` names. */
export type OutboxTarget = { kind: 'dir'; dir: string } | { kind: 'postgres'; connectionString: string; table: string };

/** `--dir`, `--postgres` and `--table` as commander parses them (commander refuses `--dir` with `--postgres`). */
export interface TargetFlags {
  dir: string;
  postgres?: string | undefined;
  table: string;
}

/** The target the flags name; `tableGiven` when `--table` was on the command line. */
export function targetOf(flags: TargetFlags, tableGiven: boolean): OutboxTarget {
  if (flags.postgres !== undefined) return { kind: 'postgres', connectionString: flags.postgres, table: flags.table };
  if (tableGiven) throw new CliError(ExitCode.usage, '--table needs --postgres (or WEBHOOK_OUTBOX_POSTGRES)');
  return { kind: 'dir', dir: flags.dir };
}

/** The target in a message: the directory, or the table (never the connection string). */
export function describeTarget(target: OutboxTarget): string {
  return target.kind === 'dir' ? target.dir : `PostgreSQL table ${target.table}`;
}

/** The options that name the target again in a suggested command line, without the connection string. */
export function targetArgs(target: OutboxTarget): string {
  if (target.kind === 'dir') return `--dir ${target.dir}`;
  return `--postgres "$WEBHOOK_OUTBOX_POSTGRES"${target.table === DEFAULT_TABLE ? '' : ` --table ${target.table}`}`;
}

/** What a read of the target found: counters, the dead letters asked for, the event looked up. */
export interface TargetInspection {
  stats: StoreStats;
  deadLetters: DeadLetter[];
  found?: FoundEvent | undefined;
  /** The pid of the live process that owns the directory, if any (a table has no owner). */
  ownerPid?: number | undefined;
  /** Its host, when it is not this one. */
  ownerHost?: string | undefined;
}

/**
 * Reads the target without taking anything: a directory without its lock, a table without a lease or a
 * statement that writes. Exit 2 when there is no outbox there (a mistyped `--dir` or `--table` is not an
 * empty outbox).
 */
export async function inspectTarget(target: OutboxTarget, options: { deadLetters?: DeadLetterQuery; find?: string }): Promise<TargetInspection> {
  if (target.kind === 'dir') {
    await assertOutboxDir(target.dir);
    return FileStore.inspect(target.dir, options);
  }
  return withPool(target, (pool) => inspectTable(pool, target.table, options));
}

/**
 * Opens an `Outbox` on the target for `use`, then closes it: a directory takes its lock (exit 3 while an
 * app owns it), a table is shared with the apps that use it. Exit 2 when there is no outbox there: the
 * commands never create one.
 */
export async function withOutbox<T>(target: OutboxTarget, options: Omit<OutboxOptions, 'dir' | 'store'>, use: (outbox: Outbox) => Promise<T>): Promise<T> {
  if (target.kind === 'dir') {
    await assertOutboxDir(target.dir);
    return using(await openOutbox(target.dir, options), use);
  }
  return withPool(target, async (pool) => {
    await inspectTable(pool, target.table, { deadLetters: { limit: 0 } });
    return using(await Outbox.open({ ...options, store: new PostgresStore({ pool, table: target.table }) }), use);
  });
}

async function using<T>(outbox: Outbox, use: (outbox: Outbox) => Promise<T>): Promise<T> {
  try {
    return await use(outbox);
  } finally {
    await outbox.close();
  }
}

async function withPool<T>(target: OutboxTarget & { kind: 'postgres' }, use: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = await openPool(target.connectionString);
  try {
    return await use(pool);
  } finally {
    await pool.end();
  }
}

/** `PostgresStore.inspect`, with a bad, missing or foreign `--table` as a usage error. */
async function inspectTable(pool: Pool, table: string, options: { deadLetters?: DeadLetterQuery; find?: string }): Promise<TargetInspection> {
  try {
    return await PostgresStore.inspect(pool, { table, ...options });
  } catch (error) {
    if (!(error instanceof InvalidOptionError && error.option === 'table')) throw error;
    const problem = error.message.slice(error.message.indexOf(': ') + 2);
    throw new CliError(ExitCode.usage, `--table: ${problem}`, { cause: error });
  }
}
