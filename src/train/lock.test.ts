import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { acquireRunLock, lockFilePath, readLockOwner, type LockOwner } from './lock.js';
import { UserError } from '../util/errors.js';

// the compiled module beside this test, imported by the child processes
const LOCK_MODULE = new URL('./lock.js', import.meta.url).href;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-lock-'));
}

/** A pid that was alive a moment ago and is not any more (a child that has exited). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.ok(r.pid > 0);
  return r.pid;
}

function plantLock(dir: string, owner: Partial<LockOwner>): void {
  const full: LockOwner = { pid: process.pid, hostname: os.hostname(), boot_id: null, started: new Date().toISOString(), ...owner };
  fs.writeFileSync(lockFilePath(dir), JSON.stringify(full) + '\n');
}

/**
 * A child process that takes the lock on `dir` and prints "locked <pid>" (then holds it until
 * killed, or calls process.exit(3) without releasing with mode "exit"), or prints the refusal
 * to stderr and exits 1. With `startAt` (epoch ms) it tries at that moment.
 */
function lockChild(dir: string, mode: 'hold' | 'exit' = 'hold', startAt = 0) {
  const script = `
    const { acquireRunLock } = await import(${JSON.stringify(LOCK_MODULE)});
    // racing children sleep, then spin, until one shared moment, so their attempts overlap
    const wait = ${startAt} - Date.now() - 5;
    if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
    while (Date.now() < ${startAt});
    try {
      acquireRunLock(${JSON.stringify(dir)});
    } catch (e) {
      process.stderr.write(e.message + '\\n');
      process.exit(1);
    }
    process.stdout.write('locked ' + process.pid + '\\n');
    if (${JSON.stringify(mode)} === 'exit') process.exit(3);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  const locked = new Promise<boolean>((resolve) => {
    child.stdout.on('data', () => { if (stdout.includes('locked')) resolve(true); });
    child.on('close', () => resolve(stdout.includes('locked')));
  });
  return { child, done, locked };
}

test('the lock file holds the owner pid, host and start time; release removes it', () => {
  const dir = tmpDir();
  const lock = acquireRunLock(dir);
  const owner = readLockOwner(lockFilePath(dir));
  assert.ok(owner);
  assert.equal(owner.pid, process.pid);
  assert.equal(owner.hostname, os.hostname());
  assert.ok(Math.abs(Date.parse(owner.started) - Date.now()) < 60_000, owner.started);
  assert.deepEqual(lock.owner, owner);
  lock.release();
  assert.equal(fs.existsSync(lockFilePath(dir)), false);
  lock.release(); // twice is harmless
  // and the folder can be locked again
  acquireRunLock(dir).release();
});

test('a second lock on a locked folder is refused in one line naming the owner pid', () => {
  const dir = tmpDir();
  const lock = acquireRunLock(dir);
  try {
    assert.throws(() => acquireRunLock(dir), (e: unknown) =>
      e instanceof UserError && !e.message.includes('\n') && e.message.includes(`pid ${process.pid}`) && e.message.includes(dir));
  } finally {
    lock.release();
  }
});

test('release leaves alone a lock that is no longer ours', () => {
  const dir = tmpDir();
  const lock = acquireRunLock(dir);
  plantLock(dir, { pid: 424242, started: '2020-01-01T00:00:00.000Z' });
  lock.release();
  assert.equal(readLockOwner(lockFilePath(dir))?.pid, 424242);
});

test('a stale lock naming a dead pid on this host is taken over', () => {
  const dir = tmpDir();
  const pid = deadPid();
  plantLock(dir, { pid });
  const lock = acquireRunLock(dir);
  assert.equal(readLockOwner(lockFilePath(dir))?.pid, process.pid);
  assert.equal(lock.tookOverFrom?.pid, pid);
  lock.release();
});

test('a lock from an earlier boot is stale even when its pid is alive now', { skip: !fs.existsSync('/proc/sys/kernel/random/boot_id') && 'no boot id on this system' }, () => {
  const dir = tmpDir();
  plantLock(dir, { pid: process.pid, boot_id: '00000000-0000-0000-0000-000000000000' });
  const lock = acquireRunLock(dir);
  assert.equal(lock.tookOverFrom?.boot_id, '00000000-0000-0000-0000-000000000000');
  lock.release();
});

test('a torn lock file is taken over once it is older than the grace period, not before', () => {
  const dir = tmpDir();
  const file = lockFilePath(dir);
  // empty and old: the owner died between creating and writing it
  fs.writeFileSync(file, '');
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(file, old, old);
  acquireRunLock(dir).release();
  // half a record, just written: could be an owner still writing it, so the taker waits
  fs.writeFileSync(file, '{"pid": 12');
  const t0 = Date.now();
  const lock = acquireRunLock(dir, { tornGraceMs: 300 });
  assert.ok(Date.now() - t0 >= 250, `waited ${Date.now() - t0} ms`);
  assert.equal(readLockOwner(file)?.pid, process.pid);
  lock.release();
});

test('a lock held on another host is refused (its pid cannot be checked here), naming host and file', () => {
  const dir = tmpDir();
  plantLock(dir, { pid: 1234, hostname: 'some-other-host' });
  assert.throws(() => acquireRunLock(dir), (e: unknown) =>
    e instanceof UserError && /pid 1234/.test(e.message) && /some-other-host/.test(e.message) && e.message.includes(lockFilePath(dir)));
});

test('two processes: the second is refused naming the first pid; after the first is killed its lock is taken over', async () => {
  const dir = tmpDir();
  const a = lockChild(dir);
  try {
    assert.ok(await a.locked, 'first child took the lock');
    const b = await lockChild(dir).done;
    assert.equal(b.code, 1);
    assert.equal(b.stderr.trim().split('\n').length, 1, b.stderr);
    assert.match(b.stderr, new RegExp(`pid ${a.child.pid}\\b`));
  } finally {
    a.child.kill('SIGKILL');
    await a.done;
  }
  // SIGKILL left the lock behind, naming a dead pid
  assert.equal(readLockOwner(lockFilePath(dir))?.pid, a.child.pid);
  const c = lockChild(dir, 'exit');
  const r = await c.done;
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /locked/);
  // process.exit without release: the exit hook removed the lock file
  assert.equal(fs.existsSync(lockFilePath(dir)), false);
});

test('processes racing for one folder (fresh, then over a stale lock): exactly one wins each time', async () => {
  const dir = tmpDir();
  for (const round of ['fresh', 'stale']) {
    if (round === 'stale') plantLock(dir, { pid: deadPid() });
    const startAt = Date.now() + 1500;
    const kids = [0, 1, 2].map(() => lockChild(dir, 'hold', startAt));
    try {
      // every child either holds the lock or has been refused
      const outcome = await Promise.all(kids.map(async (k) => ((await k.locked) ? 'locked' : 'refused')));
      const winners = kids.filter((_, i) => outcome[i] === 'locked');
      assert.equal(winners.length, 1, `${round}: ${outcome.join(', ')}`);
      const winnerPid = winners[0]!.child.pid;
      for (const [i, k] of kids.entries()) {
        if (outcome[i] === 'locked') continue;
        const r = await k.done;
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`pid ${winnerPid}\\b`), `${round}: ${r.stderr}`);
      }
    } finally {
      for (const k of kids) k.child.kill('SIGKILL');
      await Promise.all(kids.map((k) => k.done));
    }
    fs.rmSync(lockFilePath(dir), { force: true });
  }
});
