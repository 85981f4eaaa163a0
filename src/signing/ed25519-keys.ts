/**
 * Asymmetric Standard Webhooks keys: ed25519, serialized as `whsk_<base64>` (the sender's secret key) and
 * `whpk_<base64>` (the public key receivers verify with). Signatures made with them are `v1a,` entries.
 *
 * What the base64 of a `whsk_` key holds is not fixed by the specification ("a standard ed25519 key pair"),
 * and the tools differ: Svix, which issues these keys, writes the 64-byte secret key of RFC 8032
 * implementations (the 32-byte seed, then the 32-byte public key: `serialize_secret_key` in
 * svix-webhooks `server/svix-server/src/core/types/mod.rs`), while the standard-webhooks Go library
 * (`libraries/go/webhook_asymmetric.go`) reads the 32-byte seed alone. Both layouts are accepted; keys made
 * here are the 64-byte one, and its public half must be the seed's public key (as Svix checks), so that a
 * damaged key is refused instead of signing for a public key nobody holds. A `whpk_` key is the 32-byte
 * public key in both.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';

/** Prefix of an ed25519 secret key. */
export const SECRET_KEY_PREFIX = 'whsk_';
/** Prefix of an ed25519 public key. */
export const PUBLIC_KEY_PREFIX = 'whpk_';

/** A fresh ed25519 key pair in Standard Webhooks form. */
export interface SigningKeyPair {
  /** `whsk_` + base64 of the 64-byte secret key (seed, then public key): the sender's `signingSecret`. */
  secretKey: string;
  /** `whpk_` + base64 of the 32-byte public key: what receivers pass to `verifyWebhook`. */
  publicKey: string;
}

/** A decoded key: the private half only for a `whsk_` key. */
interface Ed25519Key {
  privateKey: KeyObject | undefined;
  publicKey: KeyObject;
  publicBytes: Buffer;
}

// RFC 8410: the PKCS#8 (DER) form of an ed25519 private key is this fixed header followed by the seed.
const PKCS8_SEED_HEADER = Buffer.from('302e020100300506032b657004220420', 'hex');
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const SEED_BYTES = 32;
const PUBLIC_BYTES = 32;

// Importing a private key costs about 0.4 ms (OpenSSL's DER decoder), a public key some 10 us plus the
// curve check: keys are decoded once and remembered by their text, so that a `signingSecret` function and
// `verifyWebhook`, which get the text at every call, reuse the decoded key. Secret and public keys are
// remembered apart (verifying many tenants' keys does not push out the keys this process signs with), each
// up to this many, the least recently used dropped first: a sender with a key per customer reuses the
// keys of its 1,000 busiest customers, and memory stays bounded.
const REMEMBERED_KEYS = 1_000;
const rememberedSecret = new Map<string, Ed25519Key>();
const rememberedPublic = new Map<string, Ed25519Key>();

function recall(text: string): Ed25519Key | undefined {
  const keys = text.startsWith(SECRET_KEY_PREFIX) ? rememberedSecret : rememberedPublic;
  const key = keys.get(text);
  if (key !== undefined) {
    // Most recently used last.
    keys.delete(text);
    keys.set(text, key);
  }
  return key;
}

function remember(text: string, key: Ed25519Key): Ed25519Key {
  const keys = key.privateKey === undefined ? rememberedPublic : rememberedSecret;
  if (keys.size >= REMEMBERED_KEYS) keys.delete(keys.keys().next().value as string);
  keys.set(text, key);
  return key;
}

function rawPublicKey(publicKey: KeyObject): Buffer {
  return Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
}

// Curve25519 in Edwards form (RFC 8032): -x^2 + y^2 = 1 + d x^2 y^2 over the integers modulo P.
const P = 2n ** 255n - 19n;
const mod = (a: bigint): bigint => ((a % P) + P) % P;
function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  for (let b = mod(base), e = exponent; e > 0n; e >>= 1n, b = (b * b) % P) if ((e & 1n) === 1n) result = (result * b) % P;
  return result;
}
const inverse = (a: bigint): bigint => power(a, P - 2n);
const D = mod(-121665n * inverse(121666n));
const SQRT_M1 = power(2n, (P - 1n) / 4n);

/** The sum of two points, affine coordinates (the complete twisted Edwards addition law). */
function add([x1, y1]: readonly [bigint, bigint], [x2, y2]: readonly [bigint, bigint]): [bigint, bigint] {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + y1 * x2) * inverse(1n + t)), mod((y1 * y2 + x1 * x2) * inverse(1n - t))];
}

/**
 * Why 32 bytes are not a usable ed25519 public key, or `undefined`. Node imports any 32 bytes and
 * verifies against them; a point of small order (the identity, the all-zero placeholder) lets anyone
 * forge signatures that verify, and bytes off the curve never verify anything: both are refused when
 * the key is given, as RFC 8032 decoding and libsodium do.
 */
function pointProblem(bytes: Buffer): string | undefined {
  const sign = bytes[31] as number >> 7;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? (bytes[i] as number) & 0x7f : (bytes[i] as number));
  if (y >= P) return 'not a canonical point encoding';
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * power(v, 3n) * power(u * power(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x) !== u) {
    if (mod(v * x * x) !== mod(-u)) return 'not a point of the curve: a damaged key';
    x = mod(x * SQRT_M1);
  }
  if (x === 0n && sign === 1) return 'not a canonical point encoding';
  if ((x & 1n) !== BigInt(sign)) x = mod(-x);
  let point: [bigint, bigint] = [x, y];
  for (let i = 0; i < 3; i++) point = add(point, point);
  if (point[0] === 0n && point[1] === 1n) return 'a point of small order, with which anyone can forge signatures';
  return undefined;
}

/** The key `text` (`whsk_...` or `whpk_...`) decodes to, or why it does not (never quoting it). */
function decode(text: string): Ed25519Key | string {
  const known = recall(text);
  if (known !== undefined) return known;
  const secret = text.startsWith(SECRET_KEY_PREFIX);
  if (!secret && !text.startsWith(PUBLIC_KEY_PREFIX)) return `expected a '${SECRET_KEY_PREFIX}' or '${PUBLIC_KEY_PREFIX}' key (the value is not one)`;
  const expected = secret
    ? `expected '${SECRET_KEY_PREFIX}' followed by the base64 of an ed25519 secret key: 64 bytes (seed, then public key) or the 32-byte seed`
    : `expected '${PUBLIC_KEY_PREFIX}' followed by the base64 of a 32-byte ed25519 public key`;
  const encoded = text.slice(secret ? SECRET_KEY_PREFIX.length : PUBLIC_KEY_PREFIX.length);
  if (!BASE64.test(encoded) || encoded.length % 4 !== 0) return `${expected} (the value is not in that format)`;
  const bytes = Buffer.from(encoded, 'base64');
  if (!secret) {
    if (bytes.byteLength !== PUBLIC_BYTES) return `${expected} (it decodes to ${bytes.byteLength} bytes)`;
    const point = pointProblem(bytes);
    if (point !== undefined) return `${expected} (${point})`;
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' });
    return remember(text, { privateKey: undefined, publicKey, publicBytes: bytes });
  }
  if (bytes.byteLength !== SEED_BYTES && bytes.byteLength !== SEED_BYTES + PUBLIC_BYTES) return `${expected} (it decodes to ${bytes.byteLength} bytes)`;
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_SEED_HEADER, bytes.subarray(0, SEED_BYTES)]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  const publicBytes = rawPublicKey(publicKey);
  if (bytes.byteLength > SEED_BYTES && !publicBytes.equals(bytes.subarray(SEED_BYTES))) {
    return `${expected} (its last 32 bytes are not the public key of its first 32: a damaged or mixed-up key)`;
  }
  return remember(text, { privateKey, publicKey, publicBytes });
}

/** Why `key` (`whsk_...` or `whpk_...`) is not a usable ed25519 key, or `undefined`. Never quotes the key. */
export function ed25519KeyProblem(key: string): string | undefined {
  const result = decode(key);
  return typeof result === 'string' ? result : undefined;
}

function decoded(key: string, option: string): Ed25519Key {
  const result = decode(key);
  if (typeof result === 'string') throw new InvalidOptionError(option, result);
  return result;
}

/** The private key of a `whsk_` key. Throws `InvalidOptionError` (without quoting it) when malformed. */
export function ed25519PrivateKey(secretKey: string, option = 'signingSecret'): KeyObject {
  const { privateKey } = decoded(secretKey, option);
  if (privateKey === undefined) throw new InvalidOptionError(option, `a '${PUBLIC_KEY_PREFIX}' public key cannot sign`);
  return privateKey;
}

/** The public key of a `whpk_` key, or of a `whsk_` key's pair. Throws `InvalidOptionError` when malformed. */
export function ed25519PublicKey(key: string, option = 'signingSecret'): KeyObject {
  return decoded(key, option).publicKey;
}

/**
 * A new ed25519 key pair for asymmetric signatures (`v1a`): give the `secretKey` to the sender's
 * `signingSecret` and the `publicKey` to receivers, who cannot sign with it (nor forge a request).
 */
export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const publicBytes = rawPublicKey(publicKey);
  return {
    secretKey: `${SECRET_KEY_PREFIX}${Buffer.concat([seed, publicBytes]).toString('base64')}`,
    publicKey: `${PUBLIC_KEY_PREFIX}${publicBytes.toString('base64')}`,
  };
}

/**
 * The `whpk_` public key of a `whsk_` secret key (either layout), to hand to receivers. Throws
 * `ERR_INVALID_OPTION` (without quoting the key) when `secretKey` is not a valid `whsk_` key.
 */
export function signingPublicKey(secretKey: string): string {
  if (typeof secretKey !== 'string' || !secretKey.startsWith(SECRET_KEY_PREFIX)) {
    const got = typeof secretKey === 'string' ? 'the value is not one' : `got ${secretKey === null ? 'null' : typeof secretKey}`;
    throw new InvalidOptionError('secretKey', `expected a '${SECRET_KEY_PREFIX}' secret key (${got})`);
  }
  return `${PUBLIC_KEY_PREFIX}${decoded(secretKey, 'secretKey').publicBytes.toString('base64')}`;
}

/**
 * A `whsk_` key in both layouts (the 32-byte seed, and seed then public key), whichever it was given in:
 * what must never be echoed back, since either holds the seed. `[secretKey]` when it is not a valid key.
 */
export function secretKeyLayouts(secretKey: string): string[] {
  const key = decode(secretKey);
  if (typeof key === 'string' || key.privateKey === undefined) return [secretKey];
  const seed = Buffer.from(key.privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  return [`${SECRET_KEY_PREFIX}${seed.toString('base64')}`, `${SECRET_KEY_PREFIX}${Buffer.concat([seed, key.publicBytes]).toString('base64')}`];
}
