import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import type { Reply } from '../src/testing/flaky-receiver.js';
import { bodyOf, closedAfterEach, FAST_RETRY, newSecret, waitFor } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

/** enableEndpoint() of one URL does not keep another, gone, from being disabled. */
const opened = closedAfterEach();
const newDir = tempDirs('outbox-gone-enable');

describe('enableEndpoint() of one URL and a 410 from another', () => {
  it('a 410 from endpoint B answered after enableEndpoint(A) still disables B: B gets one request', async () => {
    const secret = newSecret();
    let answerFirst: ((reply: Reply) => void) | undefined;
    const gone = (opened.receiver = await startFlakyReceiver({
      secret,
      script: (_req, index) => (index === 0 ? new Promise<Reply>((resolve) => (answerFirst = resolve)) : { status: 410, body: 'deleted' }),
    }));
    const outbox = (opened.outbox = await Outbox.open({ dir: await newDir(), signingSecret: secret, retry: FAST_RETRY, concurrency: 1 }));
    const told: string[] = [];
    outbox.on('endpointGone', ({ url }) => told.push(url));
    for (let n = 0; n < 10; n++) await outbox.enqueue({ url: gone.url, body: bodyOf(n) });
    await waitFor(() => answerFirst !== undefined, 10_000, 'the first request');
    // The app re-enables another customer's endpoint (or every configured endpoint on a config reload).
    await outbox.enableEndpoint('http://127.0.0.1:9/other-customer');
    answerFirst?.({ status: 410, body: 'deleted' });
    await outbox.drain({ timeoutMs: 10_000 });
    expect(told).toEqual([gone.url]);
    expect(gone.requests).toHaveLength(1);
  });
});
