/**
 * Messages between the demo and its producer child processes (Node IPC, JSON).
 */

/** Arguments of one producer process. */
export interface WorkerArgs {
  /** The outbox directory, shared by every producer in turn. */
  dir: string;
  /** The receiver's URL. */
  url: string;
  /** First event index this process enqueues. */
  from: number;
  /** Total number of events of the run (indexes `from` to `total - 1`). */
  total: number;
  /** Events per second the producer enqueues. */
  rate: number;
  /** Outbox `concurrency` per endpoint. */
  concurrency: number;
  /** Outbox retry cap (`retry.maxDelayMs`). */
  maxDelayMs: number;
  /** How long to wait for the drain at the end. */
  drainTimeoutMs: number;
}

/** The environment variable carrying the signing secret to the producer (not its argv). */
export const SECRET_ENV = 'WEBHOOK_OUTBOX_DEMO_SECRET';

/** A producer's report to the demo. */
export type WorkerMessage =
  /** Events `from` to `to - 1` are durable (their `enqueue()` resolved). */
  | { type: 'enqueued'; from: number; to: number }
  /** Everything was enqueued and drained; the process is about to close the outbox and exit. */
  | { type: 'drained'; dead: number; pending: number };

/** The id of the n-th demo event: stable across producer restarts. */
export function demoEventId(index: number): string {
  return `evt_${String(index).padStart(7, '0')}`;
}
