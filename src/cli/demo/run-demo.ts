/**
 * `webhook-outbox demo`: replays the incident against a local flaky receiver while child processes push
 * events through an outbox on disk, SIGKILLs one of them midway, and reports what arrived.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { startFlakyReceiver } from '../../testing/flaky-receiver.js';
import { ExitCode } from '../exit-codes.js';
import type { ExitCodeValue } from '../exit-codes.js';
import { formatBar, formatDuration } from '../format.js';
import { ProgressLine } from '../progress.js';
import { incidentPhases, runIncident } from './incident.js';
import { SECRET_ENV, demoEventId } from './protocol.js';
import type { WorkerArgs, WorkerMessage } from './protocol.js';
import { buildReport, formatReport } from './report.js';

/** Options of the demo (the `demo` command's flags). */
export interface DemoOptions {
  /** Events to send. @default 3000 */
  events: number;
  /** Events per second the producer enqueues. @default 600 */
  rate: number;
  /** Length of the 500 and 503 phases, milliseconds (the refusal phase lasts half). @default 3000 */
  phaseMs: number;
  /** Concurrent requests the recovered receiver accepts. @default 8 */
  capacity: number;
  /** Outbox concurrency per endpoint. @default 16 */
  concurrency: number;
  /** Fraction of the events after which the producer is SIGKILLed; 0 = never. @default 0.5 */
  killAt: number;
  /** Give up waiting after this long; whatever was not delivered then counts as lost. @default 90000 */
  timeoutMs: number;
  /** Outbox directory; a fresh temporary one when undefined. */
  dir: string | undefined;
  /** Keep the outbox directory at the end. @default false */
  keep: boolean;
  /** No progress line. @default false */
  quiet: boolean;
}

/** Where the demo writes and how it starts producers. */
export interface DemoIo {
  stdout: Writable;
  stderr: Writable & { isTTY?: boolean };
  /** The script that runs `demo-worker` (this CLI's entry file). */
  workerEntry: string;
}

interface Producer {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** Runs the demo; resolves with the exit code (0 only when nothing was lost). */
export async function runDemo(options: DemoOptions, io: DemoIo): Promise<ExitCodeValue> {
  const started = Date.now();
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'webhook-outbox-demo-')));
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const receiver = await startFlakyReceiver({ secret, script: () => 500 });
  const progress = new ProgressLine(io.stderr, { silent: options.quiet });
  const stopIncident = new AbortController();
  const sent = new Set<string>();
  let ackedUpTo = 0;
  let phaseName = '';
  let kills = 0;
  let dead = 0;
  let producer: Producer | undefined;

  const say = (line: string): void => progress.log(`${formatDuration(Date.now() - started).padStart(8)}  ${line}`);
  io.stdout.write(
    `Replaying the incident: ${options.events} events through an outbox in ${dir}\n` +
      `receiver ${receiver.url}: 500s, then 503 + Retry-After, then refused connections, then back with capacity ${options.capacity}\n\n`,
  );

  const startProducer = (from: number): Producer => {
    const args: WorkerArgs = {
      dir,
      url: receiver.url,
      from,
      total: options.events,
      rate: options.rate,
      concurrency: options.concurrency,
      maxDelayMs: Math.max(200, Math.round(options.phaseMs / 3)),
      drainTimeoutMs: options.timeoutMs,
    };
    const child = fork(io.workerEntry, ['demo-worker', JSON.stringify(args)], {
      env: { ...process.env, [SECRET_ENV]: secret },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    child.on('message', (message: WorkerMessage) => {
      if (message.type === 'enqueued') {
        for (let i = message.from; i < message.to; i++) sent.add(demoEventId(i));
        ackedUpTo = Math.max(ackedUpTo, message.to);
      } else {
        dead = message.dead;
      }
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    say(`producer pid ${child.pid ?? '?'} started at event ${from}`);
    return { child, exited };
  };

  const incident = runIncident(
    receiver,
    incidentPhases({ phaseMs: options.phaseMs, capacity: options.capacity, retryAfterSeconds: 1, workMs: 2 }),
    (phase) => {
      phaseName = phase.name;
      say(`receiver: ${phase.name}`);
    },
    stopIncident.signal,
  );

  const draw = (): void => {
    const delivered = receiver.deliveredIds().size;
    progress.update(
      `${formatBar(delivered / options.events)} ${delivered}/${options.events} delivered, ` +
        `${ackedUpTo} enqueued, ${receiver.requests.length} attempts  [${phaseName}]`,
    );
  };
  const ticker = setInterval(draw, 100);

  const deadline = started + options.timeoutMs;
  let exitCode: number | null = null;
  try {
    producer = startProducer(0);
    const killAfter = options.killAt > 0 ? Math.floor(options.events * options.killAt) : Infinity;
    while (kills === 0 && ackedUpTo < killAfter && Date.now() < deadline) {
      const ended = await Promise.race([producer.exited.then(() => true), wait(20).then(() => false)]);
      if (ended) break;
    }
    if (kills === 0 && ackedUpTo >= killAfter && producer.child.exitCode === null) {
      producer.child.kill('SIGKILL');
      await producer.exited;
      kills += 1;
      say(
        `SIGKILLed producer pid ${producer.child.pid ?? '?'} after ${ackedUpTo} durable enqueues, ` +
          `${receiver.deliveredIds().size} delivered`,
      );
      producer = startProducer(ackedUpTo);
    }
    exitCode = await Promise.race([producer.exited, wait(Math.max(0, deadline - Date.now())).then(() => null)]);
    if (producer.child.exitCode === null) {
      say('timed out: stopping the producer');
      producer.child.kill('SIGKILL');
      await producer.exited;
    }
  } finally {
    clearInterval(ticker);
    stopIncident.abort();
    await incident;
    await receiver.close();
    if (producer !== undefined && producer.child.exitCode === null && producer.child.signalCode === null) {
      producer.child.kill('SIGKILL');
    }
  }
  draw();
  progress.done();

  const report = buildReport({
    sent,
    requests: receiver.requests,
    deadLetters: dead,
    peakConcurrency: receiver.peakConcurrency,
    kills,
    durationMs: Date.now() - started,
  });
  io.stdout.write(`\n${formatReport(report)}\n`);
  if (exitCode !== 0) io.stdout.write(`The last producer exited with code ${String(exitCode)}.\n`);
  if (options.keep) {
    io.stdout.write(`Outbox directory kept: ${dir}\n`);
  } else if (options.dir === undefined) {
    await rm(dir, { recursive: true, force: true });
  }
  return report.lost === 0 && report.sent === options.events && exitCode === 0 ? ExitCode.ok : ExitCode.failure;
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
