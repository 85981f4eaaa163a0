/**
 * The pool behind `--postgres`: node-postgres is an optional peer dependency, loaded only when a command
 * is given `--postgres`.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Pool, PoolConfig } from 'pg';
import { CliError, ExitCode } from '../exit-codes.js';

/** How long connecting may take before the command fails (node-postgres waits forever by default). */
const CONNECT_TIMEOUT_MS = 10_000;

type PoolModule = { Pool: new (config: PoolConfig) => Pool };

function notFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/** The module's `Pool`, whether it came as an ES module or as CommonJS (`default` is its `module.exports`). */
function poolOf(module: unknown): PoolModule {
  const { default: main } = module as { default?: PoolModule };
  return main ?? (module as PoolModule);
}

/**
 * node-postgres as this package resolves it (a project that has both), else as the current directory does
 * (this CLI installed globally, run in a project that has `pg`).
 */
async function loadPg(): Promise<PoolModule> {
  try {
    return poolOf(await import('pg'));
  } catch (error) {
    if (!notFound(error)) throw error;
  }
  try {
    const path = createRequire(join(process.cwd(), 'package.json')).resolve('pg');
    return poolOf(await import(pathToFileURL(path).href));
  } catch (error) {
    if (!notFound(error)) throw error;
  }
  throw new CliError(ExitCode.usage, '--postgres needs node-postgres, which is not installed: `npm install pg` (in your project, or next to webhook-outbox)');
}

/** A pool on `connectionString`; the caller ends it. */
export async function openPool(connectionString: string): Promise<Pool> {
  const { Pool: PgPool } = await loadPg();
  const pool = new PgPool({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // An idle client lost (the server restarted) is not fatal: the next query reports what is wrong.
  pool.on('error', () => undefined);
  return pool;
}
