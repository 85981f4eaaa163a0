/**
 * The demo's final report, computed from what the receiver saw: the receiver is the judge of what was
 * delivered, not the outbox.
 */
import type { ReceivedRequest } from '../../testing/flaky-receiver.js';
import { formatDuration, formatTable, quantile } from '../format.js';

/** What the demo observed. */
export interface DemoObservation {
  /** Ids whose `enqueue()` resolved (durable) before the producer reported them. */
  sent: ReadonlySet<string>;
  /** Every request the receiver got. Bodies are JSON with a `createdAt` (ms) set just before enqueue. */
  requests: readonly ReceivedRequest[];
  /** Dead letters in the outbox at the end. */
  deadLetters: number;
  /** The receiver's peak concurrency. */
  peakConcurrency: number;
  /** How many producer processes were SIGKILLed. */
  kills: number;
  /** Wall time of the whole run. */
  durationMs: number;
}

/** The numbers the demo prints. */
export interface DemoReport {
  sent: number;
  /** Distinct sent ids answered 2xx at least once. */
  delivered: number;
  /** Sent ids never answered 2xx. */
  lost: number;
  /** Up to 10 lost ids, for the curious. */
  lostSample: string[];
  /** 2xx answers beyond the first per id: redeliveries a receiver absorbs by deduplicating on webhook-id. */
  duplicates: number;
  /** Requests that reached the receiver (refused connections never do). */
  attempts: number;
  /** Attempts answered with something else than 2xx. */
  failedAttempts: number;
  deadLetters: number;
  /** Signatures that did not verify. */
  badSignatures: number;
  /** Enqueue to first 2xx, milliseconds. */
  latencyP50Ms: number;
  latencyP99Ms: number;
  peakConcurrency: number;
  kills: number;
  durationMs: number;
}

function createdAtOf(body: string): number | undefined {
  try {
    const parsed = JSON.parse(body) as { createdAt?: unknown };
    return typeof parsed.createdAt === 'number' ? parsed.createdAt : undefined;
  } catch {
    return undefined;
  }
}

/** Computes the report. Pure. */
export function buildReport(observation: DemoObservation): DemoReport {
  const firstSuccessAt = new Map<string, number>();
  const latencies: number[] = [];
  let successes = 0;
  let badSignatures = 0;
  for (const request of observation.requests) {
    if (request.signatureValid === false) badSignatures += 1;
    const ok = request.status !== undefined && request.status >= 200 && request.status < 300;
    if (!ok || request.id === undefined) continue;
    successes += 1;
    if (firstSuccessAt.has(request.id)) continue;
    firstSuccessAt.set(request.id, request.at);
    const createdAt = createdAtOf(request.body);
    if (createdAt !== undefined) latencies.push(Math.max(0, request.at - createdAt));
  }
  latencies.sort((a, b) => a - b);
  const lostIds = [...observation.sent].filter((id) => !firstSuccessAt.has(id));
  const delivered = observation.sent.size - lostIds.length;
  const attempts = observation.requests.length;
  const failedAttempts = observation.requests.filter((r) => r.status === undefined || r.status < 200 || r.status >= 300).length;
  return {
    sent: observation.sent.size,
    delivered,
    lost: lostIds.length,
    lostSample: lostIds.slice(0, 10),
    duplicates: successes - firstSuccessAt.size,
    attempts,
    failedAttempts,
    deadLetters: observation.deadLetters,
    badSignatures,
    latencyP50Ms: quantile(latencies, 0.5),
    latencyP99Ms: quantile(latencies, 0.99),
    peakConcurrency: observation.peakConcurrency,
    kills: observation.kills,
    durationMs: observation.durationMs,
  };
}

/** The report as text; the last line says `<n> lost`. */
export function formatReport(report: DemoReport): string {
  const table = formatTable([
    ['sent', String(report.sent), 'enqueue() resolved: durable on disk'],
    ['delivered', String(report.delivered), 'answered 2xx at least once'],
    ['lost', String(report.lost), report.lost === 0 ? '' : `e.g. ${report.lostSample.join(', ')}`],
    ['duplicates', String(report.duplicates), 'extra 2xx deliveries, absorbed by deduplicating on webhook-id'],
    ['attempts', String(report.attempts), `requests that reached the receiver; ${report.failedAttempts} answered 5xx/429 or cut`],
    ['dead letters', String(report.deadLetters), 'kept on disk, replayable'],
    ['signatures', report.badSignatures === 0 ? 'all valid' : `${report.badSignatures} invalid`, 'Standard Webhooks, verified by the receiver'],
    ['latency p50', formatDuration(report.latencyP50Ms), 'enqueue to first 2xx'],
    ['latency p99', formatDuration(report.latencyP99Ms), ''],
    ['peak', String(report.peakConcurrency), 'concurrent requests at the receiver'],
    ['kills', String(report.kills), 'producer processes SIGKILLed mid-run'],
    ['took', formatDuration(report.durationMs), ''],
  ]);
  const verdict =
    report.lost === 0
      ? `0 lost: every one of the ${report.sent} events was delivered.`
      : `${report.lost} lost: ${report.lost} of the ${report.sent} durable events never reached the receiver.`;
  return `${table.replace(/ +$/gm, '')}\n\n${verdict}`;
}
