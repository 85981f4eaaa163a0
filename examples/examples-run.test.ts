import { afterEach, describe, expect, it, vi } from 'vitest';
import { main as asymmetricMain } from './asymmetric-signatures.js';
import { main as undiciMain } from './custom-transport-undici.js';
import { main as multiTenantMain } from './multi-tenant-secrets.js';
import { main as receiverMain } from './receiver-verifying-signatures.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('examples run', () => {
  it('custom-transport-undici delivers through undici after a 503', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await undiciMain();
    expect(log.mock.calls[0]?.[0]).toMatch(/^delivered msg_\w+ with undici: HTTP 200 after 2 attempts$/);
  });

  it('receiver-verifying-signatures processes a duplicate once and refuses a bad signature', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await receiverMain();
    expect(log.mock.calls[0]?.[0]).toMatch(/^processed once: evt_1; impostor: .*401/);
  });

  it('asymmetric-signatures moves from whsec_ to whsk_ without a receiver refusing a request', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await asymmetricMain();
    expect(log.mock.calls[0]?.[0]).toMatch(/^legacy evt_1, switched evt_1, switched evt_2; whsk_ alone at the legacy receiver: .*401/);
  });

  it('multi-tenant-secrets signs each customer with its own secret, one of them rotating', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await multiTenantMain();
    expect(log.mock.calls[0]?.[0]).toBe('refused: ERR_INVALID_URL');
    expect(log.mock.calls[1]?.[0]).toBe('acme: acme-invoice-1, acme-invoice-2; globex: globex-invoice-1, globex-invoice-2; dead: 0');
  });
});
