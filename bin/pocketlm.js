#!/usr/bin/env node
// Thin launcher: the CLI itself is compiled TypeScript in dist/.
import { existsSync } from 'node:fs';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('pocketlm: not built yet; run `npm install` (or `npm run build`) in the package folder first');
  process.exit(1);
}
await import(entry.href);
