/**
 * `webhook-outbox status`: what an outbox directory holds, read without taking its lock, so it works
 * while the app that owns the directory is running.
 */
import type { Writable } from 'node:stream';
import { FileStore } from '../../store/file/file-store.js';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatBytes, formatDuration, formatTable, redactUrl } from '../format.js';
import { assertOutboxDir } from './outbox-dir.js';

/** The `--json` shape of `status`. */
export interface StatusReport {
  dir: string;
  /** The pid of the live process that owns the directory, or `null`. */
  ownerPid: number | null;
  /** Its host, when that is not this one (another container or machine sharing the directory), or `null`. */
  ownerHost: string | null;
  pending: number;
  /** Requests in flight: 0 when no process owns the directory; `null` when one does (only it knows). */
  inFlight: number | null;
  dead: number;
  oldestPendingAgeMs: number | null;
  bytesOnDisk: number;
  corrupt: number;
  /** Per endpoint URL, user info and query values shown as `***`. */
  endpoints: Record<string, { pending: number; dead: number }>;
}

/** Reads the directory and builds the report. */
export async function readStatus(dir: string, now = Date.now()): Promise<StatusReport> {
  await assertOutboxDir(dir);
  const { stats, ownerPid, ownerHost } = await FileStore.inspect(dir, { deadLetters: { limit: 0 } });
  return {
    dir,
    ownerPid: ownerPid ?? null,
    ownerHost: ownerHost ?? null,
    pending: stats.pending,
    inFlight: ownerPid === undefined ? 0 : null,
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
  const summary = formatTable([
    ['outbox', report.dir],
    ['owner', report.ownerPid === null ? 'none (no process has it open)' : `pid ${report.ownerPid}${report.ownerHost === null ? '' : ` on host ${report.ownerHost}`}`],
    ['pending', String(report.pending)],
    ['in flight', report.inFlight === null ? 'known only to the owning process' : String(report.inFlight)],
    ['dead', String(report.dead)],
    ['oldest', report.oldestPendingAgeMs === null ? '-' : formatDuration(report.oldestPendingAgeMs)],
    ['on disk', formatBytes(report.bytesOnDisk)],
    ['corrupt', `${report.corrupt}${report.corrupt > 0 ? ' record(s) skipped on recovery' : ''}`],
  ]);
  out.write(`${summary}\n`);
  const urls = Object.keys(report.endpoints).sort();
  if (urls.length > 0) {
    const rows = urls.map((url) => [url, String(report.endpoints[url]?.pending ?? 0), String(report.endpoints[url]?.dead ?? 0)]);
    out.write(`\n${formatTable([['ENDPOINT', 'PENDING', 'DEAD'], ...rows])}\n`);
  }
  return ExitCode.ok;
}
