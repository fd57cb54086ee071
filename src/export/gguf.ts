// GGUF v3, the single-file model format of ggml / llama.cpp: a writer that streams to a temp file
// and renames it into place, and a strict reader that refuses anything it cannot vouch for.
//
// Layout (all little-endian): magic "GGUF", version u32, tensor count u64, kv count u64; the kv
// pairs (string key, value type u32, value); the tensor infos (name, n_dims u32, dims u64 each
// listed fastest-varying first, ggml type u32, offset u64 relative to the data section); zero
// padding to `general.alignment`; then the tensor data, each tensor starting at an aligned offset.
// Strings are u64 byte length + UTF-8 bytes (no terminator). Arrays are item type u32, count u64,
// items.

import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { describeWriteError, fsyncDir, tempPathFor } from '../util/atomic.js';

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const VERSION = 3;
/** Default data alignment, and the one we write (the spec's default; llama.cpp's too). */
export const GGUF_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/** ggml's GGML_MAX_NAME is 64 bytes including the terminator. */
const MAX_NAME_BYTES = 63;

/** Metadata value types, with their GGUF codes. */
const VALUE_TYPES = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64'] as const;
export type GgufValueType = Exclude<(typeof VALUE_TYPES)[number], 'array'>;
type NumberType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
type BigType = 'uint64' | 'int64';

/** Bytes per item of the fixed-size value types. */
const FIXED_SIZE: Record<Exclude<GgufValueType, 'string'>, number> = {
  uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, bool: 1, uint64: 8, int64: 8, float64: 8,
};

/**
 * One metadata value. Arrays read from a file hold typed arrays for numeric items (so a large
 * array costs what it costs in the file), Uint8Array (0/1) for bools, string[] for strings.
 * Nested arrays are not supported (llama.cpp's own reader has none).
 */
export type GgufValue =
  | { type: NumberType; value: number }
  | { type: BigType; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: NumberType; value: ArrayLike<number> }
  | { type: 'array'; itemType: BigType; value: ArrayLike<bigint> }
  | { type: 'array'; itemType: 'bool'; value: ArrayLike<number> | readonly boolean[] }
  | { type: 'array'; itemType: 'string'; value: readonly string[] };

/** A metadata pair for writeGguf. */
export type GgufKv = { key: string } & GgufValue;

/** Tensor data types we write and read. Quantized types are refused by the reader, by name. */
export type GgufTensorType = 'F32' | 'F16';
const TENSOR_TYPE_CODE: Record<GgufTensorType, number> = { F32: 0, F16: 1 };
const TENSOR_TYPE_BYTES: Record<GgufTensorType, number> = { F32: 4, F16: 2 };
/** Names of the other ggml types, so a refusal can say what the file holds. */
const OTHER_GGML_TYPES: Record<number, string> = {
  2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K',
  14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

/** A tensor to write: `shape` in row-major order (slowest first, as numpy / safetensors / PyTorch). */
export interface GgufTensorIn {
  name: string;
  shape: readonly number[];
  data: Float32Array;
  /** Overrides the file's dtype for this tensor (1-D tensors are F32 unless this says otherwise). */
  type?: GgufTensorType;
}

export interface GgufWriteOptions {
  /** Type of the tensors with 2 or more dimensions; 1-D tensors (norm weights) stay F32. Default F32. */
  dtype?: GgufTensorType;
}

// ------------------------------------------------------------------------------------ f16

/** IEEE binary16 bits of the float32 with bits `x`, rounded to nearest, ties to even. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf, NaN stays NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: infinity
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: zero
    const m = mant | 0x800000; // the implicit bit
    const shift = 14 - e; // 13 bits of precision lost, plus the denormalization
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is exactly right (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** The float value of binary16 bits. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m !== 0 ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 values to binary16 bits, round to nearest even (what numpy's astype(float16) does). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16(bits[i]!);
  return out;
}

// ------------------------------------------------------------------------------------ writer

/**
 * A growable little-endian byte buffer for the header. A DataView over a Uint8Array, not a Buffer:
 * the browser build (src/web) builds GGUF files with this writer too.
 */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private static readonly utf8 = new TextEncoder();
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.room(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.room(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.room(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.room(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.room(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.room(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.room(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.room(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: bigint | number): void { this.room(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: bigint): void { this.room(8); this.view.setBigInt64(this.length, v, true); this.length += 8; }
  str(s: string): void {
    const b = ByteWriter.utf8.encode(s);
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  padTo(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function checkInt(key: string, v: number, lo: number, hi: number, type: string): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`GGUF key ${JSON.stringify(key)}: ${v} is not a ${type}`);
}

function writeScalar(w: ByteWriter, key: string, type: GgufValueType, v: number | bigint | boolean | string): void {
  switch (type) {
    case 'uint8': checkInt(key, v as number, 0, 0xff, type); w.u8(v as number); break;
    case 'int8': checkInt(key, v as number, -0x80, 0x7f, type); w.i8(v as number); break;
    case 'uint16': checkInt(key, v as number, 0, 0xffff, type); w.u16(v as number); break;
    case 'int16': checkInt(key, v as number, -0x8000, 0x7fff, type); w.i16(v as number); break;
    case 'uint32': checkInt(key, v as number, 0, 0xffffffff, type); w.u32(v as number); break;
    case 'int32': checkInt(key, v as number, -0x80000000, 0x7fffffff, type); w.i32(v as number); break;
    case 'float32': w.f32(v as number); break;
    case 'float64': w.f64(v as number); break;
    case 'bool': w.u8(v === true || v === 1 ? 1 : 0); break;
    case 'string':
      if (typeof v !== 'string') throw new Error(`GGUF key ${JSON.stringify(key)}: ${String(v)} is not a string`);
      w.str(v);
      break;
    case 'uint64': w.u64(BigInt.asUintN(64, BigInt(v as bigint)) === BigInt(v as bigint) ? BigInt(v as bigint) : fail64(key, v)); break;
    case 'int64': w.i64(BigInt.asIntN(64, BigInt(v as bigint)) === BigInt(v as bigint) ? BigInt(v as bigint) : fail64(key, v)); break;
  }
}

function fail64(key: string, v: unknown): never {
  throw new Error(`GGUF key ${JSON.stringify(key)}: ${String(v)} does not fit in 64 bits`);
}

function writeKv(w: ByteWriter, kv: GgufKv): void {
  w.str(kv.key);
  w.u32(VALUE_TYPES.indexOf(kv.type));
  if (kv.type === 'array') {
    w.u32(VALUE_TYPES.indexOf(kv.itemType));
    const items = kv.value as ArrayLike<number | bigint | boolean | string>;
    w.u64(items.length);
    for (let i = 0; i < items.length; i++) writeScalar(w, kv.key, kv.itemType, items[i]!);
  } else {
    writeScalar(w, kv.key, kv.type, kv.value);
  }
}

/** The ggml type a tensor is stored as. */
function storedType(t: GgufTensorIn, opts: GgufWriteOptions): GgufTensorType {
  if (t.type !== undefined) return t.type;
  return t.shape.length >= 2 ? (opts.dtype ?? 'F32') : 'F32';
}

/** Elements per chunk when streaming tensor data (bounds the extra memory of an f16 conversion). */
const CHUNK_ELEMS = 1 << 20;

/**
 * The bytes of a GGUF v3 file, in pieces (the header, then each tensor's data in chunks and its
 * padding), so a large file is never held whole: writeGguf streams them to disk, the browser
 * (src/web) hands them to a Blob. `general.alignment` (32) comes first unless `kv` has it (then
 * it must be 32). Mistakes in the arguments (duplicate names, a shape that does not match the
 * data, an out-of-range integer) are programming errors (plain Error), thrown before the first
 * piece.
 */
export function ggufChunks(kv: readonly GgufKv[], tensors: readonly GgufTensorIn[], opts: GgufWriteOptions = {}): Iterable<Uint8Array> {
  const keys = new Set<string>();
  for (const p of kv) {
    if (keys.has(p.key)) throw new Error(`GGUF key ${JSON.stringify(p.key)} given twice`);
    keys.add(p.key);
  }
  const given = kv.find((p) => p.key === 'general.alignment');
  if (given !== undefined && (given.type !== 'uint32' || given.value !== GGUF_ALIGNMENT)) throw new Error(`general.alignment must be uint32 ${GGUF_ALIGNMENT}`);
  const allKv: GgufKv[] = given ? [...kv] : [{ key: 'general.alignment', type: 'uint32', value: GGUF_ALIGNMENT }, ...kv];

  const names = new Set<string>();
  const layout = tensors.map((t) => {
    if (names.has(t.name)) throw new Error(`GGUF tensor ${JSON.stringify(t.name)} given twice`);
    names.add(t.name);
    if (new TextEncoder().encode(t.name).length > MAX_NAME_BYTES) throw new Error(`GGUF tensor name ${JSON.stringify(t.name)} is longer than ${MAX_NAME_BYTES} bytes`);
    if (t.shape.length < 1 || t.shape.length > MAX_DIMS) throw new Error(`GGUF tensor ${t.name}: ${t.shape.length} dimensions (1..${MAX_DIMS} allowed)`);
    let n = 1;
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 1) throw new Error(`GGUF tensor ${t.name}: bad dimension ${d}`);
      n *= d;
    }
    if (n !== t.data.length) throw new Error(`GGUF tensor ${t.name}: shape [${t.shape.join(', ')}] holds ${n} values but the data has ${t.data.length}`);
    const type = storedType(t, opts);
    return { t, type, nbytes: n * TENSOR_TYPE_BYTES[type], offset: 0 };
  });
  let dataSize = 0;
  for (const l of layout) {
    l.offset = dataSize;
    dataSize += l.nbytes;
    dataSize += (GGUF_ALIGNMENT - (dataSize % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
  }

  const w = new ByteWriter();
  w.u32(MAGIC);
  w.u32(VERSION);
  w.u64(tensors.length);
  w.u64(allKv.length);
  for (const p of allKv) writeKv(w, p);
  for (const l of layout) {
    w.str(l.t.name);
    w.u32(l.t.shape.length);
    for (let i = l.t.shape.length - 1; i >= 0; i--) w.u64(l.t.shape[i]!); // GGUF lists ne[0] (fastest) first
    w.u32(TENSOR_TYPE_CODE[l.type]);
    w.u64(l.offset);
  }
  w.padTo(GGUF_ALIGNMENT);

  const header = w.bytes();
  return (function* pieces(): Generator<Uint8Array> {
    yield header;
    const zeros = new Uint8Array(GGUF_ALIGNMENT);
    for (const l of layout) {
      const d = l.t.data;
      for (let s = 0; s < d.length; s += CHUNK_ELEMS) {
        const part = d.subarray(s, Math.min(d.length, s + CHUNK_ELEMS));
        const bytes = l.type === 'F16' ? f32ToF16(part) : part;
        yield new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      }
      const pad = (GGUF_ALIGNMENT - (l.nbytes % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
      if (pad > 0) yield zeros.subarray(0, pad);
    }
  })();
}

/**
 * Writes a GGUF v3 file (ggufChunks). The file appears complete or not at all: it is streamed to
 * a temp file beside `file`, fsynced and renamed. Write failures of the file system become
 * one-line UserErrors.
 */
export function writeGguf(file: string, kv: readonly GgufKv[], tensors: readonly GgufTensorIn[], opts: GgufWriteOptions = {}): void {
  const chunks = ggufChunks(kv, tensors, opts);
  const tmp = tempPathFor(file);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    const out = fd;
    const put = (b: Uint8Array): void => {
      let off = 0;
      while (off < b.byteLength) off += fs.writeSync(out, b, off, b.byteLength - off);
    };
    for (const piece of chunks) put(piece);
    fs.fsyncSync(out);
    fs.closeSync(out);
    fd = null;
    fs.renameSync(tmp, file);
    fsyncDir(path.dirname(file));
  } catch (e) {
    if (fd !== null) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    throw describeWriteError(e, file);
  }
}

// ------------------------------------------------------------------------------------ reader

export interface GgufTensorInfo {
  name: string;
  /** GGUF order: dims[0] is the fastest-varying (the columns of a row-major matrix). */
  dims: number[];
  /** Row-major order (slowest first): dims reversed. */
  shape: number[];
  type: GgufTensorType;
  /** Offset of the data from the start of the data section (as in the file). */
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  file: string;
  version: number;
  alignment: number;
  kv: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** File offset of the data section. */
  dataOffset: number;
  /** Size of the file in bytes. */
  fileSize: number;
  /** A tensor's info; UserError naming the file if there is none. */
  tensor(name: string): GgufTensorInfo;
  /** A tensor's values as float32 (F16 widened), read from the file now. */
  readTensorF32(name: string): Float32Array;
}

/** A name as it may appear in a one-line message: quoted, escaped, and cut if very long. */
function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/** Bytes read from the file per refill while parsing the header. */
const READ_CHUNK = 1 << 20;

/**
 * Sequential reads of the header through a window of the file. Every read first checks that the
 * bytes exist in the file, so nothing is allocated for a length the file cannot hold.
 */
class HeaderReader {
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;

  constructor(private readonly fd: number, readonly size: number, private readonly fail: (msg: string) => never) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Makes bytes [pos, pos+n) available in `buf`; refuses if the file ends first. */
  private need(n: number, what: string): number {
    if (n > this.size - this.pos) this.fail(`${what} at byte ${this.pos} needs ${n} bytes but the file ends ${this.size - this.pos} bytes later (truncated or corrupt)`);
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return this.pos - this.bufStart;
    const len = Math.min(this.size - this.pos, Math.max(n, READ_CHUNK));
    const b = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const r = fs.readSync(this.fd, b, got, len - got, this.pos + got);
      if (r === 0) this.fail(`the file shrank while being read, at byte ${this.pos + got}`);
      got += r;
    }
    this.buf = b;
    this.bufStart = this.pos;
    return 0;
  }

  u8(what: string): number { const o = this.need(1, what); this.pos += 1; return this.buf.readUInt8(o); }
  i8(what: string): number { const o = this.need(1, what); this.pos += 1; return this.buf.readInt8(o); }
  u16(what: string): number { const o = this.need(2, what); this.pos += 2; return this.buf.readUInt16LE(o); }
  i16(what: string): number { const o = this.need(2, what); this.pos += 2; return this.buf.readInt16LE(o); }
  u32(what: string): number { const o = this.need(4, what); this.pos += 4; return this.buf.readUInt32LE(o); }
  i32(what: string): number { const o = this.need(4, what); this.pos += 4; return this.buf.readInt32LE(o); }
  f32(what: string): number { const o = this.need(4, what); this.pos += 4; return this.buf.readFloatLE(o); }
  f64(what: string): number { const o = this.need(8, what); this.pos += 8; return this.buf.readDoubleLE(o); }
  u64(what: string): bigint { const o = this.need(8, what); this.pos += 8; return this.buf.readBigUInt64LE(o); }
  i64(what: string): bigint { const o = this.need(8, what); this.pos += 8; return this.buf.readBigInt64LE(o); }

  /** A u64 that counts or measures something in the file: refused if above `limit`. */
  count(what: string, limit: number): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(limit)) this.fail(`${what} at byte ${at} is ${v}, more than the file can hold (at most ${limit})`);
    return Number(v);
  }

  str(what: string): string {
    const at = this.pos;
    const len = this.count(`length of ${what}`, this.remaining - 8);
    const o = this.need(len, what);
    this.pos += len;
    try {
      return UTF8_STRICT.decode(this.buf.subarray(o, o + len));
    } catch {
      return this.fail(`${what} at byte ${at} is not valid UTF-8`);
    }
  }
}

const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function valueTypeName(code: number): (typeof VALUE_TYPES)[number] | undefined {
  return VALUE_TYPES[code];
}

function readArray(r: HeaderReader, key: string, fail: (m: string) => never): GgufValue {
  const typeAt = r.pos;
  const code = r.u32(`item type of array ${quote(key)}`);
  const itemType = valueTypeName(code);
  if (itemType === undefined) return fail(`array ${quote(key)} at byte ${typeAt} has unknown item type ${code}`);
  if (itemType === 'array') return fail(`array ${quote(key)} holds arrays (nested arrays are not supported)`);
  const minItem = itemType === 'string' ? 8 : FIXED_SIZE[itemType];
  const n = r.count(`item count of array ${quote(key)}`, Math.floor((r.remaining - 8) / minItem));
  const what = `array ${quote(key)}`;
  switch (itemType) {
    case 'string': {
      const out: string[] = new Array<string>(n);
      for (let i = 0; i < n; i++) out[i] = r.str(`item ${i} of ${what}`);
      return { type: 'array', itemType, value: out };
    }
    case 'uint8': { const a = new Uint8Array(n); for (let i = 0; i < n; i++) a[i] = r.u8(what); return { type: 'array', itemType, value: a }; }
    case 'int8': { const a = new Int8Array(n); for (let i = 0; i < n; i++) a[i] = r.i8(what); return { type: 'array', itemType, value: a }; }
    case 'uint16': { const a = new Uint16Array(n); for (let i = 0; i < n; i++) a[i] = r.u16(what); return { type: 'array', itemType, value: a }; }
    case 'int16': { const a = new Int16Array(n); for (let i = 0; i < n; i++) a[i] = r.i16(what); return { type: 'array', itemType, value: a }; }
    case 'uint32': { const a = new Uint32Array(n); for (let i = 0; i < n; i++) a[i] = r.u32(what); return { type: 'array', itemType, value: a }; }
    case 'int32': { const a = new Int32Array(n); for (let i = 0; i < n; i++) a[i] = r.i32(what); return { type: 'array', itemType, value: a }; }
    case 'float32': { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = r.f32(what); return { type: 'array', itemType, value: a }; }
    case 'float64': { const a = new Float64Array(n); for (let i = 0; i < n; i++) a[i] = r.f64(what); return { type: 'array', itemType, value: a }; }
    case 'uint64': { const a = new BigUint64Array(n); for (let i = 0; i < n; i++) a[i] = r.u64(what); return { type: 'array', itemType, value: a }; }
    case 'int64': { const a = new BigInt64Array(n); for (let i = 0; i < n; i++) a[i] = r.i64(what); return { type: 'array', itemType, value: a }; }
    case 'bool': {
      const a = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = r.u8(what);
        if (v > 1) fail(`item ${i} of ${what} is a bool of value ${v} (only 0 and 1 are valid)`);
        a[i] = v;
      }
      return { type: 'array', itemType, value: a };
    }
  }
}

function readValue(r: HeaderReader, key: string, fail: (m: string) => never): GgufValue {
  const at = r.pos;
  const code = r.u32(`value type of ${quote(key)}`);
  const type = valueTypeName(code);
  const what = `value of ${quote(key)}`;
  switch (type) {
    case undefined: return fail(`key ${quote(key)} at byte ${at} has unknown value type ${code}`);
    case 'array': return readArray(r, key, fail);
    case 'string': return { type, value: r.str(what) };
    case 'bool': {
      const v = r.u8(what);
      if (v > 1) fail(`key ${quote(key)} is a bool of value ${v} (only 0 and 1 are valid)`);
      return { type, value: v === 1 };
    }
    case 'uint8': return { type, value: r.u8(what) };
    case 'int8': return { type, value: r.i8(what) };
    case 'uint16': return { type, value: r.u16(what) };
    case 'int16': return { type, value: r.i16(what) };
    case 'uint32': return { type, value: r.u32(what) };
    case 'int32': return { type, value: r.i32(what) };
    case 'float32': return { type, value: r.f32(what) };
    case 'float64': return { type, value: r.f64(what) };
    case 'uint64': return { type, value: r.u64(what) };
    case 'int64': return { type, value: r.i64(what) };
  }
}

/**
 * Reads a GGUF file's header (metadata and tensor infos) and checks it completely against the
 * file: magic, version (2 or 3, little-endian), counts and lengths that fit in the file, value
 * and tensor types we know, unique keys and names, aligned, in-bounds, non-overlapping tensor
 * data. Any problem is a one-line UserError naming the file, found before anything larger than
 * the file is allocated. Tensor data is read on demand by readTensorF32.
 */
export function readGguf(file: string): GgufFile {
  const fail = (msg: string): never => { throw new UserError(`${file}: not a usable GGUF file: ${msg}`); };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${file}: no such file` : `${file}: cannot open (${code ?? String(e)})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const r = new HeaderReader(fd, size, fail);
    if (size < 24) fail(`${size} bytes is too short for a GGUF header (24 bytes)`);
    const magic = r.u32('magic');
    if (magic !== MAGIC) fail(`bad magic ${JSON.stringify(Buffer.from([magic & 0xff, (magic >>> 8) & 0xff, (magic >>> 16) & 0xff, magic >>> 24]).toString('latin1'))} (expected "GGUF")`);
    const version = r.u32('version');
    if (version === 0x03000000 || version === 0x02000000) fail('big-endian GGUF is not supported');
    if (version !== 2 && version !== 3) fail(`version ${version} is not supported (only 2 and 3)`);
    // Each tensor info takes at least 24 bytes (empty name 8, n_dims 4, type 4, offset 8); each
    // kv at least 13 (empty key 8, type 4, a 1-byte value).
    const nTensors = r.count('tensor count', Math.floor((r.remaining - 16) / 24));
    const nKv = r.count('metadata count', Math.floor((r.remaining - 8) / 13));

    const kv = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
      const at = r.pos;
      const key = r.str(`key ${i}`);
      if (kv.has(key)) fail(`key ${quote(key)} appears twice (second at byte ${at})`);
      kv.set(key, readValue(r, key, fail));
    }
    let alignment = GGUF_ALIGNMENT;
    const al = kv.get('general.alignment');
    if (al !== undefined) {
      if (al.type !== 'uint32') fail(`general.alignment has type ${al.type} (uint32 expected)`);
      const a = (al as { value: number }).value;
      if (a === 0 || (a & (a - 1)) !== 0) fail(`general.alignment ${a} is not a power of two`);
      alignment = a;
    }

    const tensors: GgufTensorInfo[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const at = r.pos;
      const name = r.str(`name of tensor ${i}`);
      if (seen.has(name)) fail(`tensor ${quote(name)} appears twice (second at byte ${at})`);
      seen.add(name);
      const nd = r.u32(`dimension count of tensor ${quote(name)}`);
      if (nd < 1 || nd > MAX_DIMS) fail(`tensor ${quote(name)} has ${nd} dimensions (1..${MAX_DIMS} supported)`);
      const dims: number[] = [];
      let elems = 1;
      for (let d = 0; d < nd; d++) {
        // No dimension can exceed the file size: even at 1 byte an element it would not fit.
        const v = r.count(`dimension ${d} of tensor ${quote(name)}`, size);
        if (v === 0) fail(`tensor ${quote(name)} has an empty dimension`);
        elems *= v;
        if (elems > size) fail(`tensor ${quote(name)} has ${dims.concat(v).join(' x ')}... elements, more than the file size ${size}`);
        dims.push(v);
      }
      const code = r.u32(`type of tensor ${quote(name)}`);
      const type = code === 0 ? 'F32' : code === 1 ? 'F16' : null;
      if (type === null) {
        const known = OTHER_GGML_TYPES[code];
        fail(known !== undefined
          ? `tensor ${quote(name)} has type ${known}; only F32 and F16 tensors are supported (convert the model to f16 or f32 first)`
          : `tensor ${quote(name)} has unknown type ${code}`);
      }
      const offset = r.count(`data offset of tensor ${quote(name)}`, size);
      if (offset % alignment !== 0) fail(`tensor ${quote(name)} data offset ${offset} is not a multiple of the alignment ${alignment}`);
      tensors.push({ name, dims, shape: [...dims].reverse(), type: type!, offset, nbytes: elems * TENSOR_TYPE_BYTES[type!] });
    }
    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    const dataSize = size - dataOffset;
    if (nTensors > 0 && dataSize < 0) fail(`the data section would start at byte ${dataOffset}, past the end of the file (${size} bytes)`);
    const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
    for (let i = 0; i < byOffset.length; i++) {
      const t = byOffset[i]!;
      if (t.offset + t.nbytes > dataSize) fail(`tensor ${quote(t.name)} data (${t.nbytes} bytes at data offset ${t.offset}) runs past the end of the file (data section holds ${Math.max(0, dataSize)} bytes)`);
      const next = byOffset[i + 1];
      if (next !== undefined && t.offset + t.nbytes > next.offset) fail(`tensors ${quote(t.name)} and ${quote(next.name)} overlap in the data section`);
    }

    const byName = new Map(tensors.map((t) => [t.name, t]));
    const tensor = (name: string): GgufTensorInfo => {
      const t = byName.get(name);
      if (t === undefined) throw new UserError(`${file}: no tensor ${quote(name)}`);
      return t;
    };
    return {
      file, version, alignment, kv, tensors, dataOffset, fileSize: size, tensor,
      readTensorF32: (name: string): Float32Array => readTensorData(file, dataOffset, tensor(name)),
    };
  } finally {
    fs.closeSync(fd);
  }
}

function readTensorData(file: string, dataOffset: number, t: GgufTensorInfo): Float32Array {
  const bytes = new Uint8Array(t.nbytes);
  const fd = fs.openSync(file, 'r');
  try {
    let got = 0;
    while (got < t.nbytes) {
      const r = fs.readSync(fd, bytes, got, t.nbytes - got, dataOffset + t.offset + got);
      if (r === 0) throw new UserError(`${file}: tensor ${quote(t.name)} data ends early (the file changed since it was opened?)`);
      got += r;
    }
  } finally {
    fs.closeSync(fd);
  }
  const dv = new DataView(bytes.buffer);
  const n = t.nbytes / TENSOR_TYPE_BYTES[t.type];
  const out = new Float32Array(n);
  if (t.type === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  else for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
  return out;
}

// ------------------------------------------------------------------------------------ typed access

/** Reads metadata with a typed answer; a missing or mistyped key is a UserError naming it. */
export function ggufString(g: GgufFile, key: string): string {
  const v = g.kv.get(key);
  if (v === undefined) throw new UserError(`${g.file}: GGUF key ${quote(key)} is missing`);
  if (v.type !== 'string') throw new UserError(`${g.file}: GGUF key ${quote(key)} has type ${describeType(v)} (string expected)`);
  return v.value;
}

/** An integer-typed key (any width) as a number; refused if not a safe integer. */
export function ggufInt(g: GgufFile, key: string): number {
  const v = g.kv.get(key);
  if (v === undefined) throw new UserError(`${g.file}: GGUF key ${quote(key)} is missing`);
  if (v.type === 'uint64' || v.type === 'int64') {
    if (v.value > BigInt(Number.MAX_SAFE_INTEGER) || v.value < -BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${g.file}: GGUF key ${quote(key)} = ${v.value} is too large`);
    return Number(v.value);
  }
  if (v.type === 'uint8' || v.type === 'int8' || v.type === 'uint16' || v.type === 'int16' || v.type === 'uint32' || v.type === 'int32') return v.value;
  throw new UserError(`${g.file}: GGUF key ${quote(key)} has type ${describeType(v)} (an integer expected)`);
}

/** A float- or integer-typed key as a number. */
export function ggufNumber(g: GgufFile, key: string): number {
  const v = g.kv.get(key);
  if (v !== undefined && (v.type === 'float32' || v.type === 'float64')) return v.value;
  return ggufInt(g, key);
}

/** A string-array key. */
export function ggufStringArray(g: GgufFile, key: string): readonly string[] {
  const v = g.kv.get(key);
  if (v === undefined) throw new UserError(`${g.file}: GGUF key ${quote(key)} is missing`);
  if (v.type !== 'array' || v.itemType !== 'string') throw new UserError(`${g.file}: GGUF key ${quote(key)} has type ${describeType(v)} (array of string expected)`);
  return v.value;
}

/** An integer-array key as numbers. */
export function ggufIntArray(g: GgufFile, key: string): ArrayLike<number> {
  const v = g.kv.get(key);
  if (v === undefined) throw new UserError(`${g.file}: GGUF key ${quote(key)} is missing`);
  if (v.type !== 'array' || !['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32'].includes(v.itemType)) throw new UserError(`${g.file}: GGUF key ${quote(key)} has type ${describeType(v)} (array of integers expected)`);
  return v.value as ArrayLike<number>;
}

function describeType(v: GgufValue): string {
  return v.type === 'array' ? `array of ${v.itemType}` : v.type;
}
