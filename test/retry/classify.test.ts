import { describe, expect, it } from 'vitest';
import { NetworkError } from '../../src/errors.js';
import { classifyError, classifyStatus, isSuccessStatus, toNetworkError } from '../../src/retry/classify.js';

describe('classifyStatus', () => {
  it('retries 408, 425, 429, 500, 502, 503, 504 and nothing else', () => {
    const retryable = [];
    for (let status = 100; status < 600; status++) if (classifyStatus(status).retryable) retryable.push(status);
    expect(retryable).toEqual([408, 425, 429, 500, 502, 503, 504]);
  });

  it('marks 429 and 503 as throttling', () => {
    expect(classifyStatus(429)).toEqual({ retryable: true, throttled: true });
    expect(classifyStatus(503)).toEqual({ retryable: true, throttled: true });
    expect(classifyStatus(502)).toEqual({ retryable: true, throttled: true });
    expect(classifyStatus(504)).toEqual({ retryable: true, throttled: true });
    expect(classifyStatus(500)).toEqual({ retryable: true, throttled: false });
    expect(classifyStatus(301)).toEqual({ retryable: false, throttled: false });
  });

  it('treats only 2xx as success', () => {
    expect([199, 200, 204, 299, 300, 304].map(isSuccessStatus)).toEqual([false, true, true, true, false, false]);
  });
});

describe('classifyError', () => {
  const net = (errno: string | undefined, message = 'x'): NetworkError => new NetworkError('ERR_NETWORK', message, errno);

  it('retries every request that got no answer: system errors, TLS failures, errors without a code', () => {
    for (const errno of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EPROTO', 'EHOSTDOWN', 'EAI_FAIL']) {
      expect(classifyError(net(errno))).toEqual({ retryable: true, throttled: false });
    }
    expect(classifyError(net(undefined, 'socket hang up')).retryable).toBe(true);
    expect(classifyError(net(undefined, 'The request failed: certificate has expired')).retryable).toBe(true);
    expect(classifyError(net(undefined)).retryable).toBe(true);
  });

  it('retries ENOTFOUND only when configured', () => {
    expect(classifyError(net('ENOTFOUND')).retryable).toBe(false);
    expect(classifyError(net('ENOTFOUND'), { retryOnDnsFailure: true }).retryable).toBe(true);
  });

  it('retries timeouts as throttling and never retries an abort', () => {
    expect(classifyError(new NetworkError('ERR_TIMEOUT', 't', undefined))).toEqual({ retryable: true, throttled: true });
    expect(classifyError(new NetworkError('ERR_ABORTED', 'a', undefined))).toEqual({ retryable: false, throttled: false });
  });
});

describe('toNetworkError', () => {
  it('finds the system code on the error or its cause (fetch style)', () => {
    const fetchError = new TypeError('fetch failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) });
    const e = toNetworkError(fetchError);
    expect(e).toMatchObject({ code: 'ERR_NETWORK', errno: 'ECONNREFUSED' });
    expect(e.cause).toBe(fetchError);
  });

  it('maps timeouts and aborts, and passes NetworkErrors through', () => {
    const timeout = Object.assign(new Error('Timeout awaiting request'), { name: 'TimeoutError', code: 'ETIMEDOUT' });
    expect(toNetworkError(timeout).code).toBe('ERR_TIMEOUT');
    const controller = new AbortController();
    controller.abort();
    expect(toNetworkError(new Error('whatever'), controller.signal).code).toBe('ERR_ABORTED');
    const original = new NetworkError('ERR_NETWORK', 'x', 'EPIPE');
    expect(toNetworkError(original)).toBe(original);
    expect(toNetworkError('a string')).toMatchObject({ code: 'ERR_NETWORK', errno: undefined });
  });
});
