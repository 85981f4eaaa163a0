/**
 * The CLI's exit codes. Scripts match on these numbers; they never change meaning.
 */
import { WebhookOutboxError } from '../errors.js';

/** Exit codes of the `webhook-outbox` command. */
export const ExitCode = {
  /** Done: delivered, drained, nothing lost. */
  ok: 0,
  /** The work failed: an event was dead-lettered, the demo lost events, an I/O error. */
  failure: 1,
  /** Bad arguments or options; nothing was changed. */
  usage: 2,
  /** Another process owns the outbox directory. */
  locked: 3,
  /** A `--timeout` ran out with work still pending; it stays on disk and nothing is lost. */
  timeout: 4,
} as const;

/** One of the {@link ExitCode} values. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error the CLI reports as one line on stderr and turns into an exit code. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: ExitCodeValue;

  constructor(exitCode: ExitCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Maps any thrown value to the exit code that describes it. */
export function exitCodeOf(error: unknown): ExitCodeValue {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof WebhookOutboxError) {
    switch (error.code) {
      case 'ERR_INVALID_OPTION':
      case 'ERR_INVALID_MESSAGE':
      case 'ERR_INVALID_URL':
      case 'ERR_BODY_TOO_LARGE':
        return ExitCode.usage;
      case 'ERR_OUTBOX_LOCKED':
        return ExitCode.locked;
      case 'ERR_DRAIN_TIMEOUT':
        return ExitCode.timeout;
      default:
        return ExitCode.failure;
    }
  }
  return ExitCode.failure;
}
