#!/usr/bin/env node
/** The `webhook-outbox` command line. */
import { fileURLToPath } from 'node:url';
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  entry: fileURLToPath(import.meta.url),
});
