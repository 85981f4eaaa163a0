/**
 * The `webhook-outbox` command line: commands, their options, and how errors become exit codes.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Writable } from 'node:stream';
import type { Outbox } from '../outbox.js';
import { checkPurgeArgs, deadList, deadPurge, deadReplay } from './commands/dead.js';
import type { DeadLetterFilters } from './commands/dead.js';
import { flush } from './commands/flush.js';
import { DEFAULT_TABLE, inspectTarget, targetOf, withOutbox } from './commands/outbox-target.js';
import type { OutboxTarget, TargetFlags } from './commands/outbox-target.js';
import { send } from './commands/send.js';
import { showEvent } from './commands/show.js';
import { printStatus, readStatus } from './commands/status.js';
import { generateSigningKeyPair } from '../signing/ed25519-keys.js';
import { runDemo } from './demo/run-demo.js';
import { runDemoWorker } from './demo/worker.js';
import { CliError, ExitCode, exitCodeOf } from './exit-codes.js';
import type { ExitCodeValue } from './exit-codes.js';
import { formatTable, redactUrl } from './format.js';
import { duration, header, httpUrl, httpUrlAs, integerAtLeast, pointInTime, postgresUrl, proxyUrl, readJsonData, signingSecret } from './parse.js';

/** Where the CLI writes, and the script a child process runs to get this CLI. */
export interface CliIo {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  /** This CLI's entry file, for the demo's child processes. */
  entry: string;
}

/** The default outbox directory. */
export const DEFAULT_DIR = '.outbox';

/** The dead-letter filters among a command's options. */
function filtersOf({ endpoint, since, until }: DeadLetterFilters): DeadLetterFilters {
  return { endpoint, since, until };
}

function fraction(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) {
    throw new InvalidArgumentError(`expected a number from 0 (never) to below 1, got "${value}".`);
  }
  return n;
}

/**
 * commander quotes what it did not understand whole (`unknown option '--proxi=http://u:pw@h'`, `unknown
 * command 'http://u:pw@h'`): the value of an option and the user info of any URL are not shown.
 */
export function scrubArguments(text: string): string {
  return text.replace(/^(error: unknown option '-{1,2}[^=']*)=.*'$/gm, "$1=<not shown>'").replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/]*@/gi, '$1<not shown>@');
}

/** Builds the program; `setCode` receives each command's exit code. */
export function createProgram(io: CliIo, setCode: (code: ExitCodeValue) => void): Command {
  const program = new Command('webhook-outbox')
    .description('Send webhooks without ever losing one: inspect, drain and replay an outbox directory or PostgreSQL table, or run the demo.')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(scrubArguments(text)),
    })
    .showHelpAfterError('(run with --help for usage)')
    .allowExcessArguments(false);

  program
    .command('demo')
    .description(
      'Replay the incident locally: a receiver answers 500s, then 503 + Retry-After, then refuses connections, ' +
        'then recovers with limited capacity, while a child process pushes events through an outbox on disk and ' +
        'is SIGKILLed once midway. Exits 0 only when nothing was lost.',
    )
    .addOption(new Option('--events <n>', 'events to send').argParser(integerAtLeast(1)).default(3000))
    .addOption(new Option('--rate <n>', 'events enqueued per second').argParser(integerAtLeast(1)).default(600))
    .addOption(new Option('--phase <duration>', 'length of the 500 and 503 phases (refusals last half)').argParser(duration).default(3000, '3s'))
    .addOption(new Option('--capacity <n>', 'concurrent requests the recovered receiver takes before 429').argParser(integerAtLeast(1)).default(8))
    .addOption(new Option('--concurrency <n>', 'outbox concurrency per endpoint').argParser(integerAtLeast(1)).default(16))
    .addOption(new Option('--kill-at <fraction>', 'SIGKILL the producer after this fraction of the events (0: never)').argParser(fraction).default(0.5))
    .addOption(new Option('--timeout <duration>', 'give up after this long; undelivered events count as lost').argParser(duration).default(90_000, '90s'))
    .option('--dir <path>', 'outbox directory (default: a new temporary directory, removed at the end)')
    .option('--keep', 'keep the outbox directory', false)
    .option('--quiet', 'no live progress line', false)
    .action(async (options: { events: number; rate: number; phase: number; capacity: number; concurrency: number; killAt: number; timeout: number; dir?: string; keep: boolean; quiet: boolean }) => {
      setCode(
        await runDemo(
          {
            events: options.events,
            rate: options.rate,
            phaseMs: options.phase,
            capacity: options.capacity,
            concurrency: options.concurrency,
            killAt: options.killAt,
            timeoutMs: options.timeout,
            dir: options.dir,
            keep: options.keep,
            quiet: options.quiet,
          },
          { stdout: io.stdout, stderr: io.stderr, workerEntry: io.entry },
        ),
      );
    });

  program
    .command('demo-worker', { hidden: true })
    .argument('<args>', 'JSON arguments from the demo')
    .action(async (args: string) => {
      setCode(await runDemoWorker(args));
    });

  const dirOption = (): Option => new Option('--dir <path>', 'outbox directory').default(DEFAULT_DIR).env('WEBHOOK_OUTBOX_DIR');
  /** `--dir`, or `--postgres` and `--table`: where the outbox is (outbox-target.ts makes the store from them). */
  const targetOptions = (command: Command): Command =>
    command
      .addOption(dirOption().conflicts('postgres'))
      .addOption(
        new Option('--postgres <connection-string>', 'instead of --dir: the PostgresStore table in this database, postgres://user:password@host:5432/db (better: the environment variable)')
          .argParser(postgresUrl)
          .env('WEBHOOK_OUTBOX_POSTGRES'),
      )
      .addOption(new Option('--table <name>', "with --postgres: the table, as PostgresStore's table option").default(DEFAULT_TABLE).env('WEBHOOK_OUTBOX_TABLE'));
  const target = (options: TargetFlags, command: Command): OutboxTarget => targetOf(options, command.getOptionValueSource('table') === 'cli');
  const secretOption = (): Option =>
    new Option('--secret <key>', 'Standard Webhooks signing secret, whsec_... or an ed25519 whsk_... key (better: the environment variable)')
      .argParser(signingSecret)
      .env('WEBHOOK_OUTBOX_SECRET');
  // `send` and `flush` deliver what the app left in the directory, whose URLs may be its customers'.
  const blockOption = (): Option =>
    new Option('--block-private-addresses', "refuse loopback, private and link-local addresses, as the app's blockPrivateAddresses does").env(
      'WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES',
    );
  const allowOption = (): Option => new Option('--allow-address <address-or-cidr...>', 'with --block-private-addresses: still reachable (repeatable)');
  const proxyOption = (): Option =>
    new Option('--proxy <url>', "send through this HTTP proxy, as the app's proxy option does: http:// or https://, user:password@ allowed (better: the environment variable)")
      .argParser(proxyUrl)
      .env('WEBHOOK_OUTBOX_PROXY');

  program
    .command('send')
    .description('Enqueue one event durably in the outbox directory and deliver it. Exit code: 0 delivered, 1 dead-lettered, 3 directory locked, 4 still pending at --timeout (it stays on disk).')
    .argument('<url>', 'http: or https: URL to POST to', httpUrl)
    .requiredOption('--data <json|@file>', 'the JSON body: inline, @path to a file, or @- for standard input')
    .addOption(dirOption())
    .addOption(secretOption())
    .addOption(new Option('--header <name:value...>', 'extra request header (repeatable)').argParser(header))
    .option('--id <id>', 'idempotency key sent as webhook-id (default: generated)')
    .option('--ordering-key <key>', 'sent only after the events with this key enqueued before it were delivered or dead-lettered')
    .option('--supersede', 'with --ordering-key: latest state wins, the events of the key enqueued before it and still waiting are not sent')
    .addOption(new Option('--timeout <duration>', 'how long to wait for the outcome').argParser(duration).default(30_000, '30s'))
    .addOption(blockOption())
    .addOption(allowOption())
    .addOption(proxyOption())
    .action(async (url: string, options: { data: string; dir: string; secret?: string[]; header?: Record<string, string>; id?: string; orderingKey?: string; supersede?: boolean; timeout: number } & AddressFlags) => {
      const policy = networkPolicy(options, io.stderr);
      const body = await readJsonData(options.data);
      const { dir, secret, id, orderingKey } = options;
      const supersede = options.supersede === true;
      setCode(
        await send(
          { url, body, dir, secret, headers: options.header ?? {}, id, orderingKey, supersede, timeoutMs: options.timeout, ...policy },
          io.stdout,
          io.stderr,
        ),
      );
    });

  targetOptions(program.command('flush'))
    .description(
      'Deliver everything pending in an outbox directory a stopped app left behind, or in an outbox table (alongside the apps that use it). ' +
        'Exit code: 0 drained, 1 some events were dead-lettered, 3 directory locked, 4 --timeout ran out (the rest stays in the outbox).',
    )
    .addOption(secretOption())
    .addOption(new Option('--timeout <duration>', 'give up after this long').argParser(duration).default(600_000, '10m'))
    .addOption(blockOption())
    .addOption(allowOption())
    .addOption(proxyOption())
    .option('--quiet', 'no progress bar', false)
    .action(async (options: TargetFlags & { secret?: string[]; timeout: number; quiet: boolean } & AddressFlags, command: Command) => {
      const where = target(options, command);
      const policy = networkPolicy(options, io.stderr);
      setCode(await flush({ target: where, secret: options.secret, timeoutMs: options.timeout, quiet: options.quiet, ...policy }, io.stdout, io.stderr));
    });

  program
    .command('keygen')
    .description(
      'Print a new ed25519 key pair for asymmetric signatures (v1a): the whsk_ secret key signs (--secret, WEBHOOK_OUTBOX_SECRET, ' +
        'signingSecret); receivers verify with the whpk_ public key, which cannot sign.',
    )
    .option('--json', 'machine-readable output', false)
    .action((options: { json: boolean }) => {
      const pair = generateSigningKeyPair();
      const text = formatTable([
        ['secret key', pair.secretKey, '(the sender: --secret or WEBHOOK_OUTBOX_SECRET; keep it secret)'],
        ['public key', pair.publicKey, '(receivers: verifyWebhook)'],
      ]);
      io.stdout.write(`${options.json ? JSON.stringify(pair, null, 2) : text}\n`);
      setCode(ExitCode.ok);
    });

  targetOptions(program.command('show'))
    .description(
      'Where one event stands: pending (with its next attempt), claimed (a table: an outbox is sending it) or dead (with the reason), its attempts and their outcomes; ' +
        'reads without taking the lock or a lease. Exit 1 if the outbox does not hold it (delivered, purged or never enqueued).',
    )
    .argument('<id>', 'the event id (webhook-id)')
    .option('--json', 'machine-readable output', false)
    .action(async (id: string, options: TargetFlags & { json: boolean }, command: Command) => {
      // Without the lock: a running app may be sending it right now.
      const { found } = await inspectTarget(target(options, command), { deadLetters: { limit: 0 }, find: id });
      setCode(showEvent(id, found, options.json, io.stdout));
    });

  targetOptions(program.command('status'))
    .description(
      'Pending, in flight, dead, oldest age, size, corrupt records and per-endpoint counts of an outbox directory or table; ' +
        'reads without taking the lock or a lease, so it works while the apps run.',
    )
    .option('--json', 'machine-readable output', false)
    .action(async (options: TargetFlags & { json: boolean }, command: Command) => {
      setCode(printStatus(await readStatus(target(options, command)), options.json, io.stdout));
    });

  // Moves, replays and purges: an outbox that does not deliver (the app, or `flush`, does).
  const withStillOutbox = <T>(where: OutboxTarget, use: (outbox: Outbox) => Promise<T>): Promise<T> => withOutbox(where, { autoFlush: false }, use);

  targetOptions(program.command('move'))
    .description(
      'Send everything queued for one endpoint URL (pending and dead letters) to another from now on: the receiver moved. Pending events are due at once with fresh attempts. ' +
        'A directory: takes the lock (exit 3 while an app owns it: call outbox.moveEndpoint() there). A table: events an outbox is sending at that moment stay (said on stderr; run it again).',
    )
    .argument('<from>', 'the URL the events were enqueued for', httpUrlAs("argument 'from'"))
    .argument('<to>', 'the URL to send them to', httpUrlAs("argument 'to'"))
    .action(async (from: string, to: string, options: TargetFlags, command: Command) => {
      const { moved, left } = await withStillOutbox(target(options, command), async (outbox) => {
        const count = await outbox.moveEndpoint(from, to);
        const counters = outbox.stats().endpoints[from];
        return { moved: count, left: (counters?.pending ?? 0) + (counters?.dead ?? 0) };
      });
      io.stdout.write(`Moved ${moved} event${moved === 1 ? '' : 's'} from ${redactUrl(from)} to ${redactUrl(to)}.\n`);
      if (left > 0) io.stderr.write(`${left} event(s) of ${redactUrl(from)} were being sent by an outbox and stay there: run move again once their attempt ended\n`);
      setCode(ExitCode.ok);
    });

  const dead = program.command('dead').description('List, replay or purge dead letters (events given up on).');
  dead
    .command('list')
    .description('Show dead letters with their reason, attempts and last answer (sensitive header values redacted); reads without taking the lock or a lease. Exit 1 if a named id is not a dead letter.')
    .argument('[ids...]', 'only these ids')
    .option('--json', 'machine-readable output', false)
    .action(async (ids: string[], options: TargetFlags & { json: boolean } & DeadLetterFilters, command: Command) => {
      // Only what is asked for is read: the named ids, else what the filters select.
      const { deadLetters } = await inspectTarget(target(options, command), { deadLetters: ids.length > 0 ? { ids } : filtersOf(options) });
      setCode(deadList(deadLetters, ids, filtersOf(options), options.json, io.stdout));
    });
  dead
    .command('replay')
    .description('Put dead letters back in the queue with fresh attempts (all of them without ids); the app or `flush` delivers them.')
    .argument('[ids...]', 'only these ids')
    .option('--url <url>', 'send them to this URL from now on (the receiver moved); needs ids or --endpoint', httpUrlAs("option '--url'"))
    .action(async (ids: string[], options: TargetFlags & { url?: string } & DeadLetterFilters, command: Command) => {
      if (options.url !== undefined && ids.length === 0 && options.endpoint === undefined) {
        throw new CliError(ExitCode.usage, '--url needs the ids of the dead letters to send there, or --endpoint (to move everything of one URL: webhook-outbox move)');
      }
      setCode(await withStillOutbox(target(options, command), (outbox) => deadReplay(outbox, ids, filtersOf(options), io.stdout, options.url)));
    });
  dead
    .command('purge')
    .description('Delete dead letters for good: the named ids, or all of them with --all.')
    .argument('[ids...]', 'the ids to delete')
    .option('--all', 'purge every dead letter', false)
    .action(async (ids: string[], options: TargetFlags & { all: boolean } & DeadLetterFilters, command: Command) => {
      checkPurgeArgs(ids, filtersOf(options), options.all);
      setCode(await withStillOutbox(target(options, command), (outbox) => deadPurge(outbox, ids, filtersOf(options), options.all, io.stdout)));
    });
  for (const command of dead.commands) {
    targetOptions(command)
      .option('--endpoint <url>', 'only dead letters of this endpoint URL (as `status` lists it)', httpUrlAs("option '--endpoint'"))
      .option('--since <when>', 'only those that died at or after this time: 2026-11-24T18:00:00Z, or a time ago such as 2h or 7d', pointInTime)
      .option('--until <when>', 'only those that died before this time (same forms as --since)', pointInTime);
  }

  return program;
}

/** `--block-private-addresses`, `--allow-address` and `--proxy`, as commander parses them. */
interface AddressFlags {
  blockPrivateAddresses?: boolean;
  allowAddress?: string[];
  proxy?: string;
}

/** The conventional proxy variables of other tools, which the CLI does not follow (it says so). */
const CONVENTIONAL_PROXY_VARIABLES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'];

/**
 * The flags as the `blockPrivateAddresses` and `proxy` options. A conventional proxy variable set while
 * no proxy is given gets a note: sending directly where curl would use a proxy should not be a surprise.
 */
function networkPolicy(flags: AddressFlags, stderr: Writable): { blockPrivateAddresses: boolean | { allow: readonly string[] }; proxy: string | undefined } {
  const blockPrivateAddresses = addressPolicy(flags);
  const { proxy } = flags;
  if (proxy !== undefined && blockPrivateAddresses !== false) {
    throw new CliError(
      ExitCode.usage,
      '--proxy (or WEBHOOK_OUTBOX_PROXY) cannot be combined with --block-private-addresses (or WEBHOOK_OUTBOX_BLOCK_PRIVATE_ADDRESSES): ' +
        'the proxy resolves the endpoints and connects, so their addresses cannot be checked here; filter at the proxy (smokescreen refuses private addresses)',
    );
  }
  const ignored = CONVENTIONAL_PROXY_VARIABLES.find((name) => (process.env[name] ?? '') !== '');
  if (proxy === undefined && ignored !== undefined) {
    stderr.write(`note: ${ignored} is set but not used: events are sent directly unless --proxy or WEBHOOK_OUTBOX_PROXY is given\n`);
  }
  return { blockPrivateAddresses, proxy };
}

/** The flags as the `blockPrivateAddresses` option. */
function addressPolicy({ blockPrivateAddresses, allowAddress }: AddressFlags): boolean | { allow: readonly string[] } {
  if (allowAddress === undefined) return blockPrivateAddresses === true;
  if (blockPrivateAddresses !== true) throw new CliError(ExitCode.usage, '--allow-address needs --block-private-addresses');
  return { allow: allowAddress };
}

/** Runs the CLI on `argv` (without the node and script paths); resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let code: ExitCodeValue = ExitCode.ok;
  const program = createProgram(io, (value) => {
    code = value;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    // A database's or a proxy's error may quote the URL it was given, credentials included.
    io.stderr.write(`error: ${scrubArguments(error instanceof Error ? error.message : String(error))}\n`);
    return exitCodeOf(error);
  }
}
