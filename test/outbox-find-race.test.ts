import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.js';
import { Outbox } from '../src/outbox.js';
import { FileStore } from '../src/store/file/file-store.js';
import { nodeFileSystem } from '../src/store/file/file-system.js';
import type { FileSystem } from '../src/store/file/file-system.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../src/testing/flaky-receiver.js';
import { waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

const tempDir = tempDirs('rev-find-outbox');
let receiver: FlakyReceiver | undefined;
let outbox: Outbox | undefined;
afterEach(async () => {
  // The receiver first: it destroys evt_B's hanging request (the outbox's close timeout runs on the fake clock).
  await receiver?.close();
  await outbox?.close({ timeoutMs: 50 }).catch(() => undefined);
});

describe('Outbox.find racing a delivery', () => {
  it("does not answer a delivered event as pending with another customer's URL", async () => {
    let answerA!: () => void;
    const heldA = new Promise<void>((r) => (answerA = r));
    receiver = await startFlakyReceiver({ script: async (req) => (req.id === 'evt_A' ? (await heldA, 200) : { hang: true }) });
    const clock = new FakeClock(Date.now());
    const dir = await tempDir();
    // evt_A was enqueued before a restart: its record is in a segment found at open (read asynchronously).
    const seeded = await Outbox.open({ dir, clock, url: `${receiver.url}?customer=a`, autoFlush: false });
    await seeded.enqueue({ id: 'evt_A', body: { for: 'A' } });
    await seeded.close();

    let gate: Promise<void> | undefined;
    let release!: () => void;
    let reached!: () => void;
    const blocked = new Promise<void>((r) => (reached = r));
    const fs: FileSystem = {
      ...nodeFileSystem,
      async read(...args) {
        const n = await nodeFileSystem.read(...args);
        if (gate !== undefined) {
          const g = gate;
          gate = undefined;
          reached();
          await g;
        }
        return n;
      },
    };
    outbox = await Outbox.open({ store: new FileStore({ dir, fs }), clock, url: `${receiver.url}?customer=a` });
    await waitFor(() => receiver?.inProgress === 1, 5_000, 'evt_A in flight');
    expect((await outbox.find('evt_A'))?.state).toBe('in-flight');

    gate = new Promise<void>((r) => (release = r));
    const found = outbox.find('evt_A');
    await blocked;
    const delivered = new Promise<void>((r) => outbox?.once('delivered', () => r()));
    answerA();
    await delivered; // evt_A's outcome is written: delivered, gone from the store
    await outbox.enqueue({ id: 'evt_B', url: `${receiver.url}?customer=b`, body: { for: 'B' } });
    await waitFor(() => receiver?.requests.some((r) => r.id === 'evt_B') === true || (receiver?.inProgress ?? 0) > 0, 5_000, 'evt_B sent');
    release();
    const answer = await found;
    expect(answer === undefined ? undefined : { id: answer.id, state: answer.state, url: answer.url }).toBeUndefined();
  });
});
