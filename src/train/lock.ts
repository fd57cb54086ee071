import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { describeWriteError } from '../util/atomic.js';

/**
 * One owner per run folder. Two trainers on one folder would each delete the other's checkpoint
 * folders and interleave log.jsonl, so a trainer first creates `<run>/lock` exclusively (O_EXCL:
 * of two processes creating it at once, exactly one succeeds) holding its pid, host, boot id and
 * start time, and removes it when it ends.
 *
 * A lock outlives its owner when the owner is killed (SIGKILL, power loss): such a lock is stale
 * and is taken over when its pid is no longer alive on this host, when it was written during an
 * earlier boot (Linux boot id), or when it stays unparseable (torn: the owner died between
 * creating and writing it) past a short grace period. A lock written on another host cannot be
 * checked from here and is refused, naming the file to delete. Taking over is itself serialized
 * by a second exclusive file (`lock.takeover`), so two processes that both find the same stale
 * lock cannot each remove the lock the other has just created.
 *
 * Residual: a pid reused by an unrelated process within the same boot makes a stale lock look
 * alive; the refusal names the pid and the file to delete in that case.
 */

export const LOCK_FILE = 'lock';

export interface LockOwner {
  pid: number;
  hostname: string;
  /** Linux's per-boot id (null elsewhere): a lock from an earlier boot is stale whatever its pid. */
  boot_id: string | null;
  /** ISO time the lock was taken. */
  started: string;
}

export interface RunLock {
  readonly file: string;
  readonly owner: LockOwner;
  /** The owner of the stale lock this one replaced (null when there was none, or it was torn). */
  readonly tookOverFrom: LockOwner | null;
  /** Removes the lock file if it is still ours; idempotent. Also runs at process exit. */
  release(): void;
}

export interface LockOptions {
  /** How long an unparseable lock file must sit unchanged before it counts as torn (ms). */
  tornGraceMs?: number;
}

const TORN_GRACE_MS = 2_000;
/** A takeover guard older than this was left by a taker that died mid-takeover (it takes microseconds). */
const GUARD_STALE_MS = 10_000;
/** Upper bound on waiting for a lock file that keeps changing (never reached in practice). */
const GIVE_UP_MS = 30_000;
const POLL_MS = 20;

export function lockFilePath(dir: string): string {
  return path.join(dir, LOCK_FILE);
}

function currentBootId(): string | null {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** Blocks the thread for `ms` (lock acquisition is synchronous; the waits are short and rare). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The file's text, or null when it does not exist. */
function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UserError(`cannot read the run lock ${file}: ${(e as Error).message}`);
  }
}

/** Milliseconds since the file was last modified, or null when it does not exist. */
function ageMs(file: string): number | null {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

export function parseLockOwner(text: string): LockOwner | null {
  let o: Partial<LockOwner>;
  try {
    o = JSON.parse(text) as Partial<LockOwner>;
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  if (!Number.isSafeInteger(o.pid) || o.pid! <= 0 || typeof o.hostname !== 'string' || typeof o.started !== 'string') return null;
  if (o.boot_id !== null && o.boot_id !== undefined && typeof o.boot_id !== 'string') return null;
  return { pid: o.pid!, hostname: o.hostname, boot_id: o.boot_id ?? null, started: o.started };
}

/** The owner recorded in a lock file; null when the file is absent or torn. */
export function readLockOwner(file: string): LockOwner | null {
  const text = readText(file);
  return text === null ? null : parseLockOwner(text);
}

/** 'elsewhere': written on another host, so its pid means nothing here. */
function ownerState(o: LockOwner): 'alive' | 'dead' | 'elsewhere' {
  if (o.hostname !== os.hostname()) return 'elsewhere';
  const boot = currentBootId();
  if (o.boot_id && boot && o.boot_id !== boot) return 'dead';
  try {
    process.kill(o.pid, 0);
    return 'alive';
  } catch (e) {
    // EPERM: the process exists but belongs to another user
    return (e as NodeJS.ErrnoException).code === 'ESRCH' ? 'dead' : 'alive';
  }
}

/**
 * The process holding the lock of `dir` when it is alive (or on another host, where its pid
 * cannot be checked); null when the folder is unlocked, its lock is torn, or its owner is dead.
 * For readers that only report (status, dashboard): nothing is changed.
 */
export function lockHolder(dir: string): LockOwner | null {
  let o: LockOwner | null;
  try {
    o = readLockOwner(lockFilePath(dir));
  } catch {
    return null; // unreadable lock: report it as not running rather than fail a listing
  }
  return o && ownerState(o) !== 'dead' ? o : null;
}

/** Creates the lock file exclusively with its full text; false when it already exists. */
function tryCreate(file: string, text: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw describeWriteError(e, file);
  }
  try {
    fs.writeSync(fd, text);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw describeWriteError(e, file);
  }
  fs.closeSync(fd);
  return true;
}

/**
 * Removes the lock file if it still holds `expected` (the stale text judged a moment ago), under
 * the takeover guard so that no other taker can slip a fresh lock in between the check and the
 * removal. False when another taker holds the guard or the lock changed.
 */
function removeIfUnchanged(file: string, expected: string): boolean {
  const guard = `${file}.takeover`;
  let fd: number;
  try {
    fd = fs.openSync(guard, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw describeWriteError(e, guard);
    const age = ageMs(guard);
    if (age !== null && age > GUARD_STALE_MS) fs.rmSync(guard, { force: true });
    else sleepSync(POLL_MS);
    return false;
  }
  try {
    if (readText(file) !== expected) return false;
    fs.rmSync(file, { force: true });
    return true;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(guard, { force: true });
  }
}

function inUse(dir: string, file: string, o: LockOwner, where: 'here' | 'elsewhere'): UserError {
  if (where === 'here') {
    return new UserError(
      `run folder ${dir} is in use by pocketlm process pid ${o.pid} on this machine (since ${o.started}); ` +
        `wait for it to finish or use another --out (if no pocketlm runs as pid ${o.pid}, delete ${file})`,
    );
  }
  return new UserError(`run folder ${dir} is locked by pid ${o.pid} on host ${o.hostname} (since ${o.started}); if no pocketlm runs there any more, delete ${file}`);
}

/**
 * Takes the lock of run folder `dir` (which must exist) for this process, taking over a stale
 * lock; throws a UserError naming the owner when another live process holds it.
 */
export function acquireRunLock(dir: string, opts: LockOptions = {}): RunLock {
  const file = lockFilePath(dir);
  const grace = opts.tornGraceMs ?? TORN_GRACE_MS;
  const owner: LockOwner = { pid: process.pid, hostname: os.hostname(), boot_id: currentBootId(), started: new Date().toISOString() };
  const text = JSON.stringify(owner) + '\n';
  let tookOverFrom: LockOwner | null = null;
  const t0 = Date.now();
  while (!tryCreate(file, text)) {
    if (Date.now() - t0 > GIVE_UP_MS) throw new UserError(`could not lock run folder ${dir}: ${file} kept changing for ${GIVE_UP_MS / 1000} s`);
    const current = readText(file);
    if (current === null) continue; // released in the meantime
    const holder = parseLockOwner(current);
    if (holder) {
      const state = ownerState(holder);
      if (state === 'alive') throw inUse(dir, file, holder, 'here');
      if (state === 'elsewhere') throw inUse(dir, file, holder, 'elsewhere');
      if (removeIfUnchanged(file, current)) tookOverFrom = holder;
    } else {
      // Torn, or an owner that has created the file and not yet written it: wait for the grace period.
      const age = ageMs(file);
      if (age !== null && age >= grace) removeIfUnchanged(file, current);
      else sleepSync(POLL_MS);
    }
  }

  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      if (readText(file) === text) fs.rmSync(file, { force: true });
    } catch {
      // the folder went away or became unreadable: nothing left to release
    }
  };
  // Paths that end the process without unwinding (process.exit from a signal handler, an
  // uncaught error) still run 'exit' listeners: the lock is released there too.
  process.on('exit', release);
  return { file, owner, tookOverFrom, release };
}
