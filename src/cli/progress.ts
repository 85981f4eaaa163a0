/**
 * A single live progress line. On a terminal it rewrites itself in place; elsewhere (CI logs, pipes) it
 * prints a plain line now and then, so logs stay readable.
 */
import type { Writable } from 'node:stream';

/** Options of {@link ProgressLine}. */
export interface ProgressLineOptions {
  /**
   * Whether the stream is a terminal.
   * @default stream.isTTY
   */
  tty?: boolean;
  /**
   * Minimum time between two printed lines when not on a terminal, in milliseconds.
   * @default 2000
   */
  plainIntervalMs?: number;
  /**
   * Minimum time between two redraws on a terminal, in milliseconds.
   * @default 100
   */
  ttyIntervalMs?: number;
  /**
   * Print nothing at all (`--quiet`).
   * @default false
   */
  silent?: boolean;
}

/** A progress line written to `stream` (usually stderr, so stdout stays machine-readable). */
export class ProgressLine {
  readonly #stream: Writable;
  readonly #tty: boolean;
  readonly #interval: number;
  readonly #silent: boolean;
  #lastAt = Number.NEGATIVE_INFINITY;
  #lastText = '';
  #drawn = false;

  constructor(stream: Writable & { isTTY?: boolean }, options: ProgressLineOptions = {}) {
    this.#stream = stream;
    this.#tty = options.tty ?? stream.isTTY === true;
    this.#interval = this.#tty ? (options.ttyIntervalMs ?? 100) : (options.plainIntervalMs ?? 2_000);
    this.#silent = options.silent ?? false;
  }

  /** Shows `text`, unless the previous line was printed too recently or says the same. */
  update(text: string, now = Date.now()): void {
    if (this.#silent || text === this.#lastText || now - this.#lastAt < this.#interval) return;
    this.#lastAt = now;
    this.#lastText = text;
    if (this.#tty) {
      this.#stream.write(`\r\x1b[2K${text}`);
      this.#drawn = true;
    } else {
      this.#stream.write(`${text}\n`);
    }
  }

  /** Ends the line; prints `text` as its final state when given. */
  done(text?: string): void {
    if (this.#silent) return;
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    if (text !== undefined) this.#stream.write(`${text}\n`);
    this.#drawn = false;
    this.#lastText = '';
    this.#lastAt = Number.NEGATIVE_INFINITY;
  }

  /** Prints a message on its own line without losing the progress line. */
  log(text: string): void {
    if (this.#silent) return;
    if (this.#tty && this.#drawn) {
      this.#stream.write(`\r\x1b[2K${text}\n${this.#lastText}`);
    } else {
      this.#stream.write(`${text}\n`);
    }
  }
}
