import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildReport, formatReport } from '../../src/cli/demo/report.js';
import { formatBar, formatBytes, formatDuration, quantile, redactUrl } from '../../src/cli/format.js';
import { ProgressLine } from '../../src/cli/progress.js';
import type { ReceivedRequest } from '../../src/testing/flaky-receiver.js';

function request(id: string, status: number | undefined, at: number, createdAt: number): ReceivedRequest {
  return { id, timestamp: '1', signatureValid: true, headers: {}, body: JSON.stringify({ createdAt }), status, at, concurrency: 1, method: 'POST', path: '/hook' };
}

describe('demo report', () => {
  it('counts deliveries per webhook-id, duplicates, losses and latency from the receiver', () => {
    const report = buildReport({
      sent: new Set(['a', 'b', 'c']),
      requests: [request('a', 500, 10, 0), request('a', 200, 30, 0), request('a', 200, 40, 0), request('b', 200, 100, 50), request('c', undefined, 60, 0)],
      deadLetters: 0,
      peakConcurrency: 3,
      kills: 1,
      durationMs: 1_000,
    });
    expect(report).toMatchObject({ sent: 3, delivered: 2, lost: 1, lostSample: ['c'], duplicates: 1, attempts: 5, failedAttempts: 2 });
    expect([report.latencyP50Ms, report.latencyP99Ms]).toEqual([30, 50]);
    const text = formatReport(report);
    expect(text.split('\n').at(-1)).toBe('1 lost: 1 of the 3 durable events never reached the receiver.');
    expect(formatReport({ ...report, lost: 0 })).toMatch(/\n0 lost: every one of the 3 events was delivered\.$/);
  });
});

describe('formatting', () => {
  it('redacts user info and query values of a URL, keeping its shape', () => {
    expect(redactUrl('https://user:pw@example.com:8443/hooks/1?token=abc&v=2#frag')).toBe('https://***:***@example.com:8443/hooks/1?token=***&v=***');
    expect(redactUrl('http://127.0.0.1:9/x')).toBe('http://127.0.0.1:9/x');
    expect(redactUrl('not a url')).toBe('(invalid URL)');
  });

  it('formats durations, sizes, bars and quantiles', () => {
    expect([formatDuration(850), formatDuration(12_340), formatDuration(245_000), formatDuration(7_500_000), formatDuration(200_000_000)]).toEqual([
      '850 ms',
      '12.3 s',
      '4 m 05 s',
      '2 h 05 m',
      '2 d 7 h',
    ]);
    expect([formatBytes(512), formatBytes(1_536), formatBytes(20 * 1024 * 1024)]).toEqual(['512 B', '1.5 KiB', '20.0 MiB']);
    expect(formatBar(0.5, 4)).toBe('[##..]');
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('progress rewrites one line on a terminal and prints plain lines, throttled, elsewhere', () => {
    const tty = new PassThrough();
    let ttyOut = '';
    tty.on('data', (chunk: Buffer) => (ttyOut += chunk.toString()));
    const line = new ProgressLine(tty, { tty: true, ttyIntervalMs: 100 });
    line.update('one', 0);
    line.update('two', 50);
    line.update('three', 200);
    line.done('end');
    expect(ttyOut).toBe('\r\x1b[2Kone\r\x1b[2Kthree\r\x1b[2Kend\n');

    const plain = new PassThrough();
    let plainOut = '';
    plain.on('data', (chunk: Buffer) => (plainOut += chunk.toString()));
    const log = new ProgressLine(plain, { tty: false, plainIntervalMs: 1_000 });
    log.update('a', 0);
    log.update('b', 500);
    log.update('c', 1_000);
    log.done();
    expect(plainOut).toBe('a\nc\n');
  });
});
