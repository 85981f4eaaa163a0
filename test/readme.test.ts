import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';

const root = new URL('../', import.meta.url);
let dir: string | undefined;
const cwd = process.cwd();

afterEach(async () => {
  process.chdir(cwd);
  vi.restoreAllMocks();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

it("runs the README's snippet as written and it delivers after two 500s", async () => {
  const readme = await readFile(new URL('README.md', root), 'utf8');
  const snippet = /## Use it\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(snippet).toContain("from 'webhook-outbox'");
  dir = await mkdtemp(join(tmpdir(), 'readme-'));
  // The module lives in the repo so that the package name resolves like it does for a user; it runs in a
  // temporary working directory so that its `.outbox` lands there.
  const file = new URL(`test/.readme-snippet-${process.pid}.ts`, root);
  await writeFile(file, snippet ?? '');
  process.chdir(dir);
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    await import(file.href);
  } finally {
    await rm(file, { force: true });
  }
  const lines = log.mock.calls.map((call) => String(call[0]));
  expect(lines.filter((line) => line.startsWith('retrying '))).toHaveLength(2);
  expect(lines.at(-1)).toMatch(/^msg_\w+: the receiver saw 3 attempts, the last one answered 200$/);
});
