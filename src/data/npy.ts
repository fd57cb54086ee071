import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { describeWriteError, fsyncDir, tempPathFor } from '../util/atomic.js';

/**
 * NumPy .npy v1.0 files holding one 1-D array of token ids (`<u2` or `<u4`), written
 * as a stream: a fixed-size header is reserved, the body is appended chunk by chunk,
 * and the header is rewritten with the final length before the atomic rename.
 */

export type TokenDtype = 'uint16' | 'uint32';

/** Header size we always write: 128 bytes holds any shape a 64-bit length can have. */
export const NPY_HEADER_BYTES = 128;
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function dtypeForVocab(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function bytesPerToken(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

/** The 128-byte v1.0 header for a 1-D little-endian unsigned array of `length` items. */
export function npyHeader(dtype: TokenDtype, length: number): Uint8Array {
  const descr = dtype === 'uint16' ? '<u2' : '<u4';
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${length},), }`;
  const room = NPY_HEADER_BYTES - 10 - 1; // magic+version+len = 10, trailing newline = 1
  if (dict.length > room) throw new Error(`npy header too long for length ${length}`);
  dict = dict.padEnd(room, ' ') + '\n';
  const out = new Uint8Array(NPY_HEADER_BYTES);
  out.set(MAGIC, 0);
  out[6] = 1; // major version
  out[7] = 0; // minor version
  out[8] = (NPY_HEADER_BYTES - 10) & 0xff;
  out[9] = (NPY_HEADER_BYTES - 10) >> 8;
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

export interface NpyInfo { dtype: TokenDtype; length: number; dataOffset: number }

/** Parses the header of an .npy token file (any v1/v2/v3 header numpy could have written). */
export function readNpyInfo(fd: number, file: string): NpyInfo {
  const head = Buffer.alloc(12);
  const got = fs.readSync(fd, head, 0, 12, 0);
  if (got < 10 || !MAGIC.every((b, i) => head[i] === b)) throw new UserError(`${file} is not a .npy file (bad magic bytes)`);
  const major = head[6]!;
  const hlen = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const pre = major === 1 ? 10 : 12;
  const hbuf = Buffer.alloc(hlen);
  if (fs.readSync(fd, hbuf, 0, hlen, pre) !== hlen) throw new UserError(`${file}: truncated .npy header`);
  const h = hbuf.toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(h)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(h)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(h)?.[1];
  if (!descr || !fortran || shape === undefined) throw new UserError(`${file}: unreadable .npy header`);
  const dims = shape.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (dims.length !== 1) throw new UserError(`${file}: expected a 1-D token array, got shape (${shape})`);
  let dtype: TokenDtype;
  if (descr === '<u2') dtype = 'uint16';
  else if (descr === '<u4') dtype = 'uint32';
  else throw new UserError(`${file}: token dtype ${descr} is not supported (use <u2 or <u4)`);
  const length = Number(dims[0]);
  const dataOffset = pre + hlen;
  const size = fs.fstatSync(fd).size;
  if (!Number.isSafeInteger(length) || dataOffset + length * bytesPerToken(dtype) > size) {
    throw new UserError(`${file}: file is shorter than its header says (${length} tokens); it may be truncated`);
  }
  return { dtype, length, dataOffset };
}

/** Reads a whole (small) token file: for tests and tools, not for training data. */
export function readNpyTokens(file: string): Uint32Array {
  const fd = fs.openSync(file, 'r');
  try {
    const info = readNpyInfo(fd, file);
    const bpt = bytesPerToken(info.dtype);
    const buf = Buffer.alloc(info.length * bpt);
    fs.readSync(fd, buf, 0, buf.length, info.dataOffset);
    const out = new Uint32Array(info.length);
    for (let i = 0; i < info.length; i++) out[i] = bpt === 2 ? buf.readUInt16LE(2 * i) : buf.readUInt32LE(4 * i);
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Appends token ids to a temp file beside `target`; `finish()` writes the header with the
 * final length, fsyncs and renames; `abort()` removes the temp file. Write errors become
 * one-line UserErrors (disk full, permission) and leave no temp file behind.
 */
export class NpyWriter {
  readonly target: string;
  readonly dtype: TokenDtype;
  private readonly tmp: string;
  private fd: number | null;
  private length = 0;
  private readonly buf: Buffer;
  private used = 0;
  private readonly maxId: number;

  constructor(target: string, dtype: TokenDtype) {
    if (os.endianness() !== 'LE') throw new Error('pocketlm writes token files on little-endian machines only');
    this.target = target;
    this.dtype = dtype;
    this.maxId = dtype === 'uint16' ? 0xffff : 0xffffffff;
    this.tmp = tempPathFor(target);
    this.buf = Buffer.alloc(1 << 20);
    try {
      this.fd = fs.openSync(this.tmp, 'w', 0o644);
      this.writeAll(new Uint8Array(NPY_HEADER_BYTES)); // placeholder, rewritten by finish()
    } catch (e) {
      this.fd = null;
      this.cleanup();
      throw describeWriteError(e, target);
    }
  }

  get count(): number { return this.length; }

  /** Appends ids (each must fit the dtype). */
  append(ids: ArrayLike<number>): void {
    const bpt = bytesPerToken(this.dtype);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < 0 || id > this.maxId) throw new Error(`token id ${id} does not fit ${this.dtype}`);
      if (this.used + bpt > this.buf.length) this.flush();
      if (bpt === 2) this.buf.writeUInt16LE(id, this.used);
      else this.buf.writeUInt32LE(id, this.used);
      this.used += bpt;
    }
    this.length += ids.length;
  }

  finish(): void {
    if (this.fd === null) throw new Error('NpyWriter already closed');
    try {
      this.flush();
      const head = npyHeader(this.dtype, this.length);
      fs.writeSync(this.fd, head, 0, head.length, 0);
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = null;
      fs.renameSync(this.tmp, this.target);
      fsyncDir(path.dirname(this.target));
    } catch (e) {
      this.cleanup();
      throw describeWriteError(e, this.target);
    }
  }

  /** Drops everything written so far; safe to call more than once. */
  abort(): void {
    this.cleanup();
  }

  private flush(): void {
    if (this.used === 0) return;
    try {
      this.writeAll(this.buf.subarray(0, this.used));
    } catch (e) {
      this.cleanup();
      throw describeWriteError(e, this.target);
    }
    this.used = 0;
  }

  private writeAll(bytes: Uint8Array): void {
    if (this.fd === null) throw new Error('NpyWriter already closed');
    let off = 0;
    while (off < bytes.byteLength) off += fs.writeSync(this.fd, bytes, off, bytes.byteLength - off);
  }

  private cleanup(): void {
    if (this.fd !== null) try { fs.closeSync(this.fd); } catch { /* already failing */ }
    this.fd = null;
    try { fs.rmSync(this.tmp, { force: true }); } catch { /* best effort */ }
  }
}
