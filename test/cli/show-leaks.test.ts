import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { FakeClock } from '../../src/clock.js';
import { Outbox } from '../../src/outbox.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../../src/testing/flaky-receiver.js';

let dir: string | undefined;
let receiver: FlakyReceiver | undefined;
afterEach(async () => {
  await receiver?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<string> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  await runCli(args, { stdout, stderr: new PassThrough(), entry: 'unused' });
  return out;
}

describe('CLI show <id>: credentials', () => {
  it('does not print the bearer token of an Authorization header that the receiver quotes without its scheme', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rev-show-leak-'));
    const token = 'tok_live_9f8e7d6c5b4a';
    receiver = await startFlakyReceiver({ script: [{ status: 401, body: `{"error":"invalid token ${token}"}` }] });
    const outbox = await Outbox.open({ dir: join(dir, 'outbox'), clock: new FakeClock(Date.now()), retry: { maxAttempts: 1 }, headers: { authorization: `Bearer ${token}` } });
    const dead = new Promise<void>((resolve) => outbox.once('dead', () => resolve()));
    const url = new URL(receiver.url);
    url.username = 'admin';
    url.password = 'hunter2hunter2';
    url.search = '?key=k3y_abcdefgh';
    await outbox.enqueue({ url: url.toString(), body: { hello: 1 }, id: 'evt_1' });
    await dead;
    await outbox.close();
    const text = await cli(['show', 'evt_1', '--dir', join(dir, 'outbox')]);
    const json = await cli(['show', 'evt_1', '--dir', join(dir, 'outbox'), '--json']);
    expect(text).toContain('HTTP 401');
    for (const secret of ['hunter2hunter2', 'k3y_abcdefgh']) {
      expect(text).not.toContain(secret);
      expect(json).not.toContain(secret);
    }
    expect(text).not.toContain(token);
    expect(json).not.toContain(token);
  });

  it('does not print URL user info that the receiver quotes back as the Basic Authorization header got made of it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rev-show-leak-'));
    receiver = await startFlakyReceiver({ script: (req) => ({ status: 403, body: `denied for ${String(req.headers.authorization)}` }) });
    const outbox = await Outbox.open({ dir: join(dir, 'outbox'), clock: new FakeClock(Date.now()), retry: { maxAttempts: 1 } });
    const dead = new Promise<void>((resolve) => outbox.once('dead', () => resolve()));
    const url = new URL(receiver.url);
    url.username = 'admin';
    url.password = 'hunter2hunter2';
    await outbox.enqueue({ url: url.toString(), body: { hello: 1 }, id: 'evt_2' });
    await dead;
    await outbox.close();
    const text = await cli(['show', 'evt_2', '--dir', join(dir, 'outbox')]);
    expect(text).toContain('HTTP 403');
    expect(text).not.toContain(Buffer.from('admin:hunter2hunter2').toString('base64'));
  });
});
