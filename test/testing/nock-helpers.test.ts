import http from 'node:http';
import nock from 'nock';
import { afterEach, describe, expect, it } from 'vitest';
import { failThenSucceed, replySequence } from '../../src/testing/nock-helpers.js';
import { WebhookOutboxError } from '../../src/errors.js';

const base = 'http://hooks.example.test';

interface Answer {
  status: number;
  retryAfter: string | undefined;
}

function post(path = '/in'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end('{"a":1}');
  });
}

afterEach(() => {
  nock.cleanAll();
});

describe('failThenSucceed', () => {
  it('fails N times with the status and Retry-After, then succeeds once, then matches nothing', async () => {
    const scope = failThenSucceed(nock, base, '/in', { failures: 2, status: 503, retryAfter: 1 });
    expect(await post()).toEqual({ status: 503, retryAfter: '1' });
    expect(scope.isDone()).toBe(false);
    expect(await post()).toEqual({ status: 503, retryAfter: '1' });
    expect(await post()).toEqual({ status: 200, retryAfter: undefined });
    expect(scope.isDone()).toBe(true);
    await expect(post()).rejects.toThrow(/No match/);
  });

  it('defaults to 500 and 200, and fails with a network error code when asked', async () => {
    failThenSucceed(nock, base, '/in', { failures: 1 });
    expect((await post()).status).toBe(500);
    expect((await post()).status).toBe(200);

    const scope = failThenSucceed(nock, base, '/in', { failures: 1, error: 'ECONNRESET', then: 204 });
    await expect(post()).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect((await post()).status).toBe(204);
    expect(scope.isDone()).toBe(true);
  });

  it('with zero failures only succeeds, and rejects a bad count with a typed error', async () => {
    const scope = failThenSucceed(nock, base, '/in', { failures: 0 });
    expect((await post()).status).toBe(200);
    expect(scope.isDone()).toBe(true);
    const bad = (() => {
      try {
        failThenSucceed(nock, base, '/in', { failures: -1 });
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(bad).toBeInstanceOf(WebhookOutboxError);
    expect(bad).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'failures' });
    expect(nock.pendingMocks()).toEqual([]);
  });
});

describe('replySequence', () => {
  it('answers each step in order, repeated `times`', async () => {
    const scope = replySequence(nock, base, '/in', [
      { status: 500, times: 2 },
      { status: 429, headers: { 'retry-after': '2' } },
      { error: 'ECONNREFUSED' },
      201,
    ]);
    const seen: (number | string)[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push(await post().then((a) => a.status, (e: NodeJS.ErrnoException) => e.code ?? 'no code'));
    }
    expect(seen).toEqual([500, 500, 429, 'ECONNREFUSED', 201]);
    expect(scope.isDone()).toBe(true);
  });

  it('rejects an empty sequence and a bad repeat count', () => {
    expect(() => replySequence(nock, base, '/in', [])).toThrow(WebhookOutboxError);
    expect(() => replySequence(nock, base, '/in', [{ status: 500, times: 0 }])).toThrow(/steps\[0\]\.times/);
  });
});
