/**
 * Parsers for command-line values. Each throws commander's `InvalidArgumentError`, which the CLI reports
 * with the option's name and exits with the usage code; those that may hold a credential throw a
 * `CliError` instead, whose message does not quote the value.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { urlProblem } from '../message.js';
import type { InvalidOptionError } from '../errors.js';
import { checkProxyUrl, checkSigningSecrets } from '../options.js';
import { CliError, ExitCode } from './exit-codes.js';

/** Parses an integer >= `min`. */
export function integerAtLeast(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}".`);
    }
    return n;
  };
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const AGO = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:([T ])[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Parses a duration: a number of milliseconds, or a number with `ms`, `s`, `m` or `h`. */
export function duration(value: string): number {
  const match = DURATION.exec(value.trim());
  if (match === null) {
    throw new InvalidArgumentError(`expected a duration such as 500ms, 30s or 5m, got "${value}".`);
  }
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] ?? 1));
}

/**
 * Parses a point in time (ms since epoch): an ISO 8601 date or date-time (`2026-11-24`,
 * `2026-11-24T18:00:00Z`, `2026-11-24T19:00+01:00`; without a zone, UTC), or how long ago with a unit
 * (`90s`, `30m`, `2h`, `7d`).
 */
export function pointInTime(value: string): number {
  const text = value.trim();
  const ago = AGO.exec(text);
  const date = ISO_DATE.exec(text);
  let at = NaN;
  if (ago !== null) {
    at = Date.now() - Math.round(Number(ago[1]) * (UNIT_MS[ago[2] as string] as number));
  } else if (date !== null) {
    const [year, month, day] = [date[1], date[2], date[3]].map(Number) as [number, number, number];
    // Date.parse would take 2026-02-30 for 2 March, and a date-time without a zone as local time.
    const real = month >= 1 && month <= 12 && day >= 1 && day === new Date(Date.UTC(year, month - 1, day)).getUTCDate();
    if (real) at = Date.parse(date[4] !== undefined && date[5] === undefined ? `${text}Z` : text);
  }
  if (!(at >= 0)) throw new InvalidArgumentError(`expected a date such as 2026-11-24T18:00:00Z or a time ago such as 2h or 7d, got "${value}".`);
  return at;
}

/**
 * A usage error that does not quote the value: commander's own message for an `InvalidArgumentError`
 * repeats the raw value, and URLs, headers and secrets may carry credentials.
 */
function unquoted(what: string, problem: string): CliError {
  return new CliError(ExitCode.usage, `${what}: ${problem} (the value is not shown: it may carry a credential).`);
}

/** Checks an http: or https: URL given as `what` (`argument 'url'`, `option '--url'`). */
export function httpUrlAs(what: string): (value: string) => string {
  return (value) => {
    const problem = urlProblem(value);
    if (problem !== undefined) throw unquoted(what, problem);
    return value;
  };
}

/** Checks the `<url>` argument. */
export const httpUrl = httpUrlAs("argument 'url'");

/**
 * Checks `--proxy` as the `proxy` option is checked, without quoting it (it may carry a password). Empty
 * (an unset WEBHOOK_OUTBOX_PROXY= in a script) is no proxy.
 */
export function proxyUrl(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    checkProxyUrl(value);
  } catch (error) {
    const { message } = error as InvalidOptionError;
    throw unquoted("option '--proxy' (or WEBHOOK_OUTBOX_PROXY)", message.slice(message.indexOf(': ') + 2).replace(/ \(the value is not shown: it may carry a password\)$/, ''));
  }
  return value;
}

/**
 * Checks `--postgres` without quoting it (it may carry a password): a `postgres://` or `postgresql://` URL
 * (or pg's `socket:` form), as node-postgres takes it. Empty (an unset WEBHOOK_OUTBOX_POSTGRES= in a
 * script) is not given.
 */
export function postgresUrl(value: string): string | undefined {
  if (value === '') return undefined;
  let protocol: string | undefined;
  try {
    ({ protocol } = new URL(value));
  } catch {
    // Not a URL: the problem below says what is expected.
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:' && protocol !== 'socket:') {
    throw unquoted("option '--postgres' (or WEBHOOK_OUTBOX_POSTGRES)", 'expected a connection string such as postgres://user:password@host:5432/database');
  }
  return value;
}

/** Parses a repeatable `name:value` header into the accumulated record. */
export function header(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const colon = value.indexOf(':');
  if (colon <= 0) throw unquoted("option '--header'", 'expected name:value');
  return { ...previous, [value.slice(0, colon).trim().toLowerCase()]: value.slice(colon + 1).trim() };
}

/**
 * Checks Standard Webhooks secrets: `whsec_` followed by base64, or an ed25519 `whsk_` key; several
 * separated by spaces while rotating (new first: each request is signed with every one).
 */
export function signingSecret(value: string): string[] {
  const secrets = value.trim().split(/\s+/);
  try {
    checkSigningSecrets(secrets, 'secret');
  } catch (error) {
    const { option, message } = error as InvalidOptionError;
    const which = /\[(\d+)\]/.exec(option)?.[1];
    const problem = message.slice(message.indexOf(': ') + 2);
    throw unquoted("option '--secret' (or WEBHOOK_OUTBOX_SECRET)", secrets.length > 1 && which !== undefined ? `secret ${Number(which) + 1} of ${secrets.length}: ${problem}` : problem);
  }
  return secrets;
}

/**
 * Reads `--data`: inline JSON, `@path` for a JSON file, `@-` for standard input. Resolves with the parsed
 * value.
 */
export async function readJsonData(value: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<unknown> {
  let text: string;
  let source: string;
  if (value.startsWith('@')) {
    source = value === '@-' ? 'standard input' : value.slice(1);
    try {
      text = value === '@-' ? await readStream(stdin) : await readFile(value.slice(1), 'utf8');
    } catch (error) {
      throw new CliError(ExitCode.usage, `--data: cannot read ${source}: ${(error as Error).message}`, { cause: error });
    }
  } else {
    source = 'the argument';
    text = value;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CliError(ExitCode.usage, `--data: ${source} is not valid JSON (${(error as Error).message})`, { cause: error });
  }
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
