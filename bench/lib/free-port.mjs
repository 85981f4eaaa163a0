/** A free TCP port on 127.0.0.1, found by binding port 0 and closing again. */
import { createServer } from 'node:net';

/** Resolves with a port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
