import { describe, expect, it } from 'vitest';
import { pointInTime } from '../../src/cli/parse.js';

describe('pointInTime (--since, --until)', () => {
  it('reads dates and date-times, UTC unless they name a zone, and times ago', () => {
    expect(pointInTime('2026-11-24')).toBe(Date.UTC(2026, 10, 24));
    expect(pointInTime('2026-11-24T18:00')).toBe(Date.UTC(2026, 10, 24, 18));
    expect(pointInTime('2026-11-24 18:00:00.5Z')).toBe(Date.UTC(2026, 10, 24, 18, 0, 0, 500));
    expect(pointInTime('2026-11-24T19:00+01:00')).toBe(Date.UTC(2026, 10, 24, 18));
    const before = Date.now();
    const ago = pointInTime('7d');
    expect(ago).toBeGreaterThanOrEqual(before - 7 * 86_400_000);
    expect(ago).toBeLessThanOrEqual(Date.now() - 7 * 86_400_000);
  });

  it('refuses days that do not exist, times before 1970 and anything else', () => {
    for (const value of ['2026-02-30', '2026-13-01', '2026-11-24T25:00', '1969-12-31', '99999999999999d', 'yesterday', '7', '']) {
      expect(() => pointInTime(value), value).toThrow(/expected a date/);
    }
  });
});
