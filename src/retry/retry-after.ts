/**
 * Parsing of the `Retry-After` response header (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date.
 */

const DELAY_SECONDS = /^\d+$/;
// Every HTTP-date form (IMF-fixdate, RFC 850, asctime) has a weekday or month name and an hh:mm:ss time.
const HTTP_DATE = /^[A-Za-z]{3}.*\d{1,2}:\d{2}:\d{2}/;

/**
 * Milliseconds the receiver asked us to wait, or `undefined` when the header is absent or unparseable.
 * A date in the past gives 0. `now` is the current time in epoch milliseconds (from the injected clock).
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (DELAY_SECONDS.test(trimmed)) {
    return Math.min(Number.MAX_SAFE_INTEGER, Number(trimmed) * 1000);
  }
  if (!HTTP_DATE.test(trimmed)) return undefined;
  // HTTP-dates are UTC; the asctime form does not say so, and Date.parse would read it in local time.
  const at = Date.parse(/ GMT$/i.test(trimmed) ? trimmed : `${trimmed} GMT`);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
