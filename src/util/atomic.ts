import fs from 'node:fs';
import path from 'node:path';
import { UserError } from './errors.js';

/** Turns an OS write error into one line a user can act on. */
export function describeWriteError(e: unknown, target: string): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOSPC': return new UserError(`no space left on device while writing ${target}`);
    case 'EFBIG': return new UserError(`file too large for the file system or size limit while writing ${target}`);
    case 'EDQUOT': return new UserError(`disk quota exceeded while writing ${target}`);
    case 'EACCES':
    case 'EPERM': return new UserError(`permission denied writing ${target}`);
    case 'EROFS': return new UserError(`read-only file system: cannot write ${target}`);
    case 'ENOENT': return new UserError(`cannot write ${target}: its folder does not exist`);
    case 'ENOTDIR': return new UserError(`cannot write ${target}: a parent path is not a folder`);
    default: return e instanceof Error ? e : new Error(String(e));
  }
}

/** A temp name beside the target, so the final rename stays on one file system (atomic). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

/**
 * Writes a file so that readers (and a process killed at any moment) see either the old
 * complete file or the new complete one, never a partial one: temp file, fsync, rename,
 * fsync of the folder. On failure the temp file is removed and the old file is untouched.
 */
export function writeFileAtomicSync(target: string, chunks: string | Uint8Array | readonly Uint8Array[]): void {
  const tmp = tempPathFor(target);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    const list = typeof chunks === 'string' ? [Buffer.from(chunks, 'utf8')] : chunks instanceof Uint8Array ? [chunks] : chunks;
    for (const c of list) {
      let off = 0;
      while (off < c.byteLength) off += fs.writeSync(fd, c, off, c.byteLength - off);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, target);
    fsyncDir(path.dirname(target));
  } catch (e) {
    if (fd !== null) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    throw describeWriteError(e, target);
  }
}

/** Makes a rename durable: without it a power loss can forget the new directory entry. */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch {
    // Some platforms (and Termux on some Android file systems) refuse to fsync a folder; the rename is still atomic.
  }
}
