/**
 * `npm run bench`: every figure as a ratio against a limit or a peer measured in the same run.
 * BENCH_QUICK=1 for a short run; BENCH_ONLY=1,6 to run some rows only.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { BUILD_DIR, loadPackage } from './lib/components.mjs';
import { renderTable } from './lib/report.mjs';
import { enqueueRows } from './rows/enqueue.mjs';
import { bullmqRows } from './rows/bullmq.mjs';
import { deliveryRows } from './rows/delivery.mjs';
import { backlogScaleRows } from './rows/backlog-scale.mjs';
import { storeFlatRows } from './rows/store-flat.mjs';
import { drainRows } from './rows/drain.mjs';
import { manyEndpointsRows } from './rows/many-endpoints.mjs';

const quick = process.env.BENCH_QUICK === '1';
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const resultsDir = new URL('./results/', import.meta.url);

function machine() {
  let disk = '';
  try {
    disk = execFileSync('df', ['-h', tmpdir()], { encoding: 'utf8' }).trim().split('\n').at(-1);
  } catch {
    disk = 'unknown';
  }
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memTotalGiB: +(totalmem() / 1024 ** 3).toFixed(1),
    memFreeGiB: +(freemem() / 1024 ** 3).toFixed(1),
    loadAvg1m: +loadavg()[0].toFixed(2),
    tmpdir: tmpdir(),
    disk,
  };
}

const GROUPS = [
  { rows: ['1', '2'], run: enqueueRows },
  { rows: ['3'], run: storeFlatRows },
  { rows: ['4'], run: backlogScaleRows },
  { rows: ['5'], run: deliveryRows },
  { rows: ['6'], run: bullmqRows },
  { rows: ['7'], run: drainRows },
  { rows: ['8'], run: manyEndpointsRows },
];

if (!existsSync(join(BUILD_DIR, 'index.js'))) {
  console.error(`No build in ${BUILD_DIR}: run the bench with \`npm run bench\` (it builds first).`);
  process.exit(1);
}

const ctx = { quick, tmpRoot: mkdtempSync(join(tmpdir(), 'webhook-outbox-bench-')), pkg: await loadPackage(), figures: {} };
const started = Date.now();
const rows = [];
console.log(`webhook-outbox bench (${quick ? 'QUICK: short windows, smaller backlogs' : 'full'}) on ${JSON.stringify(machine())}\n`);
try {
  for (const group of GROUPS) {
    if (only && !group.rows.some((id) => only.includes(id))) continue;
    const t0 = Date.now();
    const produced = await group.run(ctx);
    rows.push(...produced);
    for (const row of produced) console.log(`  [${row.id}] ${row.what}: ${row.ours} vs ${row.against} -> ${row.shown} ${row.verdict}`);
    console.log(`  (rows ${group.rows.join(', ')} took ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    globalThis.gc?.();
  }
} finally {
  rmSync(ctx.tmpRoot, { recursive: true, force: true });
}
rows.sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
console.log(`\n${renderTable(rows)}\n`);
const misses = rows.filter((row) => row.verdict === 'MISS');
console.log(misses.length === 0 ? 'No target missed.' : `MISSED targets: ${misses.map((row) => `[${row.id}] ${row.what}`).join('; ')}`);
console.log(`Total ${((Date.now() - started) / 1000).toFixed(0)} s.`);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  new URL('latest.json', resultsDir),
  `${JSON.stringify({ at: new Date().toISOString(), quick, machine: machine(), rows, figures: ctx.figures }, null, 2)}\n`,
);
