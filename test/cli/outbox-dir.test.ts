import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as FsPromises from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';

// readdir fails as it does for a user who may not read the directory (root could read it anyway).
vi.mock('node:fs/promises', async (importOriginal) => {
  const original = await importOriginal<typeof FsPromises>();
  return {
    ...original,
    readdir: vi.fn(async () => {
      throw Object.assign(new Error('permission denied'), { code: 'EACCES' });
    }),
  };
});

const { assertOutboxDir } = await import('../../src/cli/commands/outbox-dir.js');

describe('assertOutboxDir', () => {
  it('reports a directory it may not read as an I/O failure naming the code, not as "holds no outbox"', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'webhook-outbox-unreadable-'));
    await expect(assertOutboxDir(dir)).rejects.toMatchObject({ exitCode: 1, message: expect.stringContaining('EACCES') });
  });
});
