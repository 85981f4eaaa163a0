import type { TestProject } from 'vitest/node';
import type { PostgresServer } from './server.js';
import { startPostgres } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: PostgresServer;
  }
}

/** One PostgreSQL server for the whole run; each test uses tables of its own. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgres', { host: server.host, port: server.port, user: server.user, database: server.database });
  return () => server.remove();
}
