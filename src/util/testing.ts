// Helpers shared by test files (imported only by *.test.ts).
import { before, after } from 'node:test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Registers before/after hooks giving the test file a fresh temp folder whose `cache/` is the
 * pocketlm cache (POCKETLM_CACHE) while its tests run, so no test reads or writes the real
 * cache; `onReady` receives the folder. The previous POCKETLM_CACHE is restored afterwards.
 */
export function useTempCache(prefix: string, onReady: (dir: string) => void): void {
  let dir = '';
  let saved: string | undefined;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    saved = process.env.POCKETLM_CACHE;
    process.env.POCKETLM_CACHE = path.join(dir, 'cache');
    onReady(dir);
  });
  after(() => {
    if (saved === undefined) delete process.env.POCKETLM_CACHE;
    else process.env.POCKETLM_CACHE = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

/** Every file and folder under `dir` with the sha256 of its bytes: shows that a refusal changed nothing. */
export function snapshotTree(dir: string, out: Record<string, string> = {}, root = dir): Record<string, string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      out[path.relative(root, p)] = '<dir>';
      snapshotTree(p, out, root);
    } else {
      out[path.relative(root, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  }
  return out;
}
