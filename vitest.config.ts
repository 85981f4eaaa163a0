import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  // Examples and the README import the package by name, as users do; tests resolve it to the sources.
  resolve: {
    alias: [
      { find: /^webhook-outbox\/testing$/, replacement: src('testing/index.ts') },
      { find: /^webhook-outbox$/, replacement: src('index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    // A real PostgreSQL server for PostgresStore's tests (test/postgres/server.ts).
    globalSetup: ['test/postgres/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary'],
    },
  },
});
