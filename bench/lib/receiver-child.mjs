/**
 * A child process hosting the package's own flaky receiver (`webhook-outbox/testing`), so the receiver
 * does not share the sender's event loop. Controlled over IPC: `refuse`, `accept`, `summary`, `close`.
 * Options come as JSON in argv[2]: { capacity, latencyMs, capacityRetryAfter, bucketMs }.
 */
import { loadTesting } from './components.mjs';

const { startFlakyReceiver } = await loadTesting();

const options = JSON.parse(process.argv[2] ?? '{}');
const receiver = await startFlakyReceiver({
  capacity: options.capacity,
  latencyMs: options.latencyMs,
  capacityRetryAfter: options.capacityRetryAfter,
});

function summary(since) {
  const bucketMs = options.bucketMs ?? 250;
  const requests = receiver.requests.filter((r) => r.at >= since);
  const timeline = [];
  let ok = 0;
  let throttled = 0;
  let other = 0;
  let peak = 0;
  const ids = new Set();
  const start = requests[0]?.at ?? since;
  for (const r of requests) {
    const i = Math.floor((r.at - start) / bucketMs);
    while (timeline.length <= i) timeline.push({ t: timeline.length * bucketMs, maxConcurrency: 0, ok: 0, throttled: 0 });
    const bucket = timeline[i];
    bucket.maxConcurrency = Math.max(bucket.maxConcurrency, r.concurrency);
    peak = Math.max(peak, r.concurrency);
    if (r.status !== undefined && r.status >= 200 && r.status < 300) {
      ok += 1;
      bucket.ok += 1;
      if (r.id !== undefined) ids.add(r.id);
    } else if (r.status === 429) {
      throttled += 1;
      bucket.throttled += 1;
    } else {
      other += 1;
    }
  }
  return {
    requests: requests.length,
    ok,
    throttled,
    other,
    uniqueDelivered: ids.size,
    peakConcurrency: peak,
    firstAt: requests[0]?.at,
    lastAt: requests.at(-1)?.at,
    bucketMs,
    timeline,
  };
}

process.on('message', async (message) => {
  if (message.type === 'refuse') await receiver.refuseConnections();
  if (message.type === 'accept') await receiver.acceptConnections();
  if (message.type === 'clear') receiver.requests.length = 0;
  if (message.type === 'summary') {
    process.send({ type: 'summary', seq: message.seq, summary: summary(message.since ?? 0) });
    return;
  }
  if (message.type === 'close') {
    await receiver.close();
    process.send({ type: 'done', seq: message.seq });
    process.disconnect();
    return;
  }
  process.send({ type: 'done', seq: message.seq });
});

process.send({ type: 'ready', url: receiver.url, port: receiver.port });
