import fs from 'node:fs';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';

/**
 * The safetensors format (Hugging Face), our own reader and writer:
 *   8 bytes   little-endian u64 N, the header length
 *   N bytes   UTF-8 JSON: { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } },
 *             padded with spaces so the data starts on an 8-byte boundary
 *   rest      the tensors' raw little-endian bytes; offsets are relative to the start of this part,
 *             and the tensors cover it exactly (no holes, no overlaps).
 * The reader checks all of that, so a truncated or tampered file is refused with one line.
 */

export type StDtype = 'F32' | 'F64' | 'I32' | 'U8' | 'F16' | 'BF16';
/** F16 and BF16 tensors are held as their raw 16-bit patterns (Uint16Array); see toFloat32. */
export type StData = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

export interface StTensor {
  dtype: StDtype;
  shape: number[];
  data: StData;
}

/** A tensor to write: `dtype` is needed only for Uint16Array data (F16 or BF16 bits). */
export interface StInput {
  name: string;
  shape: readonly number[];
  data: StData;
  dtype?: StDtype;
}

export interface StFile {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

const DTYPE_BYTES: Record<StDtype, number> = { F32: 4, F64: 8, I32: 4, U8: 1, F16: 2, BF16: 2 };
/** A header larger than this is not one we wrote: refuse before parsing it. */
const MAX_HEADER_BYTES = 100 << 20;

function assertLittleEndian(): void {
  // Typed arrays use the platform's byte order; every platform Node and browsers run on today is
  // little-endian. Checked on a typed array (not os.endianness()) so browsers can run this too.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors: big-endian platforms are not supported');
}

/** The dtype of a typed array; Uint16Array is ambiguous (F16 or BF16), so `declared` must say which. */
export function dtypeOf(data: StData, declared?: StDtype): StDtype {
  const natural: StDtype | null =
    data instanceof Float32Array ? 'F32' : data instanceof Float64Array ? 'F64' : data instanceof Int32Array ? 'I32' : data instanceof Uint8Array ? 'U8' : null;
  if (natural === null) {
    if (declared === 'F16' || declared === 'BF16') return declared;
    throw new Error('safetensors: Uint16Array data needs dtype F16 or BF16');
  }
  if (declared !== undefined && declared !== natural) throw new Error(`safetensors: ${natural} data declared as ${declared}`);
  return natural;
}

// ---------------------------------------------------------------- 16-bit floats

/**
 * float32 -> IEEE half bits, rounding to nearest, ties to even. Values past the largest half
 * (65504) that do not round down to it become infinity; NaN stays a (quiet) NaN.
 */
export function f32ToF16Bits(x: number, scratch: { f: Float32Array; u: Uint32Array }): number {
  scratch.f[0] = x;
  const b = scratch.u[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  const m = b & 0x7fffff;
  if (e === 0xff) return sign | (m ? 0x7e00 | (m >>> 13) : 0x7c00);
  const E = e - 127;
  if (E > 15) return sign | 0x7c00;
  if (E >= -14) {
    // normal half: keep 10 mantissa bits; a carry out of the mantissa correctly bumps the exponent (up to inf)
    let q = ((E + 15) << 10) | (m >>> 13);
    const low = m & 0x1fff;
    if (low > 0x1000 || (low === 0x1000 && (q & 1) === 1)) q++;
    return sign | q;
  }
  // subnormal half: units of 2^-24; the full significand 1.m is M * 2^(E-23)
  const sh = -(E + 1);
  if (sh > 24) return sign;
  const M = m | 0x800000;
  let q = M >>> sh;
  const rem = M & ((1 << sh) - 1);
  const half = 1 << (sh - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q++;
  return sign | q; // q may reach 0x400: the smallest normal, encoded correctly
}

/** IEEE half bits -> the exact float value. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** float32 -> bfloat16 bits (the top half), rounding to nearest, ties to even; NaN stays NaN. */
export function f32ToBf16Bits(x: number, scratch: { f: Float32Array; u: Uint32Array }): number {
  scratch.f[0] = x;
  const b = scratch.u[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

function scratch(): { f: Float32Array; u: Uint32Array } {
  const f = new Float32Array(1);
  return { f, u: new Uint32Array(f.buffer) };
}

/** A float32 array as 16-bit float bits of the given kind. */
export function encodeHalf(src: ArrayLike<number>, dtype: 'F16' | 'BF16'): Uint16Array {
  const out = new Uint16Array(src.length);
  const s = scratch();
  const conv = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < src.length; i++) out[i] = conv(src[i]!, s);
  return out;
}

/** Any tensor's values as float32 (F16/BF16 widened exactly; F64 and integers rounded to float32). */
export function toFloat32(t: StTensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  const n = t.data.length;
  const out = new Float32Array(n);
  if (t.dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    const d = t.data as Uint16Array;
    for (let i = 0; i < n; i++) u[i] = d[i]! << 16;
  } else if (t.dtype === 'F16') {
    const d = t.data as Uint16Array;
    for (let i = 0; i < n; i++) out[i] = f16BitsToF32(d[i]!);
  } else {
    out.set(t.data);
  }
  return out;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Serialises named tensors (in the given order) into one safetensors byte array. */
export function encodeSafetensors(
  tensors: ReadonlyArray<StInput>,
  metadata: Record<string, string> = {},
): Uint8Array {
  assertLittleEndian();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) throw new Error(`safetensors: duplicate or reserved tensor name "${t.name}"`);
    if (numel(t.shape) !== t.data.length) throw new Error(`safetensors: tensor "${t.name}" has ${t.data.length} elements but shape [${t.shape.join(', ')}]`);
    const end = offset + t.data.byteLength;
    header[t.name] = { dtype: dtypeOf(t.data, t.dtype), shape: [...t.shape], data_offsets: [offset, end] };
    offset = end;
  }
  // TextEncoder, not Buffer: the browser build (src/web) encodes with this function too.
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json).length;
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    // Copy through a byte view: this also works for views into a SharedArrayBuffer (the wasm arena).
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

interface Entry { name: string; dtype: StDtype; shape: number[]; begin: number; end: number }

/**
 * Checks the 8-byte length against the file size and returns the header length. `fileBytes` is
 * the whole file's size, so a length past the end is refused before the header is read.
 */
function headerLength(first8: Uint8Array, fileBytes: number, bad: (why: string) => UserError): number {
  if (fileBytes < 8) throw bad(`only ${fileBytes} bytes (truncated?)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${n} is implausible`);
  const headerLen = Number(n);
  if (8 + headerLen > fileBytes) throw bad(`header says ${headerLen} bytes but the file has ${fileBytes - 8} after the length (truncated?)`);
  return headerLen;
}

/**
 * Parses and validates the JSON header against the number of data bytes that follow it: every
 * dtype, shape and offset, sizes that match the shapes, no tensor past the end, no holes or
 * overlaps. Nothing is allocated for the tensors until all of this holds.
 */
function parseHeader(headerBytes: Uint8Array, dataLen: number, bad: (why: string) => UserError): { entries: Entry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(headerBytes.buffer, headerBytes.byteOffset, headerBytes.byteLength).toString('utf8'));
  } catch {
    throw bad('the header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('__metadata__ is not an object');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw bad(`metadata "${k}" is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`entry "${name}" is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every(isNonNegInt)) throw bad(`tensor "${name}" has a bad shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !isNonNegInt(offs[0]) || !isNonNegInt(offs[1]) || offs[1] < offs[0]) {
      throw bad(`tensor "${name}" has bad data_offsets`);
    }
    const dtype = e.dtype as StDtype;
    const shape = e.shape as number[];
    const [begin, end] = offs as [number, number];
    if (end - begin !== numel(shape) * DTYPE_BYTES[dtype]) {
      throw bad(`tensor "${name}" spans ${end - begin} bytes but ${dtype}[${shape.join(', ')}] needs ${numel(shape) * DTYPE_BYTES[dtype]}`);
    }
    if (end > dataLen) throw bad(`tensor "${name}" ends at byte ${end} but only ${dataLen} data bytes follow the header (truncated?)`);
    entries.push({ name, dtype, shape, begin, end });
  }
  // The spec forbids holes and overlaps: sorted by offset, the tensors must tile the data exactly.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin);
  let cursor = 0;
  for (const e of sorted) {
    if (e.begin !== cursor) throw bad(`tensor "${e.name}" starts at byte ${e.begin}, expected ${cursor} (hole or overlap)`);
    cursor = e.end;
  }
  if (cursor !== dataLen) throw bad(`${dataLen - cursor} trailing bytes after the last tensor`);
  return { entries, metadata };
}

/** A typed array of the entry's dtype over `raw` (a fresh, aligned buffer of exactly its bytes). */
function typed(dtype: StDtype, raw: ArrayBuffer): StData {
  return dtype === 'F32' ? new Float32Array(raw)
    : dtype === 'F64' ? new Float64Array(raw)
      : dtype === 'I32' ? new Int32Array(raw)
        : dtype === 'U8' ? new Uint8Array(raw)
          : new Uint16Array(raw);
}

const badFor = (source: string) => (why: string): UserError => new UserError(`${source} is not a valid safetensors file: ${why}`);

/** Parses and fully validates a safetensors byte array; `source` names it in error messages. */
export function decodeSafetensors(bytes: Uint8Array, source: string): StFile {
  assertLittleEndian();
  const bad = badFor(source);
  const headerLen = headerLength(bytes.subarray(0, 8), bytes.byteLength, bad);
  const dataStart = 8 + headerLen;
  const { entries, metadata } = parseHeader(bytes.subarray(8, dataStart), bytes.byteLength - dataStart, bad);
  const tensors = new Map<string, StTensor>();
  for (const e of entries) {
    // slice() copies into a fresh, aligned buffer, whatever the tensor's offset in the file.
    const raw = bytes.buffer.slice(bytes.byteOffset + dataStart + e.begin, bytes.byteOffset + dataStart + e.end) as ArrayBuffer;
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typed(e.dtype, raw) });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (temp file, fsync, rename). */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyArray<StInput>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomicSync(path, encodeSafetensors(tensors, metadata));
}

/**
 * Reads a safetensors file: the length and header first, validated against the file's size,
 * then each tensor straight into its own buffer. A corrupt or truncated file is refused before
 * anything the size of its data is allocated, and the file is never held twice in memory.
 */
export function readSafetensors(path: string): StFile {
  assertLittleEndian();
  const bad = badFor(path);
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${path} does not exist`);
    if (code === 'EISDIR') throw new UserError(`${path} is a folder, not a safetensors file`);
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new UserError(`${path} is a folder, not a safetensors file`);
    const size = st.size;
    const readExactly = (buf: Uint8Array, at: number): void => {
      let got = 0;
      while (got < buf.byteLength) {
        const n = fs.readSync(fd, buf, got, buf.byteLength - got, at + got);
        if (n === 0) throw bad(`the file ended while reading it (changed meanwhile?)`);
        got += n;
      }
    };
    const first8 = new Uint8Array(Math.min(8, size));
    readExactly(first8, 0);
    const headerLen = headerLength(first8, size, bad);
    const headerBytes = new Uint8Array(headerLen);
    readExactly(headerBytes, 8);
    const dataStart = 8 + headerLen;
    const { entries, metadata } = parseHeader(headerBytes, size - dataStart, bad);
    const tensors = new Map<string, StTensor>();
    for (const e of entries) {
      const raw = new ArrayBuffer(e.end - e.begin);
      readExactly(new Uint8Array(raw), dataStart + e.begin);
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typed(e.dtype, raw) });
    }
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}
