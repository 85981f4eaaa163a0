/**
 * Options of the sender (the outbox extends them): one type with a documented default per field, and one
 * validator that names the option and the bad value and rejects unknown keys. The small `check*` helpers
 * are exported so every options object of the package validates the same way.
 */
import net from 'node:net';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import { InvalidOptionError } from './errors.js';
import { normalizeHeaders, urlProblem } from './message.js';
import type { RandomSource } from './retry/backoff.js';
import type { RetryBudgetPolicy } from './retry/budget.js';
import { ed25519KeyProblem, PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX } from './signing/ed25519-keys.js';
import type { OutboxStore } from './store/store.js';
import type { AddressGuard, HostResolver } from './transport/private-addresses.js';
import { createAddressGuard } from './transport/private-addresses.js';
import type { Transport } from './transport/transport.js';

/** Retry schedule: exponential backoff with full jitter, bounded by attempts and elapsed time. */
export interface RetryOptions {
  /**
   * Upper bound of the first jittered delay, in ms; the bound doubles after each failed attempt.
   * @default 200 (sender), 1000 (outbox)
   */
  baseDelayMs?: number;
  /**
   * Cap on the jittered delay, in ms.
   * @default 5000 (sender), 600000 = 10 min (outbox)
   */
  maxDelayMs?: number;
  /**
   * Most attempts in total, the first included. `Infinity` = no limit (then `maxAgeMs` decides).
   * @default 3 (sender), Infinity (outbox)
   */
  maxAttempts?: number;
  /**
   * Elapsed-time budget in ms, from the first attempt (sender) or from enqueue (outbox); no attempt starts
   * after it, and the sender never sleeps past it. The issue tracker calls this `maxElapsedMs`.
   * @default 30000 (sender), 259200000 = 72 h (outbox)
   */
  maxAgeMs?: number;
  /**
   * Cap on a receiver's `Retry-After`, in ms: a longer request is shortened to this.
   * @default 10000 (sender), 3600000 = 1 h (outbox)
   */
  maxRetryAfterMs?: number;
}

/**
 * Picks the signing secret(s) for a request by its URL (a secret per endpoint), or `undefined` to leave it
 * unsigned. May be async (a secret store); a rejection or a value that is not a secret fails that attempt,
 * which is retried like a network error.
 */
export type SigningSecretResolver = (url: string) => string | readonly string[] | undefined | Promise<string | readonly string[] | undefined>;

/** Options of `createSender()`. Every field is optional. */
export interface SenderOptions {
  /**
   * Default endpoint for messages without their own `url`. `http:` or `https:`.
   * @default undefined (each message must then carry a url)
   */
  url?: string;
  /**
   * Standard Webhooks secret (`whsec_` + base64 of 24 to 64 bytes). When set, every attempt carries
   * `webhook-signature: v1,<base64 HMAC-SHA256>`; an ed25519 secret key (`whsk_`, see
   * `generateSigningKeyPair()`) signs `v1a,<base64 ed25519>` instead, which receivers verify with the
   * public key (`whpk_`) and cannot forge. To rotate without a gap, pass the new and the old
   * secret (up to 10): each attempt then carries one signature per secret, space-separated, in this
   * order, and a receiver holding either accepts it. For a secret per endpoint (each customer's receiver
   * has its own), a function of the request's URL returning its secret(s), or `undefined` to send that
   * one unsigned; asked at every attempt, so secrets are never stored with events.
   * @default undefined (unsigned)
   */
  signingSecret?: string | readonly string[] | SigningSecretResolver;
  /**
   * Overall deadline of one attempt (connect, send, response), in ms.
   * @default 15000
   */
  timeoutMs?: number;
  /**
   * Largest accepted body after encoding, in bytes. Bigger messages are rejected with `ERR_BODY_TOO_LARGE`.
   * @default 1048576 (1 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Headers added to every message (a message's own headers override them).
   * @default {}
   */
  headers?: Record<string, string>;
  /** Retry schedule. See {@link RetryOptions}. */
  retry?: RetryOptions;
  /**
   * `createSender()` only: how much retrying its `send()` calls to one endpoint URL may add to their first
   * attempts: at most `ratio` retries per send over the last 10 s, plus `minPerSecond` x 10 s (so a trickle
   * of sends always retries). A send that would retry past it rejects at once with `ERR_RETRIES_EXHAUSTED`,
   * instead of multiplying the load on a receiver in trouble by `maxAttempts`. `false`: every send retries on
   * its own. The outbox refuses it: its circuit breaker and slow start bound its retries.
   * @default { ratio: 0.2, minPerSecond: 10 }
   */
  retryBudget?: false | { ratio?: number; minPerSecond?: number };
  /**
   * Your own transport (fetch, undici, a got instance...). It is wrapped for signing and not retried by itself.
   * @default a got 14 transport with a dedicated keep-alive agent
   */
  transport?: Transport;
  /**
   * Retry `ENOTFOUND` (host does not resolve). Off because it usually means a wrong URL, not an outage.
   * @default false
   */
  retryOnDnsFailure?: boolean;
  /**
   * Refuse to send to loopback, private, link-local and other non-public addresses: the protection against
   * server-side request forgery when endpoint URLs come from your customers. Checked where the connection
   * is made, on every address a name resolves to (so DNS rebinding is caught), and for IP literals and
   * `localhost` already when a message or URL is given (`ERR_INVALID_URL`). A refused connection is not
   * retried: the event becomes a dead letter (`invalid`, errno `EPRIVATEADDRESS`). `{ allow: [...] }`
   * keeps some addresses or CIDR ranges reachable (`'10.20.0.0/16'`, `'fd00::1'`). Only with the built-in
   * transport (for your own, pass `createGotTransport({ blockPrivateAddresses })` or filter in it), and not
   * with `proxy` (the proxy resolves and connects, so it is the one to filter).
   * @default false
   */
  blockPrivateAddresses?: boolean | { allow: readonly string[] };
  /**
   * Send every request through this HTTP proxy (an egress proxy, or a filtering one such as smokescreen):
   * `'http://proxy.internal:3128'`, or `https:` to reach the proxy over TLS; `user:password@` in it is sent
   * as `Proxy-Authorization: Basic` and never shown in errors. http and https endpoints alike are tunnelled
   * with CONNECT (through hpagent). The proxy's answer to CONNECT: 403 is permanent (a dead letter
   * `invalid`), 407 (its credentials) and 502/503/504 are retried; see `ProxyError`. Only with the built-in transport, and not with
   * `blockPrivateAddresses` (which cannot see the addresses the proxy connects to: filter at the proxy).
   * @default undefined (direct connections)
   */
  proxy?: string;
  /**
   * Random source in [0, 1) for the jitter (tests inject a fixed one).
   * @default Math.random
   */
  random?: RandomSource;
  /**
   * Time source and timers (tests inject a `FakeClock`).
   * @default systemClock
   */
  clock?: Clock;
}

/** Retry options with every default filled in. */
export interface NormalizedRetryOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
  maxAgeMs: number;
  maxRetryAfterMs: number;
}

/** Sender options after validation, with every default filled in. */
export interface NormalizedSenderOptions {
  url: string | undefined;
  /** One or more secrets (a rotation), a resolver, or `undefined`. */
  signingSecret: readonly string[] | SigningSecretResolver | undefined;
  timeoutMs: number;
  maxBodyBytes: number;
  headers: Record<string, string>;
  retry: NormalizedRetryOptions;
  /** `undefined` when off. */
  retryBudget: RetryBudgetPolicy | undefined;
  transport: Transport | undefined;
  retryOnDnsFailure: boolean;
  /** The `blockPrivateAddresses` policy, or `undefined` when it is off. */
  addressGuard: AddressGuard | undefined;
  /** The proxy URL, credentials included (never print it). */
  proxy: string | undefined;
  random: RandomSource;
  clock: Clock;
}

/**
 * In-process defaults: the caller is awaiting `send()`, so the whole schedule fits in ~30 s: 3 attempts
 * (the per-request budget of AWS SDKs and Google SRE) spaced 0-200 then 0-400 ms, unless the receiver asks
 * for more with Retry-After (honoured up to 10 s). Longer outages are the outbox's job.
 */
export const SENDER_RETRY_DEFAULTS: Readonly<NormalizedRetryOptions> = Object.freeze({
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxAttempts: 3,
  maxAgeMs: 30_000,
  maxRetryAfterMs: 10_000,
});

/** The keys `SenderOptions` accepts. */
export const SENDER_OPTION_KEYS: readonly string[] = Object.freeze([
  'url',
  'signingSecret',
  'timeoutMs',
  'maxBodyBytes',
  'headers',
  'retry',
  'retryBudget',
  'transport',
  'retryOnDnsFailure',
  'blockPrivateAddresses',
  'proxy',
  'random',
  'clock',
]);

const RETRY_KEYS = ['baseDelayMs', 'maxDelayMs', 'maxAttempts', 'maxAgeMs', 'maxRetryAfterMs'];

/** The sender's retry budget unless told otherwise: a fifth more requests than sends, or 10 a second. */
export const RETRY_BUDGET_DEFAULTS: Readonly<RetryBudgetPolicy> = Object.freeze({ ratio: 0.2, minPerSecond: 10 });

function checkRetryBudget(value: unknown): RetryBudgetPolicy | undefined {
  if (value === false) return undefined;
  if (value === undefined) return RETRY_BUDGET_DEFAULTS;
  const option = 'retryBudget';
  if (value === null || typeof value !== 'object') {
    throw new InvalidOptionError(option, `expected false or { ratio?, minPerSecond? }, got ${describeValue(value)}`);
  }
  const o = checkObject(value, option);
  checkKnownKeys(o, ['ratio', 'minPerSecond'], `${option}.`);
  const number = (field: 'ratio' | 'minPerSecond', max: number): number => {
    const v = o[field];
    if (v === undefined) return RETRY_BUDGET_DEFAULTS[field];
    if (typeof v !== 'number' || !(v >= 0 && v <= max)) throw new InvalidOptionError(`${option}.${field}`, `expected a number from 0 to ${max}, got ${describeValue(v)}`);
    return v;
  };
  return { ratio: number('ratio', 100), minPerSecond: number('minPerSecond', 1_000_000) };
}
const MAX_TIMER_MS = 2_147_483_647;

/** A short, safe rendering of a bad value for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null || typeof value !== 'object') return String(value);
  return 'an object';
}

/** Throws unless `value` is a plain object (or undefined, which gives `{}`). */
export function checkObject(value: unknown, option: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(option, `expected an object, got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Throws on the first key of `value` that is not in `allowed`. `prefix` is prepended to the reported name. */
export function checkKnownKeys(value: Record<string, unknown>, allowed: readonly string[], prefix = ''): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new InvalidOptionError(`${prefix}${key}`, `unknown option (expected one of: ${allowed.join(', ')})`);
    }
  }
}

/**
 * An integer in [min, max] (`Infinity` allowed when `allowInfinity`), or `fallback` when undefined.
 */
export function checkInteger(
  value: unknown,
  option: string,
  fallback: number,
  range: { min: number; max?: number; allowInfinity?: boolean },
): number {
  if (value === undefined) return fallback;
  if (range.allowInfinity === true && value === Infinity) return value;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > max) {
    const bound = range.allowInfinity === true ? ' or Infinity' : '';
    throw new InvalidOptionError(option, `expected an integer from ${range.min} to ${max}${bound}, got ${describeValue(value)}`);
  }
  return value;
}

/** A boolean, or `fallback` when undefined. */
export function checkBoolean(value: unknown, option: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(option, `expected true or false, got ${describeValue(value)}`);
  return value;
}

/** One of `choices`, or `fallback` when undefined. */
export function checkEnum<T extends string>(value: unknown, option: string, fallback: T, choices: readonly T[]): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    throw new InvalidOptionError(option, `expected one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${describeValue(value)}`);
  }
  return value as T;
}

/** An object having every method in `methods`, or undefined. */
export function checkPort<T>(value: unknown, option: string, methods: readonly string[]): T | undefined {
  if (value === undefined) return undefined;
  const ok =
    value !== null &&
    typeof value === 'object' &&
    methods.every((m) => typeof (value as Record<string, unknown>)[m] === 'function');
  if (!ok) throw new InvalidOptionError(option, `expected an object with method(s) ${methods.join(', ')}, got ${describeValue(value)}`);
  return value as T;
}

/**
 * An absolute http(s) URL (one `guard` does not refuse), or undefined. The URL itself is never echoed (it may
 * carry credentials).
 */
export function checkUrl(value: unknown, option: string, guard?: AddressGuard): string | undefined {
  if (value === undefined) return undefined;
  const problem = urlProblem(value) ?? guard?.urlProblem(value as string);
  if (problem !== undefined) throw new InvalidOptionError(option, problem);
  return value as string;
}

const PROXY_EXAMPLE = "expected an http: or https: proxy URL such as 'http://proxy.internal:3128' (user:password@ allowed)";

/**
 * Validates the `proxy` option: an absolute `http:` or `https:` URL of a host and port, with optional user
 * info and nothing else. The value is never quoted: it may carry a password.
 */
export function checkProxyUrl(value: unknown, option = 'proxy'): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new InvalidOptionError(option, `${PROXY_EXAMPLE}, got ${describeValue(value)}`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new InvalidOptionError(option, `${PROXY_EXAMPLE}; the value is not an absolute URL (the value is not shown: it may carry a password)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    // Not quoted either: without `//`, what URL calls the protocol is the user name of `user:password@host`.
    const why = !value.includes('//')
      ? 'the value has no scheme: start it with http:// or https://'
      : parsed.protocol.startsWith('socks')
        ? 'SOCKS proxies are not supported'
        : 'it has another scheme';
    throw new InvalidOptionError(option, `${PROXY_EXAMPLE}; ${why} (the value is not shown: it may carry a password)`);
  }
  if (parsed.hostname === '') throw new InvalidOptionError(option, `${PROXY_EXAMPLE}; the URL has no host`);
  try {
    // hpagent decodes them for Proxy-Authorization: a bad escape would fail every attempt.
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    throw new InvalidOptionError(option, `${PROXY_EXAMPLE}; its user info is not valid percent-encoding (the value is not shown: it may carry a password)`);
  }
  // hpagent connects to `hostname`, which keeps an IPv6 literal's brackets: that would be looked up as a name.
  if (parsed.hostname.startsWith('[')) {
    throw new InvalidOptionError(option, 'an IPv6 address as the proxy host is not supported: give a host name that resolves to it');
  }
  if ((parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search !== '' || parsed.hash !== '') {
    throw new InvalidOptionError(option, `${PROXY_EXAMPLE}; a proxy URL has no path, query or fragment`);
  }
  return value;
}

/** Why `blockPrivateAddresses` and `proxy` are refused together. */
export const PROXY_ADDRESS_POLICY_PROBLEM =
  'cannot be enforced through a `proxy`: the proxy resolves the host names and connects, so this process never sees the ' +
  "addresses it would have to check. Filter at the proxy instead (smokescreen, for one, refuses private addresses), " +
  'and drop blockPrivateAddresses';

const SECRET = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

/**
 * Why `secret` is not a Standard Webhooks signing secret (`whsec_`, or an ed25519 `whsk_` key), or
 * `undefined` when it is. Never quotes the secret.
 */
export function signingSecretProblem(secret: unknown): string | undefined {
  if (typeof secret === 'string' && secret.startsWith(SECRET_KEY_PREFIX)) return ed25519KeyProblem(secret);
  if (typeof secret === 'string' && secret.startsWith(PUBLIC_KEY_PREFIX)) {
    return `a '${PUBLIC_KEY_PREFIX}' public key cannot sign: pass its '${SECRET_KEY_PREFIX}' secret key here, and the public key to receivers`;
  }
  const expected = `expected 'whsec_' followed by the base64 of 24 to 64 random bytes, or an ed25519 '${SECRET_KEY_PREFIX}' secret key`;
  if (typeof secret !== 'string') return `${expected}, got ${secret === null ? 'null' : typeof secret}`;
  const match = SECRET.exec(secret);
  if (match?.[1] === undefined || match[1].length % 4 !== 0) return `${expected} (the value is not in that format)`;
  const bytes = Buffer.from(match[1], 'base64').byteLength;
  if (bytes < 24 || bytes > 64) return `${expected} (it decodes to ${bytes} bytes)`;
  return undefined;
}

/** Most `allow` entries of `blockPrivateAddresses`. */
const MAX_ALLOWED_ADDRESSES = 100;

/**
 * Validates the `blockPrivateAddresses` option and returns its guard, or `undefined` when it is off.
 * `allow` entries are IP addresses or CIDR ranges (`10.1.0.0/16`, `fd00::/8`).
 */
export function checkPrivateAddressPolicy(value: unknown, option = 'blockPrivateAddresses', resolve?: HostResolver): AddressGuard | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return createAddressGuard(undefined, resolve);
  const expected = `expected true, false or { allow: [up to ${MAX_ALLOWED_ADDRESSES} addresses or CIDR ranges] }`;
  const allow = (value as { allow?: unknown } | null)?.allow;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).some((key) => key !== 'allow') || !Array.isArray(allow) || allow.length > MAX_ALLOWED_ADDRESSES) {
    throw new InvalidOptionError(option, `${expected}, got ${describeValue(value)}`);
  }
  const allowed = new net.BlockList();
  for (let i = 0; i < allow.length; i++) {
    const entry: unknown = allow[i];
    const problem = `expected an IP address or a CIDR range such as '10.20.0.0/16', got ${describeValue(entry)}`;
    const [address = '', prefixText, extra] = typeof entry === 'string' ? entry.split('/') : [];
    const family = net.isIP(address);
    const bits = family === 6 ? 128 : 32;
    const prefix = prefixText === undefined ? bits : Number(prefixText);
    if (family === 0 || extra !== undefined || (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) || prefix > bits) {
      throw new InvalidOptionError(`${option}.allow[${i}]`, problem);
    }
    allowed.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return createAddressGuard(allowed, resolve);
}

/** Most secrets signed with at once (a rotation needs two). */
export const MAX_SIGNING_SECRETS = 10;

/**
 * The `signingSecret` option (one secret or a list) as a list of valid, distinct secrets (a repeated one,
 * as when the old and the new secret of a finished rotation are the same value, counts once), or undefined.
 * `problemOf` checks each one (verifying accepts public keys too).
 */
export function checkSigningSecrets(value: unknown, option = 'signingSecret', problemOf = signingSecretProblem): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const secrets: unknown[] = Array.isArray(value) ? value : [value];
  if (secrets.length === 0 || secrets.length > MAX_SIGNING_SECRETS) {
    throw new InvalidOptionError(option, `expected one secret or a list of 1 to ${MAX_SIGNING_SECRETS}, got a list of ${secrets.length}`);
  }
  // An index loop: forEach would skip the holes of a sparse array.
  for (let i = 0; i < secrets.length; i++) {
    const problem = problemOf(secrets[i]);
    if (problem !== undefined) throw new InvalidOptionError(Array.isArray(value) ? `${option}[${i}]` : option, problem);
  }
  return Object.freeze([...new Set(secrets as string[])]);
}

/** Validates the `retry` block against `defaults`. */
export function normalizeRetryOptions(value: unknown, defaults: Readonly<NormalizedRetryOptions>, option = 'retry'): NormalizedRetryOptions {
  const input = checkObject(value, option);
  checkKnownKeys(input, RETRY_KEYS, `${option}.`);
  const baseDelayMs = checkInteger(input.baseDelayMs, `${option}.baseDelayMs`, defaults.baseDelayMs, { min: 0, max: MAX_TIMER_MS });
  const maxDelayMs = checkInteger(input.maxDelayMs, `${option}.maxDelayMs`, Math.max(defaults.maxDelayMs, baseDelayMs), {
    min: 0,
    max: MAX_TIMER_MS,
  });
  if (maxDelayMs < baseDelayMs) {
    throw new InvalidOptionError(`${option}.maxDelayMs`, `must be at least retry.baseDelayMs (${baseDelayMs}), got ${maxDelayMs}`);
  }
  return {
    baseDelayMs,
    maxDelayMs,
    maxAttempts: checkInteger(input.maxAttempts, `${option}.maxAttempts`, defaults.maxAttempts, { min: 1, allowInfinity: true }),
    maxAgeMs: checkInteger(input.maxAgeMs, `${option}.maxAgeMs`, defaults.maxAgeMs, { min: 1, allowInfinity: true }),
    maxRetryAfterMs: checkInteger(input.maxRetryAfterMs, `${option}.maxRetryAfterMs`, defaults.maxRetryAfterMs, {
      min: 0,
      max: MAX_TIMER_MS,
    }),
  };
}

/**
 * Validates sender options and fills in defaults. `retryDefaults` lets the outbox reuse this with its own
 * schedule; `extraKeys` are accepted (not validated) so an extended options type can check them itself.
 * Throws `InvalidOptionError` naming the option and the bad value (never a secret or header value).
 */
export function normalizeSenderOptions(
  input: unknown,
  config: { retryDefaults?: Readonly<NormalizedRetryOptions>; extraKeys?: readonly string[] } = {},
): NormalizedSenderOptions {
  const o = checkObject(input, 'options');
  checkKnownKeys(o, [...SENDER_OPTION_KEYS, ...(config.extraKeys ?? [])]);
  if (o.random !== undefined && typeof o.random !== 'function') {
    throw new InvalidOptionError('random', `expected a function returning [0, 1), got ${describeValue(o.random)}`);
  }
  const addressGuard = checkPrivateAddressPolicy(o.blockPrivateAddresses);
  if (addressGuard !== undefined && o.transport !== undefined) {
    throw new InvalidOptionError(
      'blockPrivateAddresses',
      'works with the built-in transport only; with your own, pass createGotTransport({ blockPrivateAddresses }) as `transport` or filter addresses in it',
    );
  }
  const proxy = checkProxyUrl(o.proxy);
  if (proxy !== undefined && o.transport !== undefined) {
    throw new InvalidOptionError('proxy', 'works with the built-in transport only; with your own, pass createGotTransport({ proxy }) as `transport` or send through the proxy in it');
  }
  if (proxy !== undefined && addressGuard !== undefined) throw new InvalidOptionError('blockPrivateAddresses', PROXY_ADDRESS_POLICY_PROBLEM);
  return {
    url: checkUrl(o.url, 'url', addressGuard),
    signingSecret: typeof o.signingSecret === 'function' ? (o.signingSecret as SigningSecretResolver) : checkSigningSecrets(o.signingSecret),
    timeoutMs: checkInteger(o.timeoutMs, 'timeoutMs', 15_000, { min: 1, max: MAX_TIMER_MS }),
    maxBodyBytes: checkInteger(o.maxBodyBytes, 'maxBodyBytes', 1_048_576, { min: 1 }),
    headers:
      o.headers === undefined
        ? {}
        : normalizeHeaders(o.headers, 'headers', (field, problem) => new InvalidOptionError(field, problem)),
    retry: normalizeRetryOptions(o.retry, config.retryDefaults ?? SENDER_RETRY_DEFAULTS),
    retryBudget: checkRetryBudget(o.retryBudget),
    transport: checkPort<Transport>(o.transport, 'transport', ['send']),
    retryOnDnsFailure: checkBoolean(o.retryOnDnsFailure, 'retryOnDnsFailure', false),
    addressGuard,
    proxy,
    random: (o.random as RandomSource | undefined) ?? Math.random,
    clock: checkPort<Clock>(o.clock, 'clock', ['now', 'setTimer']) ?? systemClock,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Outbox options: the sender's, plus where events are kept and how the background flusher runs.
// ---------------------------------------------------------------------------------------------------------

/** Options of `Outbox.open()`: the sender options plus storage and flusher settings. Give `dir` or `store`. */
export interface OutboxOptions extends SenderOptions {
  /**
   * Directory of the default `FileStore` (created 0700 if missing). Shorthand for
   * `store: new FileStore({ dir, durability, maxBytes })`.
   * @default undefined (then `store` is required)
   */
  dir?: string;
  /**
   * Any `OutboxStore` (e.g. `MemoryStore` in tests, `LowdbStore`). Exclusive with `dir`, `durability`, `maxBytes`.
   * @default undefined (then `dir` is required)
   */
  store?: OutboxStore;
  /**
   * With `dir`: `'fsync'` resolves `enqueue()` once the record is fsynced (survives power loss); `'write'`
   * once it is written (survives a killed process, not a power loss).
   * @default 'fsync'
   */
  durability?: 'fsync' | 'write';
  /**
   * With `dir`: bytes the outbox may occupy on disk; beyond it `enqueue()` rejects with `ERR_OUTBOX_FULL`.
   * @default the FileStore's default
   */
  maxBytes?: number;
  /**
   * Run the flusher in this process. `false` opens a producer-only outbox (another process, e.g. the CLI's
   * `flush`, delivers; `drain()` still delivers on demand).
   * @default true
   */
  autoFlush?: boolean;
  /**
   * Most requests in flight per endpoint URL. The adaptive limit (slow start after an outage, halved on
   * 429/502/503/504/timeouts) moves between 1 and this.
   * @default 16
   */
  concurrency?: number;
  /**
   * Most requests in flight in total, all endpoints together.
   * @default 64
   */
  globalConcurrency?: number;
  /**
   * Limits of your own per endpoint URL (a customer's receiver that takes 2 requests at a time, or 10 per
   * second): `(url) => ({ concurrency, ratePerSecond })`, or `undefined` for the defaults. Asked when the
   * outbox starts sending to a URL; the answer is kept for 10 minutes, and as long as the endpoint stays
   * busy. It must not throw (if it does, or returns invalid limits, the defaults apply for that time and
   * `'error'` is emitted).
   * @default undefined (every endpoint: `concurrency`, no rate limit)
   */
  endpointLimits?: (url: string) => EndpointLimits | undefined;
  /**
   * An endpoint that answers 410 Gone is disabled, as the Standard Webhooks spec asks: the event answered so
   * is a dead letter (`http-status`), and this outbox sends that URL nothing more; its other events, and
   * those enqueued for it later, become dead letters unsent (`endpoint-gone`), kept for `replay()`, until
   * `enableEndpoint(url)` or a restart. `'endpointGone'` tells you. `false`: a 410 is a
   * permanent failure of that one event, like a 400.
   * @default true
   */
  goneDisablesEndpoint?: boolean;
  /**
   * This outbox's name in its metrics: every instrument carries it as `webhook_outbox.name`. Give one to each
   * outbox when a process runs several, or their gauges cannot be told apart.
   * @default undefined (no such attribute)
   */
  name?: string;
}

/** One endpoint's own limits, from the `endpointLimits` option. */
export interface EndpointLimits {
  /**
   * Most requests in flight to this URL, 1 to 1024 (the adaptive limit moves between 1 and this).
   * @default the `concurrency` option
   */
  concurrency?: number;
  /**
   * Most requests started per second (a fraction for slower: 0.5 is one every 2 s), in bursts of up to a
   * second's worth (at least one).
   * @default no rate limit
   */
  ratePerSecond?: number;
}

/** Outbox options after validation, with every default filled in. */
export interface NormalizedOutboxOptions extends NormalizedSenderOptions {
  dir: string | undefined;
  store: OutboxStore | undefined;
  durability: 'fsync' | 'write';
  maxBytes: number | undefined;
  autoFlush: boolean;
  concurrency: number;
  globalConcurrency: number;
  endpointLimits: ((url: string) => EndpointLimits | undefined) | undefined;
  goneDisablesEndpoint: boolean;
  name: string | undefined;
}

/**
 * The outbox's schedule: it runs in the background, so it waits longer and gives up later than `send()`:
 * 0-1 s after the first failure, doubling up to 10 min, for up to 72 h, with no attempt limit; a
 * Retry-After is honoured up to 1 h.
 */
export const OUTBOX_RETRY_DEFAULTS: Readonly<NormalizedRetryOptions> = Object.freeze({
  baseDelayMs: 1_000,
  maxDelayMs: 600_000,
  maxAttempts: Infinity,
  maxAgeMs: 259_200_000,
  maxRetryAfterMs: 3_600_000,
});

const OUTBOX_OPTION_KEYS = ['dir', 'store', 'durability', 'maxBytes', 'autoFlush', 'concurrency', 'globalConcurrency', 'endpointLimits', 'goneDisablesEndpoint', 'name'];

/** Bounds of an endpoint's `ratePerSecond`: one request an hour, a million a second. */
const MIN_RATE_PER_SECOND = 1 / 3600;
const MAX_RATE_PER_SECOND = 1_000_000;

/** Validates what an `endpointLimits` function returned for `url`. Throws `InvalidOptionError`. */
export function checkEndpointLimits(value: unknown): EndpointLimits | undefined {
  if (value === undefined) return undefined;
  const option = 'endpointLimits';
  const limits = checkObject(value, option);
  checkKnownKeys(limits, ['concurrency', 'ratePerSecond'], `${option}().`);
  const checked: EndpointLimits = {};
  if (limits.concurrency !== undefined) checked.concurrency = checkInteger(limits.concurrency, `${option}().concurrency`, 0, { min: 1, max: 1024 });
  const rate = limits.ratePerSecond;
  if (rate !== undefined) {
    if (typeof rate !== 'number' || !(rate >= MIN_RATE_PER_SECOND && rate <= MAX_RATE_PER_SECOND)) {
      throw new InvalidOptionError(`${option}().ratePerSecond`, `expected a number from 1/3600 (one an hour) to ${MAX_RATE_PER_SECOND}, got ${describeValue(rate)}`);
    }
    checked.ratePerSecond = rate;
  }
  return checked;
}

/** Validates `Outbox.open()` options and fills in defaults. Throws `InvalidOptionError` naming the option. */
export function normalizeOutboxOptions(input: unknown): NormalizedOutboxOptions {
  const sender = normalizeSenderOptions(input, { retryDefaults: OUTBOX_RETRY_DEFAULTS, extraKeys: OUTBOX_OPTION_KEYS });
  const o = checkObject(input, 'options');
  if (o.retryBudget !== undefined) {
    throw new InvalidOptionError('retryBudget', "applies to createSender() only: the outbox's circuit breaker and slow start bound its retries");
  }
  const store = checkPort<OutboxStore>(o.store, 'store', ['open', 'append', 'claim', 'settle', 'deadLetters', 'replay', 'purge', 'stats', 'close']);
  if (o.dir !== undefined && (typeof o.dir !== 'string' || o.dir.length === 0)) {
    throw new InvalidOptionError('dir', `expected a non-empty directory path, got ${describeValue(o.dir)}`);
  }
  if (o.endpointLimits !== undefined && typeof o.endpointLimits !== 'function') {
    throw new InvalidOptionError('endpointLimits', `expected a function (url) => ({ concurrency, ratePerSecond }), got ${describeValue(o.endpointLimits)}`);
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 256)) {
    throw new InvalidOptionError('name', `expected a non-empty string of at most 256 characters, got ${describeValue(o.name)}`);
  }
  if (store === undefined && o.dir === undefined) {
    throw new InvalidOptionError('dir', 'give `dir` (a directory for the default FileStore) or `store`');
  }
  if (store !== undefined) {
    for (const key of ['dir', 'durability', 'maxBytes']) {
      if (o[key] !== undefined) throw new InvalidOptionError(key, 'applies to the default FileStore only; configure your `store` instead');
    }
  }
  return {
    ...sender,
    dir: o.dir as string | undefined,
    store,
    durability: checkEnum(o.durability, 'durability', 'fsync', ['fsync', 'write'] as const),
    maxBytes: o.maxBytes === undefined ? undefined : checkInteger(o.maxBytes, 'maxBytes', 0, { min: 1 }),
    autoFlush: checkBoolean(o.autoFlush, 'autoFlush', true),
    concurrency: checkInteger(o.concurrency, 'concurrency', 16, { min: 1, max: 1024 }),
    globalConcurrency: checkInteger(o.globalConcurrency, 'globalConcurrency', 64, { min: 1, max: 65_536 }),
    endpointLimits: o.endpointLimits as NormalizedOutboxOptions['endpointLimits'],
    goneDisablesEndpoint: checkBoolean(o.goneDisablesEndpoint, 'goneDisablesEndpoint', true),
    name: o.name as string | undefined,
  };
}
