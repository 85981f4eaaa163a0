import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtPackage, runCli } from './run-cli.js';

const built = builtPackage();
const PASSWORD = 'pr0xy-pa55word';
const BASIC = Buffer.from(`egress:${PASSWORD}`).toString('base64');
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'proxy-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CLI --proxy', () => {
  it.each([
    ['status', '--dir', 'DIR', `--proxy=http://egress:${PASSWORD}@127.0.0.1:3128`],
    ['send', 'http://127.0.0.1:9/hook', '--data', '{}', '--dir', 'DIR', `--proxi=http://egress:${PASSWORD}@127.0.0.1:3128`],
  ])('never prints the proxy password, even in commander\'s unknown-option error (%s)', async (...args) => {
    const result = await runCli(built.cli, args.map((a) => (a === 'DIR' ? join(dir, 'outbox') : a)));
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
    expect(result.stdout + result.stderr).not.toContain(BASIC);
  });

  it('says "not shown" once for a --proxy that is not a URL', async () => {
    const result = await runCli(built.cli, ['flush', '--dir', join(dir, 'outbox'), '--proxy', `%%egress:${PASSWORD}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).not.toContain(PASSWORD);
    expect(result.stderr.match(/not shown/g)).toHaveLength(1);
  });

  it('an empty WEBHOOK_OUTBOX_PROXY means no proxy, as an empty WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES or HTTPS_PROXY is ignored', async () => {
    const control = await runCli(built.cli, ['flush', '--dir', join(dir, 'outbox')], { env: { WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES: '' } });
    const result = await runCli(built.cli, ['flush', '--dir', join(dir, 'outbox')], { env: { WEBHOOK_OUTBOX_PROXY: '' } });
    // Both should fail the same way (no outbox directory), not the proxy one as a usage error.
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: control.code, stderr: control.stderr });
  });
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
