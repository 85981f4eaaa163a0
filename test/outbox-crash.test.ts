import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { builtPackage } from './cli/run-cli.js';
import { newSecret, waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

const tempDir = tempDirs('outbox-crash');
const fixture = join(import.meta.dirname, 'fixtures', 'outbox-crash-app.mjs');
// The child needs runnable JS: the package built with its own tsup config into a private directory.
const built = builtPackage();

/** Runs `script` as an ES module in a child process until it exits on its own; its exit code and stdout. */
async function runModule(script: string): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  return { code, stdout };
}

const CONCURRENCY = 8;

describe('Outbox process lifetime', () => {
  it('a running flusher with retries scheduled does not keep the process alive by itself', async () => {
    const receiver = await startFlakyReceiver({ script: () => 503 });
    const dir = await tempDir();
    const entry = built.indexUrl;
    const script = [
      `const { Outbox } = await import(${JSON.stringify(entry)});`,
      `const outbox = await Outbox.open({ dir: ${JSON.stringify(dir)}, url: ${JSON.stringify(receiver.url)}, retry: { baseDelayMs: 60000 } });`,
      `outbox.on('retry', (event) => console.log('retry ' + event.id));`,
      `await outbox.enqueue({ id: 'evt-1', body: 1 });`,
    ].join('\n');
    try {
      const { code, stdout } = await runModule(script);
      // It exited on its own with the event's retry scheduled a minute ahead, and the event stayed on disk.
      expect(code).toBe(0);
      expect(stdout).toContain('retry evt-1');
      expect(receiver.countById('evt-1')).toBe(1);
      const outbox = await Outbox.open({ dir, url: receiver.url, autoFlush: false });
      expect(outbox.stats().pending).toBe(1);
      await outbox.close();
    } finally {
      await receiver.close();
    }
  });
});

describe('Sender process lifetime', () => {
  it('a script awaiting send() stays alive through its backoff and gets the answer', async () => {
    let requests = 0;
    const receiver = await startFlakyReceiver({ script: () => (++requests <= 2 ? 500 : 200) });
    const entry = built.indexUrl;
    const script = [
      `const { createSender } = await import(${JSON.stringify(entry)});`,
      `const sender = createSender({ retry: { baseDelayMs: 300, maxDelayMs: 300 } });`,
      `const result = await sender.send({ url: ${JSON.stringify(receiver.url)}, body: 1 });`,
      `console.log('sent ' + result.status + ' after ' + result.attempts);`,
      `await sender.close();`,
    ].join('\n');
    try {
      const { code, stdout } = await runModule(script);
      // Exit code 13 (an unsettled top-level await) with nothing printed, when only unref'd timers waited.
      expect({ code, stdout: stdout.trim() }).toEqual({ code: 0, stdout: 'sent 200 after 3' });
      expect(receiver.requests).toHaveLength(3);
    } finally {
      await receiver.close();
    }
  });
});

describe('Outbox after kill -9', () => {
  it('delivers everything acknowledged after a restart; duplicates only for requests in flight, same webhook-id', async () => {
    const secret = newSecret();
    // Latency keeps requests in flight at the moment of the kill.
    const receiver = await startFlakyReceiver({ secret, latencyMs: 20 });
    const dir = await tempDir();
    const entry = built.indexUrl;
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [fixture, entry, dir, receiver.url, secret], { stdio: ['ignore', 'pipe', 'pipe'] });
      const acked = new Set<string>();
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const lines = stdout.split('\n');
        stdout = lines.pop() ?? '';
        for (const line of lines) if (line.startsWith('ack ')) acked.add(line.slice(4));
      });
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child?.on('exit', (_code, signal) => resolve(signal)));

      await waitFor(() => acked.size >= 500 && receiver.deliveredIds().size >= 100, 20_000, `acks (stderr: ${stderr})`);
      // While the app lives, it owns the directory.
      await expect(Outbox.open({ dir, url: receiver.url })).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED', pid: child.pid });
      await waitFor(() => receiver.inProgress > 0, 5_000, 'a request in flight');
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const requestsAtKill = receiver.requests.length;

      const outbox = await Outbox.open({ dir, url: receiver.url, signingSecret: secret, retry: { baseDelayMs: 5, maxDelayMs: 100 } });
      try {
        await outbox.drain({ timeoutMs: 20_000 });
        expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0, corrupt: 0 });
      } finally {
        await outbox.close();
      }

      const delivered = receiver.deliveredIds();
      const missing = [...acked].filter((id) => !delivered.has(id));
      expect(missing).toEqual([]);
      // Every request is an event the app made, with its own body and a valid signature.
      for (const request of receiver.requests) {
        expect(request.signatureValid).toBe(true);
        expect(request.id).toMatch(/^evt-\d+$/);
        expect(JSON.parse(request.body)).toEqual({ n: Number(request.id?.slice(4)) });
      }
      // Duplicates: only events whose request was in flight or answered with its outcome not yet on disk at
      // the kill: fewer than twice the concurrency (requests in flight stay within it, and so do answers
      // waiting for their group commit).
      const counts = new Map<string, number>();
      for (const request of receiver.requests) counts.set(request.id as string, (counts.get(request.id as string) ?? 0) + 1);
      const duplicated = [...counts].filter(([, count]) => count > 1);
      expect(duplicated.every(([, count]) => count === 2)).toBe(true);
      expect(duplicated.length).toBeLessThan(2 * CONCURRENCY);
      // The duplicates' first copies were all sent before the kill, the second after the restart.
      for (const [id] of duplicated) {
        const indexes = receiver.requests.flatMap((r, i) => (r.id === id ? [i] : []));
        expect(indexes[0]).toBeLessThan(requestsAtKill);
        expect(indexes[1]).toBeGreaterThanOrEqual(requestsAtKill);
      }
    } finally {
      if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await receiver.close();
    }
  });
});

describe('Outbox lock across containers', () => {
  /**
   * Starts a process in its own pid namespace (as pid 1, like a container's app), with its own host name
   * when `host` is given, that opens `dir`, enqueues one event, prints `open` and holds the directory until
   * its stdin ends. `--kill-child` takes it down with `unshare` when that is killed.
   */
  async function containerHolding(dir: string, host?: string): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
    const entry = built.indexUrl;
    const script = [
      `const { Outbox } = await import(${JSON.stringify(entry)});`,
      `const outbox = await Outbox.open({ dir: ${JSON.stringify(dir)}, url: 'http://127.0.0.1:9/hook', autoFlush: false });`,
      `await outbox.enqueue({ body: 1 });`,
      `console.log('open');`,
      'process.stdin.resume();',
      `process.stdin.on('end', async () => { await outbox.close(); process.exit(0); });`,
    ].join('\n');
    const shell = `${host === undefined ? '' : `hostname ${host} && `}exec "$0" --input-type=module -e "$1"`;
    const namespaces = ['--user', '--map-root-user', '--pid', '--fork', '--mount-proc', '--kill-child', ...(host === undefined ? [] : ['--uts'])];
    const child = spawn('unshare', [...namespaces, 'sh', '-c', shell, process.execPath, script], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitFor(() => stdout.includes('open') || child.exitCode !== null, 10_000, 'the contained process to open the outbox');
    if (!stdout.includes('open')) throw new Error(`the contained process did not open the outbox: ${stderr}`);
    return { child, exited };
  }

  it('a sibling container (its own pid namespace and host name) keeps its lock while it runs', async () => {
    const dir = await tempDir();
    const { child, exited } = await containerHolding(dir, 'sibling');
    try {
      // Its pid is 1 in its namespace; here pid 1 is this machine's init, alive: not a pid to check.
      await expect(Outbox.open({ dir, url: 'http://127.0.0.1:9/hook' })).rejects.toMatchObject({ code: 'ERR_OUTBOX_LOCKED', pid: 1, host: 'sibling' });
      child.stdin?.end();
      expect(await exited).toBe(0);
      const outbox = await Outbox.open({ dir, url: 'http://127.0.0.1:9/hook', autoFlush: false });
      expect(outbox.stats().pending).toBe(1);
      await outbox.close();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('a container restarted after kill -9 (same host name, new pid namespace) takes its lock over at once', async () => {
    const dir = await tempDir();
    const { child, exited } = await containerHolding(dir);
    child.kill('SIGKILL');
    await exited;
    const outbox = await Outbox.open({ dir, url: 'http://127.0.0.1:9/hook', autoFlush: false });
    expect(outbox.stats().pending).toBe(1);
    await outbox.close();
  });
});
