import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import type { OutboxStore } from '../../src/store/store.js';
import { makeEvent } from './contract.js';
import { tempDirs } from './temp-dir.js';

const newDir = tempDirs('file-model');
const T0 = 1_700_000_000_000;
const NOW = T0 + 1_000_000;

interface Model {
  pending: Map<string, number>;
  dead: Set<string>;
  /** Where each pending or dead event goes (a replay may move it). */
  urls: Map<string, string>;
  /** Ordering keys of the pending and dead events that have one; ids are numbered in append order. */
  keys: Map<string, string>;
  nextId: number;
}

const KEYS = [undefined, 'k1', 'k2'] as const;

/** The pending events a claim may take: those without a key, and of each key the one appended first. */
function claimable(model: Model): Set<string> {
  const first = new Map<string, string>();
  const free = new Set<string>();
  for (const id of model.pending.keys()) {
    const key = model.keys.get(id);
    if (key === undefined) free.add(id);
    else if (!first.has(key) || Number(id.slice(1)) < Number((first.get(key) as string).slice(1))) first.set(key, id);
  }
  return new Set([...free, ...first.values()]);
}

const ORIGIN = makeEvent('x').url;
const MOVED = ['http://127.0.0.1:3/one', 'http://127.0.0.1:3/two'] as const;

interface Real {
  dir: string;
  store: OutboxStore;
}

type Kind = 'delivered' | 'retry' | 'dead' | 'release';

function check(model: Model, real: Real): void {
  expect(real.store.stats()).toMatchObject({ pending: model.pending.size, dead: model.dead.size, claimed: 0, corrupt: 0 });
  const endpoints: Record<string, { pending: number; dead: number }> = {};
  for (const [id, url] of model.urls) {
    const counts = (endpoints[url] ??= { pending: 0, dead: 0 });
    if (model.dead.has(id)) counts.dead++;
    else counts.pending++;
  }
  expect(real.store.stats().endpoints).toEqual(endpoints);
}

class Append implements fc.AsyncCommand<Model, Real> {
  constructor(readonly count: number, readonly size: number, readonly url: string, readonly key: string | undefined) {}
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    const key = this.key === undefined ? {} : { orderingKey: this.key };
    const events = Array.from({ length: this.count }, () => makeEvent(`m${model.nextId++}`, { body: new Uint8Array(this.size), url: this.url, ...key }));
    await real.store.append(events);
    for (const e of events) {
      model.pending.set(e.id, 0);
      model.urls.set(e.id, e.url);
      if (this.key !== undefined) model.keys.set(e.id, this.key);
    }
    check(model, real);
  }
  toString = (): string => `append(${this.count}x${this.size} to ${this.url}${this.key === undefined ? '' : ` key ${this.key}`})`;
}

class Settle implements fc.AsyncCommand<Model, Real> {
  constructor(readonly limit: number, readonly kinds: Kind[]) {}
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    const { events } = await real.store.claim({ limit: this.limit, now: NOW });
    const may = claimable(model);
    expect(events.length).toBe(Math.min(this.limit, may.size));
    const outcomes = events.map((e, i) => {
      expect(may.has(e.id), `${e.id} may not go before the earlier events of its key`).toBe(true);
      expect(e.orderingKey).toBe(model.keys.get(e.id));
      expect(e.attempts).toBe(model.pending.get(e.id));
      expect(e.url).toBe(model.urls.get(e.id));
      const kind = this.kinds[i % this.kinds.length] as Kind;
      const attempt = { at: T0, durationMs: 1, status: kind === 'delivered' ? 200 : 503 };
      if (kind === 'delivered') {
        model.pending.delete(e.id);
        model.urls.delete(e.id);
        model.keys.delete(e.id);
        return { id: e.id, type: kind, attempt };
      }
      if (kind === 'retry') {
        model.pending.set(e.id, (model.pending.get(e.id) ?? 0) + 1);
        return { id: e.id, type: kind, attempt, nextAttemptAt: T0 + 1, countsAsAttempt: true };
      }
      if (kind === 'dead') {
        model.pending.delete(e.id);
        model.dead.add(e.id);
        return { id: e.id, type: kind, attempt, reason: 'max-attempts' as const, at: T0 };
      }
      return { id: e.id, type: kind };
    });
    await real.store.settle(outcomes);
    check(model, real);
  }
  toString = (): string => `settle(${this.limit}, ${this.kinds.join('/')})`;
}

class ReplayOrPurge implements fc.AsyncCommand<Model, Real> {
  /** `to`: replay there; `undefined`: replay where they went; `null`: purge. */
  constructor(readonly to: string | undefined | null, readonly take: number) {}
  check = (model: Readonly<Model>): boolean => model.dead.size > 0;
  async run(model: Model, real: Real): Promise<void> {
    const ids = [...model.dead].slice(0, this.take);
    const count = this.to === null ? await real.store.purge(ids) : await real.store.replay(ids, T0, this.to);
    expect(count).toBe(ids.length);
    for (const id of ids) {
      model.dead.delete(id);
      if (this.to === null) {
        model.urls.delete(id);
        model.keys.delete(id);
      } else {
        model.pending.set(id, 0);
        if (this.to !== undefined) model.urls.set(id, this.to);
      }
    }
    check(model, real);
  }
  toString = (): string => (this.to === null ? `purge(${this.take})` : `replay(${this.take}${this.to === undefined ? '' : ` to ${this.to}`})`);
}

class MoveEndpoint implements fc.AsyncCommand<Model, Real> {
  constructor(readonly from: string, readonly to: string) {}
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    const ids = [...model.urls].filter(([, url]) => url === this.from && this.from !== this.to).map(([id]) => id);
    expect(await real.store.moveEndpoint?.(this.from, this.to, T0)).toBe(ids.length);
    for (const id of ids) {
      model.urls.set(id, this.to);
      if (model.pending.has(id)) model.pending.set(id, 0);
    }
    check(model, real);
  }
  toString = (): string => `move(${this.from} -> ${this.to})`;
}

class Reopen implements fc.AsyncCommand<Model, Real> {
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    await real.store.close();
    real.store = new FileStore({ dir: real.dir, segmentBytes: 4096 });
    await real.store.open();
    check(model, real);
    const dead = await real.store.deadLetters();
    expect(dead.map((d) => [d.id, d.url, d.orderingKey]).sort()).toEqual([...model.dead].map((id) => [id, model.urls.get(id), model.keys.get(id)]).sort());
  }
  toString = (): string => 'reopen';
}

describe('FileStore against a trivial model (fast-check commands)', () => {
  it('agrees with the model through appends (with and without ordering keys), outcomes, replays (also to other URLs), endpoint moves, purges and reopens', async () => {
    const commands = [
      fc
        .tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 1500 }), fc.constantFrom(ORIGIN, ...MOVED), fc.constantFrom(...KEYS))
        .map(([n, size, url, key]) => new Append(n, size, url, key)),
      fc.tuple(fc.constantFrom(ORIGIN, ...MOVED), fc.constantFrom(ORIGIN, ...MOVED)).map(([from, to]) => new MoveEndpoint(from, to)),
      fc
        .tuple(fc.integer({ min: 1, max: 8 }), fc.array(fc.constantFrom<Kind>('delivered', 'retry', 'dead', 'release'), { minLength: 1, maxLength: 4 }))
        .map(([limit, kinds]) => new Settle(limit, kinds)),
      fc
        .tuple(fc.constantFrom<string | undefined | null>(null, undefined, ORIGIN, ...MOVED), fc.integer({ min: 1, max: 3 }))
        .map(([to, take]) => new ReplayOrPurge(to, take)),
      fc.constant(new Reopen()),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        const dir = await newDir();
        const real: Real = { dir, store: new FileStore({ dir, segmentBytes: 4096 }) };
        await real.store.open();
        try {
          const model: Model = { pending: new Map(), dead: new Set(), urls: new Map(), keys: new Map(), nextId: 0 };
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          await new Reopen().run(model, real);
        } finally {
          await real.store.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
