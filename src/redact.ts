/**
 * Keeping credentials out of what a receiver echoes back: the response excerpts kept on errors, in
 * attempt histories and dead letters. A receiver may quote what we sent (a header, the URL, a signature)
 * or, misconfigured, the secret itself.
 */
import { isSensitiveHeader } from './message.js';
import { SECRET_KEY_PREFIX, secretKeyLayouts } from './signing/ed25519-keys.js';

/** Longest response-body excerpt kept on an `HttpStatusError`. */
export const EXCERPT_CHARS = 1024;

/** Prefixes of the signing secrets: an HMAC secret, an ed25519 secret key. */
const SECRET_PREFIXES = ['whsec_', SECRET_KEY_PREFIX];

/**
 * What to blank out of excerpts for signing secrets: each secret, and its key alone (the base64 after
 * `whsec_` or `whsk_`).
 */
export function secretRedactions(signingSecret: readonly string[] | undefined): string[] {
  return (signingSecret ?? []).flatMap((secret) => {
    const prefix = SECRET_PREFIXES.find((p) => secret.startsWith(p));
    // An ed25519 key in its other layout too (a receiver holding the seed form echoes that).
    const forms = prefix === SECRET_KEY_PREFIX ? secretKeyLayouts(secret) : [secret];
    return prefix === undefined ? forms : forms.flatMap((form) => [form, form.slice(prefix.length)]);
  });
}

/**
 * The values of a request's credential-like headers: what must never be echoed into an excerpt. A value
 * with an auth scheme (`Bearer tok_...`, `Basic dXNlcjpwYXNz`) also without it, since receivers quote the
 * credential alone.
 */
export function sensitiveValues(headers: Record<string, string>): string[] {
  return Object.entries(headers)
    .filter(([name, value]) => isSensitiveHeader(name) && value.length >= 4)
    .flatMap(([, value]) => {
      const credential = /^[A-Za-z][\w-]*\s+(\S{4,})$/.exec(value)?.[1];
      return credential === undefined ? [value] : [value, credential];
    });
}

/**
 * The credentials a URL carries: user info, and query values long enough to be tokens (`?format=json` is
 * not). The CLI shows both as `***`; an echoing receiver (a 404 page quoting the path) must not leak them.
 */
export function urlSecrets(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  // The HTTP client sends user info as `authorization: Basic base64(user:password)`, which a receiver may echo.
  const basic = user === '' && password === '' ? [] : [Buffer.from(`${user}:${password}`).toString('base64')];
  return [user, password, ...basic, ...parsed.searchParams.values()].filter((value) => value.length >= 8);
}

/** Shortest start of a secret that is blanked where an excerpt ends (the transport may have cut it there). */
const MIN_CUT_SECRET = 8;

/**
 * The forms a secret takes in a receiver's answer: as sent, JSON-escaped (`\/`, as PHP writes it),
 * percent-encoded (a form body or an echoed URL), and for base64 also unpadded and base64url.
 */
function secretForms(secret: string): string[] {
  const unpadded = secret.replace(/=+$/, '');
  const forms = new Set([
    secret,
    JSON.stringify(secret).slice(1, -1),
    secret.replaceAll('/', '\\/'),
    encodeURIComponent(secret),
    unpadded,
    unpadded.replaceAll('+', '-').replaceAll('/', '_'),
  ]);
  // Longest first, so that a form is replaced before a shorter one inside it.
  return [...forms].filter((form) => form.length > 0).sort((a, b) => b.length - a.length);
}

// The signing wrapper adds the signature after this module builds the headers, so an echoed signature
// is recognised by its shape instead.
const SIGNATURE = /\bv1a?,[A-Za-z0-9+/]{16,}={0,2}/g;

/**
 * `text` cut to `max` characters, with every occurrence of each secret (in the forms of
 * {@link secretForms}) and anything shaped like a Standard Webhooks signature replaced by `[redacted]`;
 * text ending in the start of a secret (an excerpt the transport cut through it) loses that start too.
 */
export function redactExcerpt(text: string, secrets: readonly string[], max: number = EXCERPT_CHARS): string {
  let out = text.replace(SIGNATURE, '[redacted]');
  const forms = secrets.filter((secret) => secret.length > 0).flatMap(secretForms);
  for (const form of forms) out = out.split(form).join('[redacted]');
  for (const form of forms) {
    for (let length = Math.min(form.length - 1, out.length); length >= MIN_CUT_SECRET; length--) {
      if (out.endsWith(form.slice(0, length))) {
        out = `${out.slice(0, out.length - length)}[redacted]`;
        break;
      }
    }
  }
  return out.length > max ? `${out.slice(0, max)}...` : out;
}
