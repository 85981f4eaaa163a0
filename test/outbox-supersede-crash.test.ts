import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { builtPackage } from './cli/run-cli.js';
import { waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

/** Supersede across kill -9: the rule is judged again after the restart, nothing is lost and no old state is sent. */
const tempDir = tempDirs('outbox-supersede-crash');
// The child needs runnable JS: the package built with its own tsup config into a private directory.
const built = builtPackage();

const KEYS = 5;

/** `k<key>-<n>` as [key, n]. */
function parse(id: string | undefined): [number, number] {
  const match = /^k(\d+)-(\d+)$/.exec(id ?? '');
  if (match === null) throw new Error(`not an update id: ${String(id)}`);
  return [Number(match[1]), Number(match[2])];
}

describe('Superseding events after kill -9', () => {
  it('sends each key only its latest state after a restart, and loses no acknowledged update', async () => {
    // Latency keeps a request of each key in flight while updates pile up behind it.
    const receiver = await startFlakyReceiver({ latencyMs: 20 });
    const dir = await tempDir();
    const entry = built.indexUrl;
    const script = [
      `const { Outbox } = await import(${JSON.stringify(entry)});`,
      `const outbox = await Outbox.open({ dir: ${JSON.stringify(dir)}, url: ${JSON.stringify(receiver.url)}, retry: { baseDelayMs: 5, maxDelayMs: 100 } });`,
      `outbox.on('superseded', (event) => process.stdout.write('superseded ' + event.id + '\\n'));`,
      `for (let n = 0; n < 1000000; n++) {`,
      `  const group = Array.from({ length: ${KEYS} }, (_, k) => outbox.enqueue({ id: 'k' + k + '-' + n, body: { k, n }, orderingKey: 'key-' + k, supersede: true }));`,
      `  const results = await Promise.all(group);`,
      `  process.stdout.write(results.map(({ id }) => 'ack ' + id + '\\n').join(''));`,
      // A burst (a backlog to supersede), then updates at a pace the receiver keeps up with.
      `  if (n >= 100) await new Promise((resolve) => setTimeout(resolve, 10));`,
      `}`,
    ].join('\n');
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      const acked = new Set<string>();
      let superseded = 0;
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const lines = stdout.split('\n');
        stdout = lines.pop() ?? '';
        for (const line of lines) {
          if (line.startsWith('ack ')) acked.add(line.slice(4));
          if (line.startsWith('superseded ')) superseded++;
        }
      });
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child?.on('exit', (_code, signal) => resolve(signal)));
      await waitFor(() => acked.size >= 500 && superseded >= 50 && receiver.deliveredIds().size >= KEYS, 20_000, `acks and supersedes (stderr: ${stderr})`);
      // The receiver slows down: each key's request stays out while its updates pile up behind it.
      receiver.setScript(() => ({ delayMs: 1_000 }));
      const before = acked.size;
      await waitFor(() => acked.size >= before + 20 * KEYS && receiver.inProgress > 0, 10_000, 'a backlog behind requests in flight');
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const requestsAtKill = receiver.requests.length;
      receiver.setScript([]);

      const outbox = await Outbox.open({ dir, url: receiver.url, retry: { baseDelayMs: 5, maxDelayMs: 100 }, autoFlush: false });
      const pendingAtRestart = outbox.stats().pending;
      const supersededAfter = new Set<string>();
      outbox.on('superseded', (event) => supersededAfter.add(event.id));
      try {
        await outbox.drain({ timeoutMs: 20_000 });
        expect(outbox.stats()).toMatchObject({ pending: 0, dead: 0, corrupt: 0 });
      } finally {
        await outbox.close();
      }

      const latestAcked = new Map<number, number>();
      for (const id of acked) {
        const [k, n] = parse(id);
        latestAcked.set(k, Math.max(latestAcked.get(k) ?? -1, n));
      }
      // After the restart each key got at most one request, its latest update: every other was superseded.
      const after = receiver.requests.slice(requestsAtKill).map((r) => parse(r.id));
      expect(new Set(after.map(([k]) => k)).size).toBe(after.length);
      for (const [k, n] of after) expect(n, `key ${k}`).toBeGreaterThanOrEqual(latestAcked.get(k) as number);
      expect(receiver.requests.slice(requestsAtKill).every((r) => r.status === 200)).toBe(true);
      expect(pendingAtRestart).toBeGreaterThan(2 * KEYS);
      // Every event pending at the restart was either that one request of its key or superseded.
      expect(supersededAfter.size + after.length).toBe(pendingAtRestart);
      // Per key, the delivered states only move forward (a repeat is the same id, after the restart).
      const deliveredN = new Map<number, number[]>();
      for (const r of receiver.requests) {
        if (r.status !== 200) continue;
        const [k, n] = parse(r.id);
        deliveredN.set(k, [...(deliveredN.get(k) ?? []), n]);
      }
      for (const [k, ns] of deliveredN) expect([...ns].sort((a, b) => a - b), `key ${k}`).toEqual(ns);
      // Each key's latest acknowledged state (or a later one) got through.
      for (const [k, n] of latestAcked) expect(deliveredN.get(k)?.at(-1), `key ${k}`).toBeGreaterThanOrEqual(n);
      // Nothing acknowledged is lost: delivered, or a later state of its key was delivered instead.
      const delivered = receiver.deliveredIds();
      const lost = [...acked].filter((id) => {
        const [k, n] = parse(id);
        return !delivered.has(id) && !(deliveredN.get(k) ?? []).some((m) => m > n);
      });
      expect(lost).toEqual([]);
      // Those judged after the restart were never answered 2xx.
      for (const id of supersededAfter) expect(delivered.has(id), id).toBe(false);
    } finally {
      if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await receiver.close();
    }
  }, 60_000);
});
