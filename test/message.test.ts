import { Options as GotOptions } from 'got';
import { describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/errors.js';
import { isSensitiveHeader, newEventId, prepareMessage, type PrepareOptions } from '../src/message.js';

const opts = { url: 'https://example.test/hook', maxBodyBytes: 1024 };

function rejection(message: unknown, options: PrepareOptions = opts): InvalidMessageError {
  try {
    prepareMessage(message, options);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidMessageError);
    return error as InvalidMessageError;
  }
  throw new Error('expected prepareMessage to throw');
}

describe('prepareMessage', () => {
  it('serialises JSON values as application/json and keeps strings and bytes as they are', () => {
    const json = prepareMessage({ body: { a: 1, at: new Date(0) } }, opts);
    expect(json.headers['content-type']).toBe('application/json');
    expect(Buffer.from(json.body).toString()).toBe('{"a":1,"at":"1970-01-01T00:00:00.000Z"}');
    const text = prepareMessage({ body: 'hello' }, opts);
    expect(text.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(Buffer.from(text.body).toString()).toBe('hello');
    const source = Uint8Array.of(1, 2, 3);
    const bytes = prepareMessage({ body: source }, opts);
    expect(bytes.headers['content-type']).toBe('application/octet-stream');
    expect([...bytes.body]).toEqual([1, 2, 3]);
    source[0] = 9;
    expect(bytes.body[0]).toBe(1);
    expect(Buffer.from(prepareMessage({ body: null }, opts).body).toString()).toBe('null');
  });

  it('merges default then message headers, lower-cased, and lets the caller set content-type', () => {
    const prepared = prepareMessage(
      { body: '{"a":1}', headers: { 'Content-Type': 'application/json', 'X-Tenant': 'b' } },
      { ...opts, headers: { 'x-tenant': 'a', 'x-app': 'demo' } },
    );
    expect(prepared.headers).toEqual({ 'content-type': 'application/json', 'x-tenant': 'b', 'x-app': 'demo' });
  });

  it('uses the given id or generates a msg_ ULID, and prefers the message url', () => {
    expect(prepareMessage({ body: 1, id: 'order-42' }, opts).id).toBe('order-42');
    expect(prepareMessage({ body: 1 }, opts).id).toMatch(/^msg_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(prepareMessage({ body: 1, url: 'http://127.0.0.1:1/x' }, opts).url).toBe('http://127.0.0.1:1/x');
  });

  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const cases: [string, unknown, string, string][] = [
    ['not an object', 'just a string', 'message', 'ERR_INVALID_MESSAGE'],
    ['an unknown field', { body: 1, payload: 2 }, 'payload', 'ERR_INVALID_MESSAGE'],
    ['a missing body', { id: 'x' }, 'body', 'ERR_INVALID_MESSAGE'],
    ['an undefined body', { body: undefined }, 'body', 'ERR_INVALID_MESSAGE'],
    ['a function body', { body: () => 1 }, 'body', 'ERR_INVALID_MESSAGE'],
    ['a nested function', { body: { f: () => 1 } }, 'body.f', 'ERR_INVALID_MESSAGE'],
    ['a bigint', { body: { n: 10n } }, 'body.n', 'ERR_INVALID_MESSAGE'],
    ['a symbol', { body: Symbol('s') }, 'body', 'ERR_INVALID_MESSAGE'],
    ['NaN', { body: { n: Number.NaN } }, 'body.n', 'ERR_INVALID_MESSAGE'],
    ['a Map', { body: new Map() }, 'body', 'ERR_INVALID_MESSAGE'],
    ['a circular body', { body: circular }, 'body', 'ERR_INVALID_MESSAGE'],
    ['an empty id', { body: 1, id: '' }, 'id', 'ERR_INVALID_MESSAGE'],
    ['a numeric id', { body: 1, id: 42 }, 'id', 'ERR_INVALID_MESSAGE'],
    ['an id with a newline', { body: 1, id: 'a\nb' }, 'id', 'ERR_INVALID_MESSAGE'],
    ['a ftp url', { body: 1, url: 'ftp://example.test/x' }, 'url', 'ERR_INVALID_URL'],
    ['a relative url', { body: 1, url: '/hook' }, 'url', 'ERR_INVALID_URL'],
    ['a non-string url', { body: 1, url: 42 }, 'url', 'ERR_INVALID_URL'],
    ["got's Unix socket url", { body: 1, url: 'http://unix:/var/run/app.sock:/hook' }, 'url', 'ERR_INVALID_URL'],
    ['a header value that is a number', { body: 1, headers: { 'x-n': 1 } }, 'headers.x-n', 'ERR_INVALID_MESSAGE'],
    ['CR/LF in a header value', { body: 1, headers: { 'x-a': 'a\r\nx-injected: 1' } }, 'headers.x-a', 'ERR_INVALID_MESSAGE'],
    ['a header value with a character above U+00FF (HTTP cannot carry it)', { body: 1, headers: { 'x-customer': 'Zo\u00eb & Co \u20ac' } }, 'headers.x-customer', 'ERR_INVALID_MESSAGE'],
    ['a header value with a DEL', { body: 1, headers: { 'x-a': 'a\u007f' } }, 'headers.x-a', 'ERR_INVALID_MESSAGE'],
    ['CR/LF in a header name', { body: 1, headers: { 'x-a\r\nx-b': 'v' } }, 'headers.x-a\r\nx-b', 'ERR_INVALID_MESSAGE'],
    ['a space in a header name', { body: 1, headers: { 'x a': 'v' } }, 'headers.x a', 'ERR_INVALID_MESSAGE'],
    ['headers that are an array', { body: 1, headers: ['a'] }, 'headers', 'ERR_INVALID_MESSAGE'],
    ['a reserved webhook-id header', { body: 1, headers: { 'Webhook-Id': 'x' } }, 'headers.Webhook-Id', 'ERR_INVALID_MESSAGE'],
    ['a reserved webhook-signature header', { body: 1, headers: { 'webhook-signature': 'v1,x' } }, 'headers.webhook-signature', 'ERR_INVALID_MESSAGE'],
    ['a reserved host header', { body: 1, headers: { host: 'x' } }, 'headers.host', 'ERR_INVALID_MESSAGE'],
    ['a Connection header', { body: 1, headers: { connection: 'keep-alive' } }, 'headers.connection', 'ERR_INVALID_MESSAGE'],
    ['a header given twice', { body: 1, headers: { 'x-a': '1', 'X-A': '2' } }, 'headers.X-A', 'ERR_INVALID_MESSAGE'],
    ['a body over maxBodyBytes', { body: 'x'.repeat(1025) }, 'body', 'ERR_BODY_TOO_LARGE'],
  ];
  it.each(cases)('rejects %s', (_name, message, field, code) => {
    const error = rejection(message);
    expect(error.code).toBe(code);
    expect(error.field).toBe(field);
  });

  it('rejects a message without url when the options have none', () => {
    expect(rejection({ body: 1 }, { maxBodyBytes: 10 }).code).toBe('ERR_INVALID_URL');
  });

  it('counts the encoded bytes, not characters, against maxBodyBytes', () => {
    expect(prepareMessage({ body: 'é'.repeat(512) }, opts).body.byteLength).toBe(1024);
    expect(rejection({ body: 'é'.repeat(513) }).code).toBe('ERR_BODY_TOO_LARGE');
  });

  // got's rule (Options' url setter): any http(s) URL whose parsed host is `unix` is a Unix socket, refused
  // unless enableUnixSockets, which the transport leaves off. Port and path do not matter.
  const unixSocketUrls = [
    'http://unix:/var/run/app.sock:/hook',
    'https://unix:/var/run/app.sock:/hook?x=1',
    'http://unix/hook',
    'http://unix:8080/hook',
    'http://UNIX:/s.sock:/h',
    'http://%75nix:/s.sock:/h',
    'http://\uFF55\uFF4E\uFF49\uFF58/hook',
    'http://user:hunter2@unix:/s.sock:/h',
  ];
  const otherUrls = [
    'http://unix./hook',
    'http://unix.example.test/hook',
    'http://myunix/hook',
    'http://unix-box.test:8080/a:b',
    'http://example.test/unix:/var/run/app.sock:/hook',
    'http://127.0.0.1:9/var/run/app.sock:/hook',
  ];

  it("refuses exactly the URLs got reads as a Unix socket, which the transport cannot send to", () => {
    const gotRefuses = (url: string): boolean => {
      try {
        new GotOptions(url);
        return false;
      } catch (error) {
        return /enableUnixSockets/.test((error as Error).message);
      }
    };
    for (const url of unixSocketUrls) {
      expect(gotRefuses(url), url).toBe(true);
      const error = rejection({ body: 1, url });
      expect([error.code, error.field], url).toEqual(['ERR_INVALID_URL', 'url']);
      expect(error.message).toMatch(/Unix domain socket/);
      expect(error.message).not.toContain('hunter2');
    }
    for (const url of otherUrls) {
      expect(gotRefuses(url), url).toBe(false);
      expect(prepareMessage({ body: 1, url }, opts).url).toBe(url);
    }
  });


  it('never quotes header values or URLs in the error', () => {
    const secret = 'Bearer sk_live_abcdef\n';
    expect(rejection({ body: 1, headers: { authorization: secret } }).message).not.toContain('sk_live');
    expect(rejection({ body: 1, url: 'ftp://user:hunter2@example.test' }).message).not.toContain('hunter2');
  });
});

describe('newEventId', () => {
  it('sorts by creation time, also within one millisecond, and never repeats', () => {
    const ids = [newEventId(1_000), newEventId(1_000), newEventId(1_000), newEventId(2_000), newEventId(1_500)];
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    const many = Array.from({ length: 1_000 }, () => newEventId());
    expect(new Set(many).size).toBe(1_000);
    expect([...many].sort()).toEqual(many);
  });
});

describe('isSensitiveHeader', () => {
  it('flags credential-like headers', () => {
    for (const name of ['authorization', 'Cookie', 'x-api-key', 'webhook-signature', 'x-auth-token', 'x-client-secret']) {
      expect(isSensitiveHeader(name)).toBe(true);
    }
    expect(isSensitiveHeader('content-type')).toBe(false);
  });
});
