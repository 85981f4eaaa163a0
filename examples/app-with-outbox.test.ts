import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './app-with-outbox.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('app-with-outbox example', () => {
  it('answers 202 while the receiver is down and delivers every order webhook once it recovers', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const result = await main();
    expect(result.delivered).toBe(3);
    expect(result.requests).toBeGreaterThan(3);
    const lines = log.mock.calls.map((call) => String(call[0]));
    expect(lines.filter((line) => /^POST \/orders \w+: 202 /.test(line))).toHaveLength(3);
    expect(lines.filter((line) => line.startsWith('delivered order-'))).toHaveLength(3);
  });
});
