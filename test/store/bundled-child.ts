import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll } from 'vitest';

/**
 * A child-process fixture of test/store/fixtures/ (`name`.ts, which imports the TypeScript sources),
 * bundled into one .mjs that plain `node` runs: built before the calling file's tests, removed after.
 * Returns its path (known once the tests run).
 */
export function bundledChild(name: string): () => string {
  let dir: string | undefined;
  let path = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `${name}-bundle-`));
    path = join(dir, `${name}.mjs`);
    await build({
      entryPoints: [fileURLToPath(new URL(`./fixtures/${name}.ts`, import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: path,
      logLevel: 'silent',
    });
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  return () => path;
}
