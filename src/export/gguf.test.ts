import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { f16ToF32, f32ToF16, readGguf, writeGguf, ggufInt, ggufString, ggufStringArray, type GgufKv, type GgufTensorIn } from './gguf.js';
import { UserError } from '../util/errors.js';
import { mulberry32 } from '../util/rng.js';

let dir = '';
before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-gguf-')); });
after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

const KV: GgufKv[] = [
  { key: 'general.architecture', type: 'string', value: 'llama' },
  { key: 'u8', type: 'uint8', value: 200 },
  { key: 'i8', type: 'int8', value: -100 },
  { key: 'u16', type: 'uint16', value: 60000 },
  { key: 'i16', type: 'int16', value: -30000 },
  { key: 'u32', type: 'uint32', value: 4000000000 },
  { key: 'i32', type: 'int32', value: -2000000000 },
  { key: 'f32', type: 'float32', value: 1e-5 },
  { key: 'f64', type: 'float64', value: Math.PI },
  { key: 'b', type: 'bool', value: true },
  { key: 'u64', type: 'uint64', value: 2n ** 63n + 5n },
  { key: 'i64', type: 'int64', value: -(2n ** 62n) },
  { key: 'unicode ✓ key', type: 'string', value: 'héllo 🙂\n"quoted"' },
  { key: 'strs', type: 'array', itemType: 'string', value: ['a', '', 'Ġthe', '<|endoftext|>'] },
  { key: 'ints', type: 'array', itemType: 'int32', value: [1, -2, 3] },
  { key: 'floats', type: 'array', itemType: 'float32', value: [0.5, -1.25] },
  { key: 'big', type: 'array', itemType: 'uint64', value: [1n, 2n ** 40n] },
  { key: 'bools', type: 'array', itemType: 'bool', value: [true, false, true] },
  { key: 'empty', type: 'array', itemType: 'uint8', value: [] },
];

function tensors(seed: number): GgufTensorIn[] {
  const rand = mulberry32(seed);
  const vals = (n: number): Float32Array => Float32Array.from({ length: n }, () => rand() * 4 - 2);
  return [
    { name: 'token_embd.weight', shape: [7, 5], data: vals(35) },
    { name: 'blk.0.attn_norm.weight', shape: [5], data: vals(5) },
    { name: 'blk.0.attn_q.weight', shape: [5, 5], data: vals(25) },
    { name: 'odd', shape: [3, 1, 3], data: vals(9) },
  ];
}

function writeSample(name: string, dtype: 'F32' | 'F16' = 'F32'): string {
  const file = path.join(dir, name);
  writeGguf(file, KV, tensors(1), { dtype });
  return file;
}

test('GGUF round trip: every value type, F32 tensors, dims fastest first, aligned offsets', () => {
  const file = writeSample('rt.gguf');
  const g = readGguf(file);
  assert.equal(g.version, 3);
  assert.equal(g.alignment, 32);
  const first = [...g.kv.keys()][0];
  assert.equal(first, 'general.alignment');
  for (const p of KV) {
    const v = g.kv.get(p.key)!;
    assert.equal(v.type, p.type, p.key);
    if (p.type === 'array') {
      assert.equal(v.type === 'array' && v.itemType, p.itemType);
      const got = Array.from(v.value as ArrayLike<unknown>);
      const want = Array.from(p.value as ArrayLike<unknown>).map((x) => (typeof x === 'boolean' ? (x ? 1 : 0) : x));
      if (p.itemType === 'float32') assert.deepEqual(got, want.map((x) => Math.fround(x as number)));
      else assert.deepEqual(got, want);
    } else if (p.type === 'float32') {
      assert.equal(v.value, Math.fround(p.value));
    } else {
      assert.equal(v.value, p.value);
    }
  }
  assert.equal(ggufString(g, 'general.architecture'), 'llama');
  assert.equal(ggufInt(g, 'u32'), 4000000000);
  assert.deepEqual(ggufStringArray(g, 'strs'), ['a', '', 'Ġthe', '<|endoftext|>']);
  assert.throws(() => ggufInt(g, 'general.architecture'), (e: Error) => e instanceof UserError && /integer expected/.test(e.message));
  assert.throws(() => ggufString(g, 'nope'), (e: Error) => e instanceof UserError && /"nope" is missing/.test(e.message));

  const want = tensors(1);
  assert.deepEqual(g.tensors.map((t) => t.name), want.map((t) => t.name));
  assert.deepEqual(g.tensor('token_embd.weight').dims, [5, 7]);
  assert.deepEqual(g.tensor('token_embd.weight').shape, [7, 5]);
  assert.deepEqual(g.tensor('odd').dims, [3, 1, 3]);
  assert.equal(g.dataOffset % 32, 0);
  for (const t of g.tensors) {
    assert.equal(t.offset % 32, 0);
    assert.equal(t.type, 'F32');
    assert.deepEqual(g.readTensorF32(t.name), want.find((w) => w.name === t.name)!.data);
  }
  // Tightly packed as llama.cpp expects: each tensor at the previous one's end, rounded up to 32.
  let expect = 0;
  for (const t of g.tensors) {
    assert.equal(t.offset, expect);
    expect = Math.ceil((t.offset + t.nbytes) / 32) * 32;
  }
  assert.equal(g.fileSize, g.dataOffset + expect);
  // No temp file is left behind.
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

test('GGUF f16: tensors of 2+ dimensions stored as F16 (rounded to nearest even), 1-D stay F32', () => {
  const file = writeSample('f16.gguf', 'F16');
  const g = readGguf(file);
  const want = tensors(1);
  assert.equal(g.tensor('blk.0.attn_norm.weight').type, 'F32');
  assert.deepEqual(g.readTensorF32('blk.0.attn_norm.weight'), want[1]!.data);
  assert.equal(g.tensor('token_embd.weight').type, 'F16');
  assert.equal(g.tensor('token_embd.weight').nbytes, 35 * 2);
  const back = g.readTensorF32('token_embd.weight');
  const bits = f32ToF16(want[0]!.data);
  assert.deepEqual(back, Float32Array.from(bits, f16ToF32));
  for (let i = 0; i < back.length; i++) assert.ok(Math.abs(back[i]! - want[0]!.data[i]!) <= Math.abs(want[0]!.data[i]!) * 2 ** -11);
});

test('f32ToF16: exact values, overflow, subnormals, ties to even, and nearest for random values', () => {
  const h = (x: number): number => f32ToF16(Float32Array.of(x))[0]!;
  assert.equal(h(1), 0x3c00);
  assert.equal(h(-2), 0xc000);
  assert.equal(h(65504), 0x7bff);
  assert.equal(h(65520), 0x7c00); // halfway to the next binade rounds up to infinity
  assert.equal(h(1e6), 0x7c00);
  assert.equal(h(-Infinity), 0xfc00);
  assert.ok(Number.isNaN(f16ToF32(h(NaN))));
  assert.equal(h(-0), 0x8000);
  assert.equal(h(2 ** -24), 1);
  assert.equal(h(2 ** -25), 0); // tie between 0 and the smallest subnormal: even (0)
  assert.equal(h(1.5 * 2 ** -25), 1);
  assert.equal(h(3 * 2 ** -25), 2); // tie between 1 and 2 (in units of 2^-24): even (2)
  assert.equal(h(1 + 2 ** -11), 0x3c00); // tie: even
  assert.equal(h(1 + 3 * 2 ** -11), 0x3c02); // tie: even (up)
  const rand = mulberry32(5);
  for (let i = 0; i < 20000; i++) {
    const x = Math.fround((rand() - 0.5) * 2 ** (Math.floor(rand() * 40) - 26));
    const b = h(x);
    const v = f16ToF32(b);
    const err = Math.abs(v - x);
    for (const nb of [b - 1, b + 1]) {
      if ((nb & 0x7fff) >= 0x7c00 || nb < 0 || (b & 0x7fff) === 0) continue;
      assert.ok(err <= Math.abs(f16ToF32(nb) - x), `${x}: ${v} is not the nearest (${f16ToF32(nb)} is nearer)`);
    }
  }
});

test('writeGguf refuses bad arguments and leaves no file', () => {
  const file = path.join(dir, 'bad.gguf');
  assert.throws(() => writeGguf(file, [...KV, KV[0]!], []), /given twice/);
  assert.throws(() => writeGguf(file, [], [{ name: 'a', shape: [2, 2], data: new Float32Array(3) }]), /holds 4 values/);
  assert.throws(() => writeGguf(file, [], [{ name: 'a', shape: [1], data: new Float32Array(1) }, { name: 'a', shape: [1], data: new Float32Array(1) }]), /given twice/);
  assert.throws(() => writeGguf(file, [{ key: 'x', type: 'uint32', value: -1 }], []), /not a uint32/);
  assert.equal(fs.existsSync(file), false);
  assert.throws(() => writeGguf(path.join(dir, 'no', 'such', 'x.gguf'), KV, []), (e: Error) => e instanceof UserError && /folder does not exist/.test(e.message));
});

// ------------------------------------------------------------------ refusals of bad files

/** Expects readGguf to refuse with one line matching `re`. */
function refuses(bytes: Uint8Array, re: RegExp, name = 'corrupt.gguf'): void {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  assert.throws(() => readGguf(file), (e: Error) => {
    assert.ok(e instanceof UserError, `not a UserError: ${e.stack}`);
    assert.ok(!e.message.includes('\n'), `more than one line: ${e.message}`);
    assert.ok(e.message.startsWith(file), e.message);
    assert.match(e.message, re);
    return true;
  });
}

/** A small valid file as bytes, and the byte offsets of its parts. */
function sample(): { bytes: Buffer; tensorInfo: number; firstValueType: number } {
  const file = path.join(dir, 'small.gguf');
  writeGguf(file, [{ key: 'k', type: 'uint32', value: 7 }], [
    { name: 'a', shape: [2, 4], data: Float32Array.from({ length: 8 }, (_, i) => i) },
    { name: 'b', shape: [3], data: Float32Array.of(1, 2, 3) },
  ]);
  const bytes = fs.readFileSync(file);
  // header 24; kv "general.alignment": 8 + 17 + 4 + 4 = 33; kv "k": 8 + 1 + 4 + 4 = 17
  return { bytes, tensorInfo: 24 + 33 + 17, firstValueType: 24 + 8 + 17 };
}

const u64 = (b: Buffer, at: number, v: bigint): Buffer => { const c = Buffer.from(b); c.writeBigUInt64LE(v, at); return c; };
const u32 = (b: Buffer, at: number, v: number): Buffer => { const c = Buffer.from(b); c.writeUInt32LE(v, at); return c; };

test('readGguf refuses bad magic, versions, absurd counts and lying lengths, in one line', () => {
  const { bytes, firstValueType } = sample();
  assert.equal(readGguf(path.join(dir, 'small.gguf')).tensors.length, 2);
  refuses(Buffer.concat([Buffer.from('GGML'), bytes.subarray(4)]), /bad magic "GGML"/);
  refuses(Buffer.from('hello'), /too short/);
  refuses(u32(bytes, 4, 4), /version 4 is not supported/);
  refuses(u32(bytes, 4, 0x03000000), /big-endian/);
  refuses(u64(bytes, 8, 2n ** 62n), /tensor count .* more than the file can hold/);
  refuses(u64(bytes, 16, 2n ** 40n), /metadata count .* more than the file can hold/);
  refuses(u64(bytes, 24, 2n ** 63n), /length of key 0 .* more than the file can hold/);
  refuses(u64(bytes, 24, 200n), /length of key 0 at byte 24 is 200, more than the file can hold/);
  refuses(u32(bytes, firstValueType, 99), /"general.alignment" at byte \d+ has unknown value type 99/);
  refuses(u32(bytes, firstValueType, 5), /general.alignment has type int32 \(uint32 expected\)/);
  refuses(u32(bytes, firstValueType + 4, 24), /general.alignment 24 is not a power of two/);
  // An array whose count exceeds what the rest of the file holds.
  const arr = path.join(dir, 'arr.gguf');
  writeGguf(arr, [{ key: 'xs', type: 'array', itemType: 'int32', value: [1, 2, 3] }], []);
  const ab = fs.readFileSync(arr);
  const countAt = 24 + 33 + 8 + 2 + 4 + 4;
  assert.equal(ab.readBigUInt64LE(countAt), 3n);
  refuses(u64(ab, countAt, 2n ** 61n), /item count of array "xs" .* more than the file can hold/);
  refuses(u64(ab, countAt, 1000n), /more than the file can hold/);
  refuses(u32(ab, countAt - 4, 9), /nested arrays are not supported/);
  refuses(u32(ab, countAt - 4, 77), /unknown item type 77/);
  // A bool that is neither 0 nor 1.
  const bo = path.join(dir, 'bool.gguf');
  writeGguf(bo, [{ key: 'flag', type: 'bool', value: true }], []);
  const bb = fs.readFileSync(bo);
  const flagValue = bb.indexOf('flag') + 4 + 4;
  refuses(bb.subarray(0, flagValue), /value of "flag" at byte \d+ needs 1 bytes but the file ends 0 bytes later/);
  bb[flagValue] = 2;
  refuses(bb, /bool of value 2/);
});

test('readGguf refuses tensor data past the end, overlaps, misalignment, unknown and quantized types, duplicates', () => {
  const { bytes, tensorInfo } = sample();
  // tensor "a": name 8+1, n_dims 4, dims 16, type 4, offset 8 = 41 bytes; then "b": 8+1+4+8+4+8 = 33
  const aType = tensorInfo + 9 + 4 + 16;
  const aOffset = aType + 4;
  const bInfo = tensorInfo + 41;
  const bOffset = bInfo + 9 + 4 + 8 + 4;
  assert.equal(bytes.readBigUInt64LE(bOffset), 32n);
  refuses(bytes.subarray(0, bytes.length - 32), /tensor "b" data .* runs past the end of the file/);
  refuses(u64(bytes, bOffset, 16n), /tensors "a" and "b" overlap|not a multiple/);
  refuses(u64(bytes, bOffset, 0n), /tensors "a" and "b" overlap|tensors "b" and "a" overlap/);
  refuses(u64(bytes, aOffset, 4n), /tensor "a" data offset 4 is not a multiple of the alignment 32/);
  refuses(u64(bytes, aOffset, 2n ** 60n), /data offset of tensor "a" .* more than the file can hold/);
  refuses(u32(bytes, aType, 12), /tensor "a" has type Q4_K; only F32 and F16/);
  refuses(u32(bytes, aType, 30), /type BF16/);
  refuses(u32(bytes, aType, 250), /unknown type 250/);
  refuses(u64(bytes, tensorInfo + 9 + 4, 2n ** 40n), /dimension 0 of tensor "a" .* more than the file can hold/);
  refuses(u64(bytes, tensorInfo + 9 + 4, 0n), /empty dimension/);
  refuses(u64(bytes, tensorInfo + 9 + 4, 100n), /runs past the end|overlap/);
  refuses(u32(bytes, tensorInfo + 9, 5), /tensor "a" has 5 dimensions/);
  const dupT = Buffer.from(bytes);
  dupT[bInfo + 8] = 'a'.charCodeAt(0);
  refuses(dupT, /tensor "a" appears twice/);
  const dupK = path.join(dir, 'dupk.gguf');
  writeGguf(dupK, [{ key: 'ka', type: 'uint8', value: 1 }, { key: 'kb', type: 'uint8', value: 2 }], []);
  const dk = fs.readFileSync(dupK);
  dk[dk.indexOf('kb') + 1] = 'a'.charCodeAt(0);
  refuses(dk, /key "ka" appears twice/);
  const e = path.join(dir, 'missing.gguf');
  assert.throws(() => readGguf(e), (err: Error) => err instanceof UserError && /no such file/.test(err.message));
  assert.throws(() => readGguf(path.join(dir, 'small.gguf')).readTensorF32('zz'), (err: Error) => err instanceof UserError && /no tensor "zz"/.test(err.message));
});

test('readGguf on every truncation and on flipped header bytes: a good read or one UserError, never another error', () => {
  const { bytes } = sample();
  const file = path.join(dir, 'fuzz.gguf');
  const lastTensorEnd = bytes.length - 32 + 12; // "b" holds 12 bytes, then padding to 32
  const attempt = (b: Uint8Array): 'ok' | 'refused' => {
    fs.writeFileSync(file, b);
    try {
      readGguf(file);
      return 'ok';
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      assert.ok(!e.message.includes('\n'));
      return 'refused';
    }
  };
  for (let n = 0; n < bytes.length; n++) {
    // Only cutting into the final padding leaves a usable file.
    assert.equal(attempt(bytes.subarray(0, n)), n >= lastTensorEnd ? 'ok' : 'refused', `truncated to ${n} bytes`);
  }
  const rand = mulberry32(99);
  const headerEnd = bytes.length - 64;
  let refused = 0;
  for (let i = 0; i < 500; i++) {
    const c = Buffer.from(bytes);
    const flips = 1 + Math.floor(rand() * 3);
    for (let f = 0; f < flips; f++) c[Math.floor(rand() * headerEnd)] ^= 1 << Math.floor(rand() * 8);
    if (attempt(c) === 'refused') refused++;
  }
  assert.ok(refused > 200, `only ${refused} of 500 corrupted headers refused`);
});
