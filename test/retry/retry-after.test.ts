import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../src/retry/retry-after.js';

const NOW = Date.parse('2025-03-01T12:00:00Z');

describe('parseRetryAfter', () => {
  it('reads delay-seconds as milliseconds', () => {
    expect(parseRetryAfter('0', NOW)).toBe(0);
    expect(parseRetryAfter('1', NOW)).toBe(1_000);
    expect(parseRetryAfter(' 120 ', NOW)).toBe(120_000);
    fc.assert(fc.property(fc.nat({ max: 10_000_000 }), (s) => parseRetryAfter(String(s), NOW) === s * 1000));
  });

  it('reads every HTTP-date form relative to now, a past date as 0', () => {
    expect(parseRetryAfter('Sat, 01 Mar 2025 12:00:30 GMT', NOW)).toBe(30_000);
    expect(parseRetryAfter('Saturday, 01-Mar-25 12:01:00 GMT', NOW)).toBe(60_000);
    expect(parseRetryAfter('Sat Mar  1 12:00:05 2025', NOW)).toBe(5_000);
    expect(parseRetryAfter('Fri, 31 Dec 1999 23:59:59 GMT', NOW)).toBe(0);
  });

  it('reads every HTTP-date form as UTC, whatever the local time zone', () => {
    const tz = process.env.TZ;
    try {
      for (const zone of ['America/New_York', 'Asia/Tokyo']) {
        process.env.TZ = zone;
        expect(parseRetryAfter('Sat Mar  1 12:00:05 2025', NOW)).toBe(5_000);
        expect(parseRetryAfter('Sat, 01 Mar 2025 12:00:30 GMT', NOW)).toBe(30_000);
      }
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('returns undefined for absent or garbage values, never a negative number', () => {
    for (const bad of [undefined, '', 'soon', '-5', '1.5', '1e3', '0x10', 'Sat, 99 Foo 2025', 'Sat, 01 Mar 2025']) {
      expect(parseRetryAfter(bad, NOW)).toBeUndefined();
    }
    fc.assert(
      fc.property(fc.string(), (s) => {
        const r = parseRetryAfter(s, NOW);
        return r === undefined || (Number.isFinite(r) && r >= 0);
      }),
    );
  });
});
