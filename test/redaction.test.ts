/**
 * Credentials in dead-letter excerpts and CLI output: the forms a receiver echoes them in.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { viewDeadLetter } from '../src/cli/commands/dead.js';
import { runCli as runCliInProcess } from '../src/cli/program.js';
import type { DeadLetter } from '../src/store/store.js';
import { Outbox } from '../src/outbox.js';
import { MemoryStore } from '../src/store/memory.js';
import { startFlakyReceiver } from '../src/testing/flaky-receiver.js';
import { createGotTransport } from '../src/transport/got-transport.js';
import { closedAfterEach, FAST_RETRY } from './outbox-helpers.js';
import { tempDirs } from './store/temp-dir.js';

const tempDir = tempDirs('redaction');

const opened = closedAfterEach();

/** A secret whose key holds '+', '/' and '=' (as most do): 32 bytes of 0xfb, 0xff, 0x3e... */
const SECRET = `whsec_${Buffer.from(Array.from({ length: 32 }, (_, i) => [0xfb, 0xff, 0xbf, 0x3e][i % 4] as number)).toString('base64')}`;
const KEY = SECRET.slice('whsec_'.length);

function collect(): Writable & { text: string } {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      sink.text += chunk.toString();
      done();
    },
  }) as Writable & { text: string };
  sink.text = '';
  return sink;
}

/** Dead-letters one event whose receiver answers 400/404 with `body`; returns the last history error. */
async function deadLetterExcerpt(
  body: (path: string) => string,
  options: { status?: number; url?: string; headers?: Record<string, string>; transport?: ReturnType<typeof createGotTransport>; signingSecret?: string } = {},
): Promise<string> {
  const rx = (opened.receiver = await startFlakyReceiver({ script: (req) => ({ status: options.status ?? 400, body: body(req.path) }) }));
  const outbox = (opened.outbox = await Outbox.open({
    store: new MemoryStore(),
    url: options.url?.replace('RX', rx.url) ?? rx.url,
    signingSecret: options.signingSecret ?? SECRET,
    retry: FAST_RETRY,
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    ...(options.transport === undefined ? {} : { transport: options.transport }),
  }));
  await outbox.enqueue({ body: 1 });
  await outbox.drain({ timeoutMs: 5_000 });
  const [letter] = await outbox.deadLetters();
  return letter?.history.at(-1)?.error ?? '';
}

describe('the signing secret in dead-letter excerpts', () => {
  it('SECRET fixture has "/" and "+" in its key', () => {
    expect(KEY).toMatch(/\//);
    expect(KEY).toMatch(/\+/);
  });

  it('is redacted when the receiver JSON-encodes it with escaped slashes (PHP json_encode)', async () => {
    const error = await deadLetterExcerpt(() => JSON.stringify({ error: 'bad signature', expected: SECRET }).replaceAll('/', '\\/'));
    expect(error).toContain('bad signature');
    // The whole secret, in the form the receiver wrote it, is in the excerpt.
    expect(error).not.toContain(SECRET.replaceAll('/', '\\/'));
  });

  it('is redacted when the receiver echoes it URL-encoded (form body)', async () => {
    const error = await deadLetterExcerpt(() => `error=bad+signature&expected=${encodeURIComponent(SECRET)}`);
    expect(error).toContain('error=bad+signature');
    expect(error).not.toContain(encodeURIComponent(SECRET));
  });

  it('is redacted when the transport\'s excerpt cuts through it', async () => {
    const prefix = 'bad signature, expected key '; // 28 characters
    const error = await deadLetterExcerpt(() => `${prefix}${SECRET} end`, { transport: createGotTransport({ excerptChars: 60 }) });
    expect(error).toContain(prefix);
    // The same assertion as test/outbox.test.ts ('keeps the signing secret ... out of dead-letter excerpts').
    expect(error).not.toContain(SECRET.slice(6, 20));
  });
});

describe('an ed25519 secret key (whsk_) in dead-letter excerpts', () => {
  // Svix's test key (see test/signing/ed25519-keys.test.ts): its base64 holds '/'.
  const KEY = 'whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==';

  it('is redacted whole, as its base64 alone, JSON-escaped and URL-encoded, like a whsec_ secret', async () => {
    const error = await deadLetterExcerpt(
      () => `bad key ${KEY} / ${KEY.slice(5)} / ${KEY.replaceAll('/', '\\/')} / ${encodeURIComponent(KEY)}`,
      { signingSecret: KEY },
    );
    expect(error).toContain('bad key [redacted] / [redacted] / [redacted] / [redacted]');
    expect(error).not.toContain(KEY.slice(5, 15));
  });
});

describe('credentials other than the signing secret in excerpts and CLI output', () => {
  it("a credential header named like Swagger's api_key is redacted from the excerpt and from `dead list`", async () => {
    const token = 'live-key-0123456789abcdef';
    const error = await deadLetterExcerpt(() => `unknown api_key ${token}`, { headers: { api_key: token } });
    const [letter] = await (opened.outbox as Outbox).deadLetters();
    const view = viewDeadLetter(letter as DeadLetter);
    expect({ excerpt: error.includes(token), cliHeader: view.headers.api_key }).toEqual({ excerpt: false, cliHeader: '[redacted]' });
  });

  it('a token in the URL query is redacted from lastError too (a 404 page echoing the path)', async () => {
    const token = 'tok_live_0123456789abcdef';
    const dir = await tempDir();
    // Answers like Express's finalhandler 404 page: the method and the request URL, query included.
    const echo = (opened.receiver = await startFlakyReceiver({ script: (req) => ({ status: 404, body: `Cannot POST ${req.path}` }) }));
    const outbox = (opened.outbox = await Outbox.open({ dir, url: `${echo.url}?token=${token}`, retry: FAST_RETRY }));
    await outbox.enqueue({ body: 1 });
    await outbox.drain({ timeoutMs: 5_000 });
    await outbox.close();
    delete opened.outbox;
    const stdout = collect();
    const stderr = collect();
    const code = await runCliInProcess(['dead', 'list', '--json', '--dir', dir], { stdout, stderr, entry: '' });
    expect(code).toBe(0);
    const [view] = JSON.parse(stdout.text) as { url: string; lastError: string }[];
    expect(view?.url).toContain('token=***');
    expect(view?.lastError).toContain('Cannot POST /hook?token=[redacted]');
    expect(stdout.text).not.toContain(token);
  });
});
