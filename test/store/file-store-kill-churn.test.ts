import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { seededRandom } from './seeded-random.js';
import { bundledChild } from './bundled-child.js';
import { tempDirs } from './temp-dir.js';

/*
 * kill -9 of a child that churns a FileStore with a small maxBytes (segments of an
 * eighth of it: a roll every few commits), with every outcome kind, replays and purges, in both durability
 * modes. test/store/file-store-kill.test.ts covers appends and deliveries with 64 KiB segments; this one
 * adds dead letters (which must stay dead), retries, replays and purges (a purged letter must not come
 * back), and many rolls and segment deletions between kills.
 */

const newDir = tempDirs('file-kill-churn');
const child = bundledChild('churn-child');
const MAX_BYTES = 48 * 1024;

type Where = 'pending' | 'dead' | 'gone';
const TARGET: Record<string, Where> = { delivered: 'gone', retry: 'pending', dead: 'dead' };

/** Runs the child, SIGKILLs it `killAfterMs` after it is ready, and folds what it printed into `model`. */
function runAndKill(dir: string, prefix: string, durability: string, killAfterMs: number, seed: number, clock: number, model: Map<string, Set<Where>>): Promise<number> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child(), dir, prefix, durability, String(MAX_BYTES), String(seed), String(clock)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffer = '';
    let stderr = '';
    let lines = 0;
    let timer: NodeJS.Timeout | undefined;
    const widen = (id: string, where: Where): void => {
      (model.get(id) ?? model.set(id, new Set()).get(id) as Set<Where>).add(where);
    };
    // Three workers print after their awaits resume, so the lines of two of them about one event can come
    // out of causal order (another worker claims an appended event before its append's `ack` is printed,
    // settles it again before the first settle's `settled` is printed, or replays a dead letter before
    // the `settled` that made it dead). So every announced step (settling, replaying, purging) is kept
    // until its own confirmation, and a confirmation allows its state and every step still announced.
    const announced = new Map<string, Where[]>();
    const announce = (id: string, where: Where): void => {
      widen(id, where);
      announced.set(id, [...(announced.get(id) ?? []), where]);
    };
    const confirm = (id: string, where: Where): void => {
      const open = announced.get(id) ?? [];
      const at = open.indexOf(where);
      if (at >= 0) open.splice(at, 1);
      model.set(id, new Set([where, ...open]));
    };
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      buffer += chunk;
      const all = buffer.split('\n');
      buffer = all.pop() ?? '';
      for (const line of all) {
        lines++;
        const [verb, id, outcome] = line.split(' ') as [string, string, string | undefined];
        if (verb === 'ready') timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
        else if (verb === 'ack') widen(id, 'pending');
        else if (verb === 'settling') announce(id, TARGET[outcome as string] as Where);
        else if (verb === 'settled') confirm(id, TARGET[outcome as string] as Where);
        else if (verb === 'replaying') announce(id, 'pending');
        else if (verb === 'replayed') confirm(id, 'pending');
        else if (verb === 'purging') announce(id, 'gone');
        else if (verb === 'purged') confirm(id, 'gone');
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
      else resolve(lines);
    });
  });
}

describe('FileStore with a small maxBytes under kill -9 while churning', () => {
  it('after every SIGKILL: acknowledged events are pending or dead as last acknowledged, nothing settled or purged comes back', async () => {
    const dir = await newDir();
    const random = seededRandom(20_261_201);
    const model = new Map<string, Set<Where>>();
    const started = Date.now();
    let rounds = 0;
    let dead = 0;
    const problems: string[] = [];
    for (; rounds < 30 && Date.now() - started < 75_000; rounds++) {
      const durability = rounds % 3 === 2 ? 'write' : 'fsync';
      await runAndKill(dir, `r${rounds}`, durability, 30 + Math.floor(random() * 400), 1 + Math.floor(random() * 1e9), 1_700_000_000_000 + rounds * 1e9, model);
      const store = new FileStore({ dir, maxBytes: MAX_BYTES });
      await store.open();
      const { events } = await store.claim({ limit: 1_000_000, now: Number.MAX_SAFE_INTEGER });
      const pending = new Set(events.map((e) => e.id));
      const deadIds = new Set(await store.deadLetterIds({}));
      dead = Math.max(dead, deadIds.size);
      expect(pending.size).toBe(events.length);
      if (store.stats().corrupt !== 0) problems.push(`round ${rounds}: corrupt ${store.stats().corrupt}`);
      for (const event of events) expect(Buffer.from(event.body).equals(Buffer.alloc(event.body.length, event.id)), event.id).toBe(true);
      // An append in flight at the kill may have reached the disk before its acknowledgement was printed.
      for (const id of [...pending, ...deadIds]) {
        if (model.has(id)) continue;
        if (id.startsWith(`r${rounds}-`)) model.set(id, new Set(['pending']));
        else problems.push(`round ${rounds}: ${id} was never acknowledged`);
      }
      for (const [id, allowed] of model) {
        const where: Where = pending.has(id) ? 'pending' : deadIds.has(id) ? 'dead' : 'gone';
        if (!allowed.has(where)) problems.push(`round ${rounds}: ${id} is ${where}, expected ${[...allowed].join(' or ')}`);
        if (where === 'gone') model.delete(id);
        else model.set(id, new Set([where]));
      }
      await store.close();
    }
    expect(problems).toEqual([]);
    expect(rounds).toBeGreaterThanOrEqual(15);
    expect(dead).toBeGreaterThan(0);
  }, 120_000);
});
