import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../src/outbox.js';
import { startFlakyReceiver } from '../../src/testing/flaky-receiver.js';
import type { FlakyReceiver } from '../../src/testing/flaky-receiver.js';
import { generateSigningKeyPair, signingPublicKey } from '../../src/signing/ed25519-keys.js';
import type { SigningKeyPair } from '../../src/signing/ed25519-keys.js';
import { builtPackage, runCli, startCli } from './run-cli.js';
import { startTestProxy, type TestProxy } from '../transport/test-proxy.js';

const secret = `whsec_${Buffer.from('a demo secret of thirty-two bytes').toString('base64')}`;

let dir: string;
let receiver: FlakyReceiver;

const built = builtPackage();

/** A fresh directory and receiver per test, for the blocks whose tests run one at a time. */
function useDirAndReceiver(): void {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'webhook-outbox-cli-'));
    receiver = await startFlakyReceiver({ secret });
  });
  afterEach(async () => {
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  });
}

const run = (...args: string[]) => runCli(built.cli, args);
const outboxDir = (): string => join(dir, 'outbox');

async function status(): Promise<{ pending: number; dead: number; ownerPid: number | null; inFlight: number | null; endpoints: Record<string, { pending: number; dead: number }> }> {
  const result = await run('status', '--dir', outboxDir(), '--json');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as Awaited<ReturnType<typeof status>>;
}

describe('webhook-outbox send', () => {
  useDirAndReceiver();

  it('delivers a signed event after a 503, with the same webhook-id on every attempt, and exits 0', async () => {
    receiver.setScript([503]);
    const result = await run('send', receiver.url, '--data', '{"order":42}', '--dir', outboxDir(), '--secret', secret, '--id', 'evt_cli_1', '--header', 'x-tenant: acme');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^delivered evt_cli_1: HTTP 200 after 2 attempt\(s\)/);
    expect(result.stderr).toContain('attempt 1 failed (HTTP 503)');
    expect(receiver.requests.map((r) => [r.id, r.status, r.signatureValid, r.body])).toEqual([
      ['evt_cli_1', 503, true, '{"order":42}'],
      ['evt_cli_1', 200, true, '{"order":42}'],
    ]);
    expect(receiver.requests[1]?.headers['x-tenant']).toBe('acme');
    expect(receiver.requests[1]?.headers['content-type']).toBe('application/json');
    expect((await status()).pending).toBe(0);
  });

  it('reads --data from a file and from standard input; the secret may come from the environment', async () => {
    const file = join(dir, 'body.json');
    await writeFile(file, '{"from":"file"}');
    expect((await run('send', receiver.url, '--data', `@${file}`, '--dir', outboxDir())).code).toBe(0);
    const piped = await runCli(built.cli, ['send', receiver.url, '--data', '@-', '--dir', outboxDir()], {
      input: '{"from":"stdin"}',
      env: { WEBHOOK_OUTBOX_SECRET: secret },
    });
    expect(piped.code).toBe(0);
    expect(receiver.requests.map((r) => [r.body, r.signatureValid])).toEqual([
      ['{"from":"file"}', false],
      ['{"from":"stdin"}', true],
    ]);
  });

  it('signs with every secret of WEBHOOK_OUTBOX_SECRET while rotating (space-separated, new first)', async () => {
    const next = `whsec_${Buffer.from('the next secret, thirty-two byte').toString('base64')}`;
    const sent = await runCli(built.cli, ['send', receiver.url, '--data', '{"rotating":true}', '--dir', outboxDir()], {
      env: { WEBHOOK_OUTBOX_SECRET: `${next} ${secret}` },
    });
    expect(sent.code).toBe(0);
    const [request] = receiver.requests;
    expect(request?.signatureValid).toBe(true);
    expect(String(request?.headers['webhook-signature']).split(' ')).toHaveLength(2);
  });

  it('signs with an ed25519 whsk_ key next to a whsec_ secret; a receiver holding only the whpk_ verifies it', async () => {
    const pair = generateSigningKeyPair();
    const rx = await startFlakyReceiver({ secret: pair.publicKey });
    try {
      const sent = await runCli(built.cli, ['send', rx.url, '--data', '{"asymmetric":true}', '--dir', outboxDir()], {
        env: { WEBHOOK_OUTBOX_SECRET: `${pair.secretKey} ${secret}` },
      });
      expect(sent.code).toBe(0);
      expect(rx.requests.map((r) => r.signatureValid)).toEqual([true]);
      expect(String(rx.requests[0]?.headers['webhook-signature'])).toMatch(/^v1a,\S+ v1,\S+$/);
    } finally {
      await rx.close();
    }
  });

  it('exits 1 with a dead letter on a permanent failure, and 4 when still pending at --timeout (kept on disk)', async () => {
    receiver.setScript([{ status: 400, body: 'bad payload' }]);
    const dead = await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_dead');
    expect(dead.code).toBe(1);
    expect(dead.stderr).toContain('dead letter evt_dead: http-status');

    receiver.setScript(() => 500);
    const pending = await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_pending', '--timeout', '300ms');
    expect(pending.code).toBe(4);
    expect(pending.stderr).toContain('still pending');
    expect(await status()).toMatchObject({ pending: 1, dead: 1, ownerPid: null, inFlight: 0 });

    // The id of a dead letter is not accepted again: said at once, exit 1, nothing enqueued.
    const again = await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_dead', '--timeout', '1h');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('evt_dead is already a dead letter (http-status)');
    expect(await status()).toMatchObject({ pending: 1, dead: 1 });
  });

  it('sends a JSON string as JSON, and rejects a bad id or header before creating anything (exit 2)', async () => {
    expect((await run('send', receiver.url, '--data', '"hello"', '--dir', outboxDir())).code).toBe(0);
    expect(receiver.requests.map((r) => [r.headers['content-type'], r.body])).toEqual([['application/json', '"hello"']]);
    const fresh = join(dir, 'never-created');
    for (const extra of [['--id', 'has space'], ['--header', 'webhook-id: mine']]) {
      const result = await run('send', receiver.url, '--data', '{}', '--dir', fresh, ...extra);
      expect(result.code).toBe(2);
      await expect(stat(fresh)).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });
});

describe('webhook-outbox dead, status and flush', () => {
  useDirAndReceiver();

  it('lists, replays, flushes and purges dead letters', async () => {
    receiver.setScript([400, 422]);
    for (const id of ['evt_a', 'evt_b']) {
      expect((await run('send', receiver.url, '--data', `{"id":"${id}"}`, '--dir', outboxDir(), '--id', id, '--header', 'authorization: Bearer s3cret')).code).toBe(1);
    }
    const listed = await run('dead', 'list', '--dir', outboxDir(), '--json');
    expect(listed.code).toBe(0);
    const letters = JSON.parse(listed.stdout) as { id: string; reason: string; lastStatus: number; headers: Record<string, string>; bodyPreview: string }[];
    expect(letters.map((l) => [l.id, l.reason, l.lastStatus])).toEqual([
      ['evt_a', 'http-status', 400],
      ['evt_b', 'http-status', 422],
    ]);
    expect(letters[0]?.headers.authorization).toBe('[redacted]');
    expect(listed.stdout).not.toContain('s3cret');
    const table = await run('dead', 'list', '--dir', outboxDir());
    expect(table.stdout).toMatch(/evt_a\s+http-status\s+1\s+\S+\s+HTTP 400/);
    expect(table.stdout).toContain('2 dead letters.');

    expect((await run('dead', 'replay', 'evt_a', 'evt_nope', '--dir', outboxDir())).code).toBe(1);
    expect((await status()).dead).toBe(2);
    const replayed = await run('dead', 'replay', 'evt_a', '--dir', outboxDir());
    expect([replayed.code, replayed.stdout]).toEqual([0, 'Replayed 1 dead letter: pending again.\n']);
    expect(await status()).toMatchObject({ pending: 1, dead: 1 });
    expect((await run('dead', 'replay', 'evt_b', '--url', 'ftp://x.test/', '--dir', outboxDir())).code).toBe(2);
    const moved = await run('dead', 'replay', 'evt_b', '--url', `${receiver.url}?token=abcdefgh12345`, '--dir', outboxDir());
    expect([moved.code, moved.stdout]).toEqual([0, `Replayed 1 dead letter: pending again, to ${receiver.url}?token=***.\n`]);
    expect((await status()).endpoints).toEqual({ [receiver.url]: { pending: 1, dead: 0 }, [`${receiver.url}?token=***`]: { pending: 1, dead: 0 } });

    const flushed = await run('flush', '--dir', outboxDir(), '--secret', secret, '--quiet');
    expect(flushed.code).toBe(0);
    expect(flushed.stdout).toContain('2 pending at start: 2 delivered, 0 dead-lettered, 0 still pending');
    expect(receiver.deliveredIds()).toEqual(new Set(['evt_a', 'evt_b']));
    expect(receiver.requests.find((r) => r.id === 'evt_b' && r.status === 200)?.path).toBe(`${new URL(receiver.url).pathname}?token=abcdefgh12345`);
    expect(receiver.requests.at(-1)?.signatureValid).toBe(true);

    const noIds = await run('dead', 'purge', '--dir', outboxDir());
    expect(noIds.code).toBe(2);
    expect(noIds.stderr).toContain('--all');
    expect((await run('dead', 'purge', 'evt_nope', '--dir', outboxDir())).code).toBe(1);
    expect((await run('dead', 'purge', '--all', '--dir', outboxDir())).code).toBe(0);
    expect(await status()).toMatchObject({ pending: 0, dead: 0 });
    expect((await run('dead', 'list', '--dir', outboxDir())).stdout).toBe('No dead letters.\n');
  });

  it('dead list, replay and purge select by --endpoint, --since and --until', async () => {
    receiver.setScript([400, 400]);
    const other = `${receiver.url}?tenant=b`;
    expect((await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_a')).code).toBe(1);
    expect((await run('send', other, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_b')).code).toBe(1);
    const listed = async (...args: string[]): Promise<string[]> => {
      const result = await run('dead', 'list', '--dir', outboxDir(), '--json', ...args);
      expect(result.code).toBe(0);
      return (JSON.parse(result.stdout) as { id: string }[]).map((l) => l.id);
    };
    expect(await listed('--endpoint', receiver.url)).toEqual(['evt_a']);
    expect(await listed('--endpoint', other, '--since', '1h')).toEqual(['evt_b']);
    expect(await listed('--until', '2099-01-01')).toEqual(['evt_a', 'evt_b']);
    expect(await listed('--until', '1h')).toEqual([]);
    expect((await run('dead', 'purge', '--until', '1h', '--dir', outboxDir())).stdout).toBe('Purged 0 dead letters.\n');

    const replayed = await run('dead', 'replay', '--endpoint', other, '--url', receiver.url, '--dir', outboxDir());
    expect([replayed.code, replayed.stdout]).toEqual([0, `Replayed 1 dead letter: pending again, to ${receiver.url}.\n`]);
    expect((await status()).endpoints).toEqual({ [receiver.url]: { pending: 1, dead: 1 } });
    const purged = await run('dead', 'purge', '--endpoint', receiver.url, '--since', '2026-01-01', '--dir', outboxDir());
    expect([purged.code, purged.stdout]).toEqual([0, 'Purged 1 dead letter.\n']);
    expect(await status()).toMatchObject({ pending: 1, dead: 0 });
  });

  it('send --ordering-key waits for the earlier events of its key in the directory', async () => {
    receiver.setScript([{ status: 503, headers: { 'retry-after': '1' } }, 200, 200]);
    // The first is still pending (503, retried a second later) when its command gives up waiting.
    expect((await run('send', receiver.url, '--data', '{"n":1}', '--dir', outboxDir(), '--id', 'evt_1', '--ordering-key', 'order-9', '--timeout', '50ms')).code).toBe(4);
    const second = await run('send', receiver.url, '--data', '{"n":2}', '--dir', outboxDir(), '--id', 'evt_2', '--ordering-key', 'order-9');
    expect(second.code).toBe(0);
    expect(receiver.requests.map((r) => [r.id, r.status])).toEqual([
      ['evt_1', 503],
      ['evt_1', 200],
      ['evt_2', 200],
    ]);
    receiver.setScript([400]);
    expect((await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_3', '--ordering-key', 'order-9')).code).toBe(1);
    const listed = JSON.parse((await run('dead', 'list', '--dir', outboxDir(), '--json')).stdout) as { id: string; orderingKey?: string }[];
    expect(listed.map((l) => [l.id, l.orderingKey])).toEqual([['evt_3', 'order-9']]);
    expect((await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--ordering-key', '')).code).toBe(2);
  });

  it('send --supersede leaves the earlier waiting events of its key in the directory unsent, and says so', async () => {
    receiver.setScript([{ status: 503, headers: { 'retry-after': '1' } }]);
    expect((await run('send', receiver.url, '--data', '{"n":1}', '--dir', outboxDir(), '--id', 'evt_1', '--ordering-key', 'c-7', '--timeout', '50ms')).code).toBe(4);
    const second = await run('send', receiver.url, '--data', '{"n":2}', '--dir', outboxDir(), '--id', 'evt_2', '--ordering-key', 'c-7', '--supersede');
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('evt_1 superseded by evt_2 (not sent)');
    expect(receiver.requests.map((r) => [r.id, r.status])).toEqual([
      ['evt_1', 503],
      ['evt_2', 200],
    ]);
    expect(await run('status', '--dir', outboxDir(), '--json').then((r) => JSON.parse(r.stdout) as { pending: number; dead: number })).toMatchObject({ pending: 0, dead: 0 });
    const alone = await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--supersede');
    expect([alone.code, alone.stderr]).toEqual([2, expect.stringContaining('supersede')]);
    // flush accounts for what it left unsent.
    const app = await Outbox.open({ dir: outboxDir(), url: receiver.url, autoFlush: false });
    for (let n = 0; n < 3; n++) await app.enqueue({ id: `evt_s${n}`, body: { n }, orderingKey: 'c-8', supersede: true });
    await app.close();
    const flushed = await run('flush', '--dir', outboxDir(), '--quiet');
    expect([flushed.code, flushed.stdout]).toEqual([0, expect.stringContaining('3 pending at start: 1 delivered, 2 superseded, 0 dead-lettered, 0 still pending')]);
    expect(receiver.requests.at(-1)?.id).toBe('evt_s2');
  });

  it('move sends what a stopped app left for one URL (pending and dead) to another; flush delivers it there', async () => {
    receiver.setScript([503, 400]);
    const gone = 'http://127.0.0.1:9/gone?key=abcdefgh12345';
    expect((await run('send', gone, '--data', '{"n":1}', '--dir', outboxDir(), '--id', 'evt_p', '--timeout', '1ms')).code).toBe(4);
    expect((await run('send', receiver.url, '--data', '{"n":2}', '--dir', outboxDir(), '--id', 'evt_d')).code).toBe(1);
    expect((await status()).endpoints).toMatchObject({ 'http://127.0.0.1:9/gone?key=***': { pending: 1, dead: 0 }, [receiver.url]: { pending: 0, dead: 1 } });
    expect((await run('move', 'http://127.0.0.1:9/x', 'ftp://x.test/', '--dir', outboxDir())).code).toBe(2);
    const moved = await run('move', gone, receiver.url, '--dir', outboxDir());
    expect([moved.code, moved.stdout]).toEqual([0, `Moved 1 event from http://127.0.0.1:9/gone?key=*** to ${receiver.url}.\n`]);
    expect((await status()).endpoints).toEqual({ [receiver.url]: { pending: 1, dead: 1 } });
    expect((await run('flush', '--dir', outboxDir(), '--quiet')).code).toBe(0);
    expect(receiver.deliveredIds()).toEqual(new Set(['evt_p']));
  });

  it('flush --block-private-addresses refuses what the app would refuse; --allow-address lets one through', async () => {
    const gone = 'http://127.0.0.1:9/gone';
    expect((await run('send', gone, '--data', '{"n":1}', '--dir', outboxDir(), '--id', 'evt_local', '--timeout', '1ms')).code).toBe(4);
    expect((await run('move', gone, receiver.url, '--dir', outboxDir())).code).toBe(0);
    expect((await run('flush', '--dir', outboxDir(), '--quiet', '--allow-address', '127.0.0.1')).code).toBe(2);
    expect((await run('flush', '--dir', outboxDir(), '--quiet', '--block-private-addresses', '--allow-address', 'localhost')).code).toBe(2);
    expect((await run('flush', '--dir', outboxDir(), '--quiet', '--block-private-addresses')).code).toBe(1);
    expect(receiver.requests).toHaveLength(0);
    const [letter] = JSON.parse((await run('dead', 'list', '--dir', outboxDir(), '--json')).stdout) as { id: string; reason: string }[];
    expect(letter).toMatchObject({ id: 'evt_local', reason: 'invalid' });
    expect((await run('dead', 'replay', '--dir', outboxDir())).code).toBe(0);
    expect((await run('flush', '--dir', outboxDir(), '--quiet', '--block-private-addresses', '--allow-address', '127.0.0.0/8')).code).toBe(0);
    expect(receiver.deliveredIds()).toEqual(new Set(['evt_local']));
  });

  it('send --dir delivers what the app left there through the same guard (the environment asks for it)', async () => {
    // The stopped app's directory: a customer's event for an internal address, queued before the guard was on.
    const internal = `http://127.0.0.2:${new URL(receiver.url).port}/internal-admin/delete-everything`;
    const app = await Outbox.open({ dir: outboxDir(), autoFlush: false });
    await app.enqueue({ id: 'evt_internal', url: internal, body: { customer: 'evil' } });
    await app.close();
    const env = { WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES: '1' };
    // A test event through that directory: refused itself, before anything is delivered.
    const refused = await runCli(built.cli, ['send', receiver.url, '--data', '{"ping":1}', '--dir', outboxDir(), '--timeout', '3s'], { env });
    expect(refused.code).toBe(2);
    expect((await status()).pending).toBe(1);
    // Allowed to the receiver's address only: the test event goes out, the queued one is refused, not tried.
    const allowed = await runCli(built.cli, ['send', receiver.url, '--data', '{"ping":2}', '--dir', outboxDir(), '--allow-address', '127.0.0.1', '--timeout', '3s'], { env });
    expect(allowed.code).toBe(0);
    const letters = JSON.parse((await run('dead', 'list', '--dir', outboxDir(), '--json')).stdout) as { id: string; reason: string; lastError: string }[];
    expect(letters).toEqual([expect.objectContaining({ id: 'evt_internal', reason: 'invalid', lastError: 'ERR_NETWORK EPRIVATEADDRESS' })]);
  });

  it('show tells where one event stands: pending with its attempts, dead with the reason, gone once delivered', async () => {
    const gone = 'http://127.0.0.1:9/gone?token=abcdefgh12345';
    expect((await run('send', gone, '--data', '{"n":1}', '--dir', outboxDir(), '--id', 'evt_wait', '--header', 'authorization: Bearer s3cr3t-t0ken', '--timeout', '300ms')).code).toBe(4);
    const pending = await run('show', 'evt_wait', '--dir', outboxDir());
    expect(pending.code).toBe(0);
    expect(pending.stdout).toMatch(/^evt_wait: pending, next attempt at \S+, \d+ attempts?, created /);
    expect(pending.stdout).toContain('ERR_NETWORK ECONNREFUSED');
    expect(pending.stdout).toContain('token=***');
    const json = JSON.parse((await run('show', 'evt_wait', '--dir', outboxDir(), '--json')).stdout) as { state: string; attempts: number; headers: Record<string, string>; history: unknown[] };
    expect(json).toMatchObject({ state: 'pending', headers: { authorization: '[redacted]' } });
    expect(json.history.length).toBeGreaterThan(0);
    expect(JSON.stringify(json)).not.toContain('s3cr3t');
    receiver.setScript([422]);
    expect((await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_bad')).code).toBe(1);
    const dead = await run('show', 'evt_bad', '--dir', outboxDir());
    expect([dead.code, dead.stdout]).toEqual([0, expect.stringMatching(/^evt_bad: dead \(http-status\) since \S+, 1 attempt, /)]);
    expect(dead.stdout).toContain('HTTP 422');
    expect((await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_ok')).code).toBe(0);
    for (const id of ['evt_ok', 'evt_never']) {
      const missing = await run('show', id, '--dir', outboxDir());
      expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining(`${id} is not in the outbox`)]);
    }
  });

  it('status and dead list never print user info or query values of endpoint URLs', async () => {
    receiver.setScript([400]);
    const url = new URL(receiver.url);
    url.username = 'user';
    url.password = 'SuperSecretPw';
    url.search = '?token=SuperSecretToken&v=2';
    expect((await run('send', url.toString(), '--data', '{}', '--dir', outboxDir(), '--id', 'evt_token')).code).toBe(1);
    for (const args of [['status', '--json'], ['status'], ['dead', 'list'], ['dead', 'list', '--json']]) {
      const result = await run(...args, '--dir', outboxDir());
      expect(result.code).toBe(0);
      expect(result.stdout).not.toContain('SuperSecret');
      expect(result.stdout).toContain('token=***');
    }
  });

  it('status reads a directory another process owns, which flush and replay cannot take', async () => {
    receiver.setScript(() => ({ hang: true }));
    const owner = startCli(built.cli, ['send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--id', 'evt_held', '--timeout', '20s']);
    try {
      await until(() => receiver.requests.length > 0);
      const report = await status();
      expect(report).toMatchObject({ ownerPid: owner.pid, pending: 1, inFlight: null, dead: 0 });
      expect(report.endpoints[receiver.url]).toEqual({ pending: 1, dead: 0 });
      const text = await run('status', '--dir', outboxDir());
      expect(text.stdout).toContain(`pid ${owner.pid}`);
      expect(text.stdout).toContain(receiver.url);

      const flush = await run('flush', '--dir', outboxDir(), '--quiet');
      expect(flush.code).toBe(3);
      expect((await run('dead', 'replay', '--dir', outboxDir())).code).toBe(3);
    } finally {
      owner.kill('SIGKILL');
    }
  });

  it('flush exits 4 when --timeout runs out, leaving the rest on disk', async () => {
    receiver.setScript(() => 503);
    expect((await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--timeout', '100ms')).code).toBe(4);
    const result = await run('flush', '--dir', outboxDir(), '--timeout', '300ms', '--quiet');
    expect(result.code).toBe(4);
    expect(result.stdout).toContain('1 still pending');
    expect((await status()).pending).toBe(1);
  });
});

describe('webhook-outbox send and flush --proxy', () => {
  useDirAndReceiver();
  const PASSWORD = 'pr0xy-pa55word';
  const BASIC = Buffer.from(`egress:${PASSWORD}`).toString('base64');
  let proxy: TestProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });
  const withCredentials = (url: string): string => url.replace('http://', `http://egress:${PASSWORD}@`);
  const expectNoPassword = (...outputs: string[]): void => {
    for (const output of outputs) {
      expect(output).not.toContain(PASSWORD);
      expect(output).not.toContain(BASIC);
    }
  };

  it('sends through --proxy with its credentials, signed, and shows no password', async () => {
    proxy = await startTestProxy();
    const result = await run('send', receiver.url, '--data', '{"via":"proxy"}', '--dir', outboxDir(), '--secret', secret, '--id', 'evt_px', '--proxy', withCredentials(proxy.url));
    expect(result.code).toBe(0);
    expect(receiver.requests.map((r) => [r.id, r.signatureValid])).toEqual([['evt_px', true]]);
    expect(proxy.tunnelledIds()).toEqual(['evt_px']);
    expect(proxy.seen).toEqual([{ method: 'CONNECT', target: `127.0.0.1:${receiver.port}`, auth: `Basic ${BASIC}` }]);
    expectNoPassword(result.stdout, result.stderr);
  });

  it('WEBHOOK_OUTBOX_PROXY: a denied endpoint is a dead letter at once, shown without the password; flush sends it once allowed', async () => {
    let deny = true;
    proxy = await startTestProxy(() => (deny ? 403 : 'tunnel'));
    const env = { WEBHOOK_OUTBOX_PROXY: withCredentials(proxy.url) };
    const sent = await runCli(built.cli, ['send', receiver.url, '--data', '{"n":1}', '--dir', outboxDir(), '--id', 'evt_denied'], { env });
    expect(sent.code).toBe(1);
    expect(sent.stderr).toContain('dead letter evt_denied: invalid after 1 attempt(s) (ERR_NETWORK EPROXY: the proxy answered HTTP 403)');
    const listed = await run('dead', 'list', '--dir', outboxDir(), '--json');
    const shown = await run('show', 'evt_denied', '--dir', outboxDir());
    expect(listed.stdout).toContain('EPROXY: the proxy answered HTTP 403');
    expect(shown.stdout).toContain('EPROXY: the proxy answered HTTP 403');
    expect((await run('dead', 'replay', '--dir', outboxDir())).code).toBe(0);
    deny = false;
    const flushed = await runCli(built.cli, ['flush', '--dir', outboxDir(), '--quiet'], { env });
    expect(flushed.code).toBe(0);
    expect(receiver.deliveredIds()).toEqual(new Set(['evt_denied']));
    expect(proxy.tunnelledIds()).toEqual(['evt_denied']);
    expectNoPassword(sent.stdout, sent.stderr, listed.stdout, listed.stderr, shown.stdout, shown.stderr, flushed.stdout, flushed.stderr);
  });

  it('exits 2 for a bad --proxy (not shown) or one with --block-private-addresses, with nothing created', async () => {
    const bad = await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--proxy', `socks5://egress:${PASSWORD}@127.0.0.1:1080`);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--proxy' (or WEBHOOK_OUTBOX_PROXY)");
    expect(bad.stderr).toContain('SOCKS proxies are not supported');
    const both = await run('send', receiver.url, '--data', '{}', '--dir', outboxDir(), '--proxy', 'http://127.0.0.1:3128', '--block-private-addresses');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('cannot be combined with --block-private-addresses');
    const fromEnv = await runCli(built.cli, ['flush', '--dir', outboxDir(), '--proxy', 'http://127.0.0.1:3128'], { env: { WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES: '1' } });
    expect(fromEnv.code).toBe(2);
    expectNoPassword(bad.stdout, bad.stderr);
    await expect(stat(outboxDir())).rejects.toMatchObject({ code: 'ENOENT' });
    expect(receiver.requests).toHaveLength(0);
  });

  it('does not follow HTTPS_PROXY or HTTP_PROXY, and says so without showing them', async () => {
    proxy = await startTestProxy();
    const result = await runCli(built.cli, ['send', receiver.url, '--data', '{}', '--dir', outboxDir()], {
      env: { HTTP_PROXY: withCredentials(proxy.url), HTTPS_PROXY: withCredentials(proxy.url) },
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('note: HTTPS_PROXY is set but not used');
    expect(proxy.seen).toEqual([]);
    expect(receiver.requests).toHaveLength(1);
    expectNoPassword(result.stdout, result.stderr);
  });
});

describe('webhook-outbox keygen', () => {
  it('prints a fresh key pair, as text or JSON, whose public key is that of its secret key', async () => {
    const json = await run('keygen', '--json');
    expect(json.code).toBe(0);
    const pair = JSON.parse(json.stdout) as SigningKeyPair;
    expect(signingPublicKey(pair.secretKey)).toBe(pair.publicKey);
    const text = await run('keygen');
    expect(text.code).toBe(0);
    const secretKey = /\bwhsk_\S+/.exec(text.stdout)?.[0] ?? '';
    expect(signingPublicKey(secretKey)).toBe(/\bwhpk_\S+/.exec(text.stdout)?.[0]);
    expect(secretKey).not.toBe(pair.secretKey);
  });
});

describe.concurrent('bad arguments and help', () => {
  it.each([
    [['send', 'ftp://example.test/x', '--data', '{}'], 'protocol must be http: or https:'],
    [['send', 'http://unix:/var/run/app.sock:/hook', '--data', '{}'], 'Unix domain socket'],
    [['send', 'http://example.test/x'], "required option '--data"],
    [['send', 'http://example.test/x', '--data', '{oops'], 'not valid JSON'],
    [['send', 'http://example.test/x', '--data', '@/nonexistent/body.json'], 'cannot read'],
    [['send', 'http://example.test/x', '--data', '{}', '--secret', 'whsec_short'], "expected 'whsec_'"],
    [['send', 'http://example.test/x', '--data', '{}', '--secret', `${secret} whsec_short`], 'secret 2 of 2: expected'],
    [['send', 'http://example.test/x', '--data', '{}', '--secret', 'whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4='], "'whpk_' public key cannot sign"],
    [['send', 'http://example.test/x', '--data', '{}', '--header', 'no-colon'], 'expected name:value'],
    [['send', 'http://example.test/x', '--data', '{}', '--timeout', 'soon'], 'expected a duration'],
    [['status', '--dir', '/nonexistent/outbox'], 'no outbox directory'],
    [['flush', '--dir', '/nonexistent/outbox'], 'no outbox directory'],
    [['dead', 'list', '--dir', '/nonexistent/outbox'], 'no outbox directory'],
    // A directory that exists but was never an outbox (a mistyped --dir) is not an empty outbox.
    [['status', '--dir', '.'], 'holds no outbox'],
    [['dead', 'list', '--dir', '.'], 'holds no outbox'],
    [['flush', '--dir', '.'], 'holds no outbox'],
    [['dead', 'purge', 'a', '--all', '--dir', '.'], 'not both'],
    [['dead', 'replay', '--url', 'http://127.0.0.1:9/new', '--dir', '.'], '--url needs the ids'],
    [['dead', 'replay', '--url', 'http://127.0.0.1:9/new', '--since', '1h', '--dir', '.'], '--url needs the ids'],
    [['dead', 'purge', '--endpoint', 'http://127.0.0.1:9/a', '--all', '--dir', '.'], 'not both'],
    [['dead', 'list', '--since', 'yesterday', '--dir', '.'], 'expected a date'],
    [['dead', 'list', '--until', '2026-13-40', '--dir', '.'], 'expected a date'],
    [['dead', 'replay', 'a', '--url', 'ftp://x.test/', '--dir', '.'], "option '--url'"],
    [['move', 'http://127.0.0.1:9/a', 'ftp://x.test/', '--dir', '.'], "argument 'to'"],
    [['move', 'http://127.0.0.1:9/a', 'http://unix:/var/run/app.sock:/hook', '--dir', '.'], "argument 'to'"],
    [['dead', 'frobnicate'], "unknown command 'frobnicate'"],
    [['demo', '--events', '0'], 'expected an integer >= 1'],
    [['demo', '--kill-at', '1.5'], 'below 1'],
    [['launch'], "unknown command 'launch'"],
    [[], 'Usage: webhook-outbox'],
  ])('%j exits 2 and says why', async (args, message) => {
    const result = await run(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('never echoes a bad secret, header or URL, which may carry credentials', async () => {
    const cases: [string[], Record<string, string>?][] = [
      [['send', 'http://example.test/x', '--data', '{}', '--secret', 'whsec_SuperSecretButTooShort']],
      [['send', 'http://example.test/x', '--data', '{}', '--secret', 'whsk_SuperSecretButTooShort']],
      [['send', 'http://example.test/x', '--data', '{}'], { WEBHOOK_OUTBOX_SECRET: 'whsec_SuperSecretButTooShort' }],
      [['send', 'http://example.test/x', '--data', '{}'], { WEBHOOK_OUTBOX_SECRET: `${secret} whsec_SuperSecretButTooShort` }],
      [['send', 'http://example.test/x', '--data', '{}', '--header', 'authorization Bearer sk_live_SuperSecret']],
      [['send', 'ftp://user:SuperSecret@example.test/x', '--data', '{}']],
    ];
    for (const [args, env] of cases) {
      const result = await runCli(built.cli, args, env === undefined ? {} : { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('not shown');
      expect(result.stderr).not.toContain('SuperSecret');
    }
  });

  it('bad arguments create nothing on disk', async () => {
    // A directory of its own: the tests of this block run concurrently, and each one's hooks replace (and
    // then delete) the shared `dir` while the others still run.
    const own = await mkdtemp(join(tmpdir(), 'webhook-outbox-cli-bad-'));
    try {
      expect((await run('send', 'http://example.test/x', '--data', '{oops', '--dir', join(own, 'outbox'))).code).toBe(2);
      expect((await run('dead', 'purge', '--dir', own)).code).toBe(2);
      expect(await readdir(own)).toEqual([]);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it.each([[[]], [['demo']], [['send']], [['status']], [['flush']], [['move']], [['dead']], [['dead', 'list']], [['dead', 'replay']], [['dead', 'purge']]])(
    '%j --help exits 0',
    async (args) => {
      const result = await run(...args, '--help');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('Usage: webhook-outbox');
    },
  );
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}
