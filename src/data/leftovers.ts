import fs from 'node:fs';
import path from 'node:path';
import { describeWriteError } from '../util/atomic.js';

/**
 * Leftovers of killed writes. Every temp name we create carries the writer's pid
 * (`.<name>.tmp-<pid>-<time>` from util/atomic.ts, `.prepare-<pid>-<time>` for a dataset
 * being built), so the next start can tell a dead writer's litter from a live one's work.
 */

/** True while a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in a temp name we create, or null for any other name. */
export function tempOwner(name: string): number | null {
  const m = /^\..+\.tmp-(\d+)-[0-9a-z]+$/.exec(name) ?? /^\.prepare-(\d+)-[0-9a-z]+$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Removes the temp files and folders in dir whose writer is gone. */
export function removeStaleTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const pid = tempOwner(name);
    if (pid === null || pidAlive(pid)) continue;
    const p = path.join(dir, name);
    try {
      fs.rmSync(p, { recursive: true, force: true });
    } catch (e) {
      throw describeWriteError(e, p);
    }
  }
}

/** True when dir holds a temp entry of a live writer (a build in progress). */
export function hasLiveTemp(dir: string): boolean {
  return fs.readdirSync(dir).some((name) => {
    const pid = tempOwner(name);
    return pid !== null && pidAlive(pid);
  });
}
