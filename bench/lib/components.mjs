/**
 * The built package, as users run it, and which of its parts exist yet. Rows whose component is missing
 * say so instead of measuring something else.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Imports dist/index.js. */
export async function loadPackage() {
  return import('../../dist/index.js');
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
