import { expect, it, vi } from 'vitest';
import { main } from './basic-sender.js';

it('examples/basic-sender.ts delivers after two 500s with valid signatures', async () => {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  await main();
  const lines = log.mock.calls.map((c) => String(c[0]));
  log.mockRestore();
  expect(lines[0]).toMatch(/^delivered msg_\w+: HTTP 200 after 3 attempts$/);
  expect(lines[1]).toBe('signatures valid: true, true, true');
});
