import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { describeWriteError, fsyncDir } from '../util/atomic.js';

/**
 * Output folders written whole or not at all: the files go into a temp folder beside the target,
 * which is renamed into place at the end (rename replaces an empty folder atomically), so an
 * interrupted export or import never leaves a half-written folder under the name asked for.
 */

/** Refuses a target that exists and is not an empty folder (`what` names the flag in the message). */
export function refuseUsedTarget(target: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UserError(`cannot read ${what} ${target}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new UserError(`${what} ${target} already exists (a file); choose a new path`);
  if (fs.readdirSync(target).length > 0) throw new UserError(`${what} ${target} already exists and is not empty; choose a new folder`);
}

/** Makes the temp folder for `target` (its parent folder must exist, or is created). */
export function makeTempFolder(target: string): string {
  const parent = path.dirname(path.resolve(target));
  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw describeWriteError(e, target);
  }
  return fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.tmp-`));
}

/** Renames the finished temp folder onto `target` (which must be absent or an empty folder). */
export function publishFolder(tmp: string, target: string): void {
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new UserError(`${target} was filled by something else meanwhile; nothing was written there`);
    throw describeWriteError(e, target);
  }
  fsyncDir(path.dirname(path.resolve(target)));
}

/** Writes a folder through `fill(tmpDir)` and publishes it; the temp folder is removed on failure. */
export async function writeFolder<T>(target: string, what: string, fill: (tmp: string) => Promise<T> | T): Promise<T> {
  refuseUsedTarget(target, what);
  const tmp = makeTempFolder(target);
  try {
    const r = await fill(tmp);
    publishFolder(tmp, target);
    return r;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Total size in bytes of the files directly in `dir`. */
export function folderBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
}
