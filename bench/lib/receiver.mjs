/**
 * Parent side of `receiver-child.mjs`: starts the child and sends it commands.
 */
import { fork } from 'node:child_process';

/** Starts a receiver in a child process; resolves with its url and a small command API. */
export async function startReceiverProcess(options = {}) {
  const child = fork(new URL('./receiver-child.mjs', import.meta.url), [JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const waiting = new Map();
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
    child.on('message', (message) => {
      if (message.type === 'ready') resolve(message);
      const settle = waiting.get(message.seq);
      if (settle) {
        waiting.delete(message.seq);
        settle(message);
      }
    });
  });
  const { url, port } = await ready;
  const command = (type, extra = {}) =>
    new Promise((resolve) => {
      seq += 1;
      waiting.set(seq, resolve);
      child.send({ type, seq, ...extra });
    });
  return {
    url,
    port,
    refuse: () => command('refuse'),
    accept: () => command('accept'),
    clear: () => command('clear'),
    summary: async (since = 0) => (await command('summary', { since })).summary,
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await command('close');
      await exited;
    },
  };
}
