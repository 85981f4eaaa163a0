import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { bundledChild } from './bundled-child.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('file-kill');
const child = bundledChild('append-child');

/** Runs the child until `killAfterMs` after it is ready, SIGKILLs it, and returns what it acknowledged. */
function runAndKill(
  dir: string,
  prefix: string,
  durability: string,
  killAfterMs: number,
): Promise<{ acked: Set<string>; claimed: Set<string>; done: Set<string>; held: Set<string> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child(), dir, prefix, durability], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Set<string>();
    const done = new Set<string>();
    const claimed = new Set<string>();
    const held = new Set<string>();
    let buffer = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
        else if (line.startsWith('ack ')) acked.add(line.slice(4));
        else if (line.startsWith('claim ')) claimed.add(line.slice(6));
        else if (line.startsWith('done ')) done.add(line.slice(5));
        else if (line.startsWith('hold ')) held.add(line.slice(5));
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const safety = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.on('error', reject);
    // 'close', not 'exit': the lines printed just before the kill may still be in the pipe at 'exit'.
    proc.on('close', (_code, signal) => {
      clearTimeout(timer);
      clearTimeout(safety);
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own: ${stderr}`));
      else resolve({ acked, claimed, done, held });
    });
  });
}

describe('FileStore survives kill -9', () => {
  it('after every SIGKILL, reopening returns each acknowledged id exactly once, unless its delivery was acknowledged', async () => {
    const dir = await newDir();
    const everAcked = new Set<string>();
    const everDone = new Set<string>();
    const everClaimed = new Set<string>();
    let everHeld = 0;
    const started = Date.now();
    let rounds = 0;
    for (; rounds < 24 && Date.now() - started < 60_000; rounds++) {
      const durability = rounds % 3 === 2 ? 'write' : 'fsync';
      const { acked, claimed, done, held } = await runAndKill(dir, `r${rounds}`, durability, 20 + Math.floor(Math.random() * 250));
      everHeld += held.size;
      for (const id of acked) everAcked.add(id);
      for (const id of done) everDone.add(id);
      for (const id of claimed) everClaimed.add(id);
      const store = new FileStore({ dir });
      await store.open();
      const { events } = await store.claim({ limit: 1_000_000, now: Number.MAX_SAFE_INTEGER });
      const pending = events.map((e) => e.id);
      expect(new Set(pending).size).toBe(pending.length);
      const pendingSet = new Set(pending);
      for (const id of everAcked) {
        if (everDone.has(id)) expect(pendingSet.has(id), `${id} was delivered but came back`).toBe(false);
      }
      for (const event of events) {
        expect(event.id).toMatch(/^r\d+-\d+$/);
        expect(Buffer.from(event.body).equals(Buffer.alloc(event.body.length, event.id)), event.id).toBe(true);
        expect(event.headers).toEqual({ 'x-id': event.id });
      }
      // Every acknowledged id is pending now, unless the child had claimed it and its delivery was in flight.
      const missing = [...everAcked].filter((id) => !everDone.has(id) && !pendingSet.has(id) && !everClaimed.has(id));
      expect(missing, 'acknowledged and lost').toEqual([]);
      // A lease is not persisted: an event the child had claimed and never settled is pending again.
      expect([...held].filter((id) => !pendingSet.has(id)), 'claimed, never settled, and lost').toEqual([]);
      // Deliver what is pending so the next rounds start from a known state, and remember it.
      await store.settle(events.map((e) => ({ id: e.id, type: 'delivered' as const, attempt: { at: 0, durationMs: 1, status: 200 } })));
      for (const e of events) everDone.add(e.id);
      await store.close();
    }
    expect(rounds).toBeGreaterThanOrEqual(20);
    expect(everAcked.size).toBeGreaterThan(rounds * 5);
    expect(everHeld).toBeGreaterThan(0);
  });
});
