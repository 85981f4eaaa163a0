import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtPackage, runCli } from './run-cli.js';

const built = builtPackage();
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'proxy-cli-scrub-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the CLI never echoes a proxy password from argv', () => {
  it.each([
    ['single-dash typo -proxy=', ['send', 'http://127.0.0.1:9/hook', '--data', '{}', '--dir', 'DIR', '-proxy=http://egress:s3cretpass@127.0.0.1:3128'], 's3cretpass'],
    ["a password with a ' (legal in user info)", ['send', 'http://127.0.0.1:9/hook', '--data', '{}', '--dir', 'DIR', "--proxi=http://egress:s3cret'pass@127.0.0.1:3128"], 'pass@'],
  ])('%s', async (_name, args, secret) => {
    const result = await runCli(built.cli, args.map((a) => (a === 'DIR' ? join(dir, 'outbox') : a)));
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).not.toContain(secret);
  });

  it('keeps help and ordinary errors intact (control)', async () => {
    const result = await runCli(built.cli, ['send', '--help']);
    expect(result.stdout).toContain('--proxy <url>');
    const unknown = await runCli(built.cli, ['send', 'http://127.0.0.1:9/hook', '--data', '{}', '--proxi', 'http://egress:s3cretpass@127.0.0.1:3128']);
    expect(unknown.stderr).toContain("unknown option '--proxi'");
    expect(unknown.stderr).not.toContain('s3cretpass');
  });
});
