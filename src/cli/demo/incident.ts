/**
 * The incident the demo replays, as phases applied to a flaky receiver: a stretch of 500s, then 503s with
 * Retry-After, then refused connections, then a recovery with limited capacity.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { FlakyReceiver } from '../../testing/flaky-receiver.js';

/** One phase of the incident. */
export interface IncidentPhase {
  /** Shown in the progress line. */
  name: string;
  /** How long it lasts; the last phase lasts until the demo ends. */
  durationMs: number;
  /** Puts the receiver into this phase. */
  apply(receiver: FlakyReceiver): Promise<void>;
}

/** Options of {@link incidentPhases}. */
export interface IncidentOptions {
  /** Length of each failure phase, milliseconds. */
  phaseMs: number;
  /** Concurrent requests the recovered receiver takes before answering 429. */
  capacity: number;
  /** `Retry-After` seconds sent with the 503s. */
  retryAfterSeconds: number;
  /** Milliseconds the recovered receiver spends on each request. */
  workMs: number;
}

/** The four phases of the incident. */
export function incidentPhases(options: IncidentOptions): IncidentPhase[] {
  return [
    {
      name: '500 Internal Server Error',
      durationMs: options.phaseMs,
      apply: async (receiver) => receiver.setScript(() => ({ status: 500, body: 'database unavailable' })),
    },
    {
      name: `503 + Retry-After: ${options.retryAfterSeconds}`,
      durationMs: options.phaseMs,
      apply: async (receiver) =>
        receiver.setScript(() => ({ status: 503, headers: { 'retry-after': String(options.retryAfterSeconds) } })),
    },
    {
      name: 'refusing connections',
      durationMs: Math.max(1, Math.round(options.phaseMs / 2)),
      apply: (receiver) => receiver.refuseConnections(),
    },
    {
      name: `recovered, capacity ${options.capacity}`,
      durationMs: Infinity,
      apply: async (receiver) => {
        receiver.setCapacity(options.capacity);
        receiver.setScript(() => ({ status: 200, delayMs: options.workMs }));
        await receiver.acceptConnections();
      },
    },
  ];
}

/**
 * Applies the phases in order on a timer until the last one, calling `onPhase` at each change. Resolves
 * once the last phase is in place, or when `signal` aborts.
 */
export async function runIncident(
  receiver: FlakyReceiver,
  phases: readonly IncidentPhase[],
  onPhase: (phase: IncidentPhase, index: number) => void,
  signal: AbortSignal,
): Promise<void> {
  for (const [index, phase] of phases.entries()) {
    if (signal.aborted) return;
    await phase.apply(receiver);
    onPhase(phase, index);
    if (!Number.isFinite(phase.durationMs)) return;
    try {
      await delay(phase.durationMs, undefined, { signal });
    } catch {
      return;
    }
  }
}
