import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

/** What one run of the CLI produced. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Builds the CLI with the package's own tsup config into a private directory under node_modules/.cache
 * (so it resolves the installed dependencies and never races with `dist/`), and returns how to run it.
 */
async function buildCli(): Promise<{ entry: string; cleanup(): Promise<void> }> {
  const outDir = join(root, 'node_modules', '.cache', 'webhook-outbox-cli-test', `${process.pid}-${Date.now()}`);
  await mkdir(outDir, { recursive: true });
  await promisify(execFile)(process.execPath, [join(root, 'node_modules', 'tsup', 'dist', 'cli-default.js'), '--silent', '--no-dts', '--out-dir', outDir], {
    cwd: root,
  });
  return { entry: join(outDir, 'cli', 'main.js'), cleanup: () => rm(outDir, { recursive: true, force: true }) };
}

/**
 * The package built once for the calling test file (beforeAll, removed afterAll), for child processes: the
 * CLI entry, and the URL of the library's entry to `import()` from a script.
 */
export function builtPackage(): { readonly cli: string; readonly indexUrl: string } {
  let built: Awaited<ReturnType<typeof buildCli>> | undefined;
  beforeAll(async () => {
    built = await buildCli();
  }, 60_000);
  afterAll(async () => {
    await built?.cleanup();
  });
  const entry = (): string => {
    if (built === undefined) throw new Error('the package is built in beforeAll: use it inside a test');
    return built.entry;
  };
  return {
    get cli() {
      return entry();
    },
    get indexUrl() {
      return pathToFileURL(join(entry(), '..', '..', 'index.js')).href;
    },
  };
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const names = ['WEBHOOK_OUTBOX_SECRET', 'WEBHOOK_OUTBOX_DIR', 'WEBHOOK_OUTBOX_POSTGRES', 'WEBHOOK_OUTBOX_TABLE', 'WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES', 'WEBHOOK_OUTBOX_PROXY', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'];
  for (const name of names) if (!(name in extra)) delete env[name];
  return env;
}

/** Runs the built CLI to completion. */
export function runCli(entry: string, args: readonly string[], options: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [entry, ...args], {
      cwd: options.cwd ?? root,
      env: cleanEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Starts the built CLI and returns the child without waiting. */
export function startCli(entry: string, args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [entry, ...args], {
    cwd: root,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
