import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

/** The package root (the folder holding package.json), wherever dist/ was built. */
export function packageRoot(): string {
  // this file is dist/util/paths.js (or src/util/paths.ts): two levels down from the root
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** `../shared` beside the repository: sample data for tests and benchmarks. */
export function sharedDir(): string {
  return process.env.POCKETLM_SHARED ?? path.resolve(packageRoot(), '..', 'shared');
}

export function tinystoriesSampleDir(): string {
  return path.join(sharedDir(), 'data', 'tinystories');
}

/** Where downloads and prepared datasets are cached (POCKETLM_CACHE overrides). */
export function cacheDir(): string {
  return process.env.POCKETLM_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'pocketlm');
}
