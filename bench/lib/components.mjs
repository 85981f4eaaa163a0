/**
 * The built package, as users run it, and which of its parts exist yet. Rows whose component is missing
 * say so instead of measuring something else.
 *
 * `npm run bench` builds the package with the project's tsup config into a private directory
 * (BUILD_DIR), not dist/: other builds in a shared checkout clean dist/ and must not pull the package
 * out from under a run that takes minutes.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where `npm run bench` builds the package. */
export const BUILD_DIR = fileURLToPath(new URL('../../node_modules/.cache/webhook-outbox-bench/', import.meta.url));

/** Imports the built `webhook-outbox`. */
export async function loadPackage() {
  return import(pathToFileURL(join(BUILD_DIR, 'index.js')).href);
}

/** Imports the built `webhook-outbox/testing`. */
export async function loadTesting() {
  return import(pathToFileURL(join(BUILD_DIR, 'testing', 'index.js')).href);
}

/** The names of the required exports that `pkg` lacks, e.g. `['Outbox']`. */
export function missing(pkg, ...names) {
  return names.filter((name) => typeof pkg[name] !== 'function');
}

/** Total bytes of the files under `dir`, recursively. */
export function dirBytes(dir) {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(path) : statSync(path).size;
  }
  return total;
}
