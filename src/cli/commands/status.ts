/**
 * `webhook-outbox status`: what an outbox directory or table holds, read without taking its lock or a
 * lease, so it works while the apps that use it are running.
 */
import type { Writable } from 'node:stream';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatBytes, formatDuration, formatTable, redactUrl } from '../format.js';
import { inspectTarget } from './outbox-target.js';
import type { OutboxTarget } from './outbox-target.js';

/** The `--json` shape of `status`. */
export interface StatusReport {
  /** Where the outbox is: a directory (`--dir`) or a PostgreSQL table (`--postgres`). */
  store: 'file' | 'postgres';
  /** The directory, or `null` for a table. */
  dir: string | null;
  /** The table, or `null` for a directory. */
  table: string | null;
  /** The pid of the live process that owns the directory, or `null` (always for a table: it has no owner). */
  ownerPid: number | null;
  /** Its host, when that is not this one (another container or machine sharing the directory), or `null`. */
  ownerHost: string | null;
  pending: number;
  /**
   * Requests in flight. A directory: 0 when no process owns it, `null` when one does (only it knows). A
   * table: the events any outbox holds a live lease on.
   */
  inFlight: number | null;
  dead: number;
  oldestPendingAgeMs: number | null;
  bytesOnDisk: number;
  corrupt: number;
  /** Per endpoint URL, user info and query values shown as `***`. */
  endpoints: Record<string, { pending: number; dead: number }>;
}

/** Reads the directory or the table and builds the report. */
export async function readStatus(target: OutboxTarget, now = Date.now()): Promise<StatusReport> {
  const { stats, ownerPid, ownerHost } = await inspectTarget(target, { deadLetters: { limit: 0 } });
  const table = target.kind === 'postgres';
  return {
    store: table ? 'postgres' : 'file',
    dir: table ? null : target.dir,
    table: table ? target.table : null,
    ownerPid: ownerPid ?? null,
    ownerHost: ownerHost ?? null,
    pending: stats.pending,
    inFlight: table ? stats.claimed : ownerPid === undefined ? 0 : null,
    dead: stats.dead,
    oldestPendingAgeMs: stats.oldestPendingAt === undefined ? null : Math.max(0, now - stats.oldestPendingAt),
    bytesOnDisk: stats.bytesOnDisk,
    corrupt: stats.corrupt,
    endpoints: redactEndpoints(stats.endpoints),
  };
}

/** Endpoint counters keyed by redacted URLs (URLs that differ only in what is redacted are added up). */
function redactEndpoints(endpoints: StatusReport['endpoints']): StatusReport['endpoints'] {
  const out: StatusReport['endpoints'] = {};
  for (const [url, counters] of Object.entries(endpoints)) {
    const key = redactUrl(url);
    const sum = out[key] ?? { pending: 0, dead: 0 };
    out[key] = { pending: sum.pending + counters.pending, dead: sum.dead + counters.dead };
  }
  return out;
}

/** Prints the report as text or JSON. */
export function printStatus(report: StatusReport, json: boolean, out: Writable): ExitCodeValue {
  if (json) {
    out.write(`${JSON.stringify(report, null, 2)}\n`);
    return ExitCode.ok;
  }
  const table = report.table !== null;
  const summary = formatTable([
    ['outbox', table ? `PostgreSQL table ${report.table}` : (report.dir ?? '')],
    [
      'owner',
      table
        ? 'none: shared by every outbox that opens the table'
        : report.ownerPid === null
          ? 'none (no process has it open)'
          : `pid ${report.ownerPid}${report.ownerHost === null ? '' : ` on host ${report.ownerHost}`}`,
    ],
    ['pending', String(report.pending)],
    ['in flight', report.inFlight === null ? 'known only to the owning process' : `${report.inFlight}${table ? ' (leased by an outbox)' : ''}`],
    ['dead', String(report.dead)],
    ['oldest', report.oldestPendingAgeMs === null ? '-' : formatDuration(report.oldestPendingAgeMs)],
    [table ? 'size' : 'on disk', `${formatBytes(report.bytesOnDisk)}${table ? ' (table and indexes)' : ''}`],
    ...(table ? [] : [['corrupt', `${report.corrupt}${report.corrupt > 0 ? ' record(s) skipped on recovery' : ''}`]]),
  ]);
  out.write(`${summary}\n`);
  const urls = Object.keys(report.endpoints).sort();
  if (urls.length > 0) {
    const rows = urls.map((url) => [url, String(report.endpoints[url]?.pending ?? 0), String(report.endpoints[url]?.dead ?? 0)]);
    out.write(`\n${formatTable([['ENDPOINT', 'PENDING', 'DEAD'], ...rows])}\n`);
  }
  return ExitCode.ok;
}
