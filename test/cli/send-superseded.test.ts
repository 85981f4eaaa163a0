import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { send } from '../../src/cli/commands/send.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { Outbox } from '../../src/outbox.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { tempDirs } from '../store/temp-dir.js';

const tempDir = tempDirs('supersede-cli');

function sink(): { stream: Writable; text(): string } {
  let text = '';
  return {
    stream: new Writable({
      write(chunk, _enc, done) {
        text += String(chunk);
        done();
      },
    }),
    text: () => text,
  };
}

describe('webhook-outbox send, for an id already waiting in the directory that gets superseded', () => {
  it('reports that its event was superseded instead of waiting out --timeout and saying it "stays in" the directory', async () => {
    const rx = await startFlakyReceiver({});
    const dir = await tempDir();
    try {
      // What a stopped app left: evt_1 and, after it, a superseding update of its key.
      const app = await Outbox.open({ dir, url: rx.url, autoFlush: false });
      await app.enqueue({ id: 'evt_1', orderingKey: 'c-7', body: { n: 1 } });
      await app.enqueue({ id: 'evt_2', orderingKey: 'c-7', supersede: true, body: { n: 2 } });
      await app.close();
      // A script (re)sends evt_1 (an id is accepted once: it waits for the one in the directory).
      const out = sink();
      const err = sink();
      const code = await send(
        { url: rx.url, body: { n: 1 }, dir, secret: undefined, headers: {}, id: 'evt_1', orderingKey: 'c-7', timeoutMs: 1500, blockPrivateAddresses: false },
        out.stream,
        err.stream,
      );
      expect(err.text()).toContain('evt_1 superseded by evt_2');
      expect(rx.requests.map((r) => r.id)).not.toContain('evt_1');
      expect(code).toBe(ExitCode.failure);
      // evt_1 is gone for good; the command must not claim it is still pending / stays on disk.
      expect(err.text()).not.toContain('stays in');
      expect(code).not.toBe(ExitCode.timeout);
    } finally {
      await rx.close();
    }
  });
});
