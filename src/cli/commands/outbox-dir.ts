/**
 * Opening the outbox directory named by `--dir`, shared by the commands.
 */
import { readdir, stat } from 'node:fs/promises';
import { Outbox } from '../../outbox.js';
import type { OutboxOptions } from '../../options.js';
import { isOutboxFile } from '../../store/file/file-store.js';
import { CliError, ExitCode } from '../exit-codes.js';

/**
 * Fails with the usage code unless `dir` is a directory an outbox has used: commands never create one by
 * mistake, and a mistyped `--dir` is not reported as an empty outbox.
 */
export async function assertOutboxDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) throw new CliError(ExitCode.usage, `no outbox directory at ${dir} (use --dir)`);
  if (!info.isDirectory()) throw new CliError(ExitCode.usage, `${dir} is not a directory`);
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    // Not a typo in --dir but a directory this user may not read: say that, as an I/O failure.
    throw new CliError(ExitCode.failure, `cannot read the outbox directory ${dir} (${error.code ?? error.message})`);
  });
  if (!names.some(isOutboxFile)) throw new CliError(ExitCode.usage, `${dir} holds no outbox (no journal files; check --dir)`);
}

/** Opens an `Outbox` on the directory `dir` (taking its lock: `ERR_OUTBOX_LOCKED`, exit 3, when an app owns it). */
export function openOutbox(dir: string, options: Omit<OutboxOptions, 'dir' | 'store'>): Promise<Outbox> {
  return Outbox.open({ ...options, dir });
}
