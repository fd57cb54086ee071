import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { decodeSafetensors, encodeHalf, encodeSafetensors, f16BitsToF32, readSafetensors, toFloat32, writeSafetensors } from './safetensors.js';
import { UserError } from '../util/errors.js';

function sample() {
  const a = new Float32Array([1.5, -2.25, 3, Math.PI, -0, 1e-30]);
  const b = new Int32Array([7, -8, 2147483647]);
  const c = new Float64Array([Math.E]);
  const d = new Uint8Array([1, 2, 3]); // odd byte count: the next tensor would be unaligned in the file
  const e = new Float32Array([9, 10]);
  return [
    { name: 'blocks.0.wqkv', shape: [2, 3], data: a },
    { name: 'ints', shape: [3], data: b },
    { name: 'f64', shape: [], data: c },
    { name: 'bytes', shape: [3], data: d },
    { name: 'after_bytes', shape: [1, 2], data: e },
  ];
}

test('safetensors round trip keeps names, shapes, dtypes, bits and metadata', () => {
  const ts = sample();
  const bytes = encodeSafetensors(ts, { step: '12', note: 'héllo' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0, 'data starts 8-byte aligned');
  const f = decodeSafetensors(bytes, 'mem');
  assert.deepEqual(f.metadata, { step: '12', note: 'héllo' });
  assert.deepEqual([...f.tensors.keys()], ts.map((t) => t.name));
  for (const t of ts) {
    const got = f.tensors.get(t.name)!;
    assert.deepEqual(got.shape, t.shape);
    assert.equal(got.data.constructor, t.data.constructor);
    assert.deepEqual(new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength), new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  assert.ok(Object.is((f.tensors.get('blocks.0.wqkv')!.data as Float32Array)[4], -0));
});

test('safetensors writes views of a SharedArrayBuffer (the wasm arena) and reads them back from disk', () => {
  const sab = new SharedArrayBuffer(64);
  const view = new Float32Array(sab, 16, 4);
  view.set([1, 2, 3, 4]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));
  const p = path.join(dir, 'x.safetensors');
  writeSafetensors(p, [{ name: 'w', shape: [2, 2], data: view }]);
  const f = readSafetensors(p);
  assert.deepEqual([...f.tensors.get('w')!.data], [1, 2, 3, 4]);
  fs.rmSync(dir, { recursive: true });
});

test('safetensors files open with an independent reader (python json + numpy)', (t) => {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('python3 with numpy not available');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));
  const p = path.join(dir, 'x.safetensors');
  writeSafetensors(p, sample());
  const py = `
import json, struct, numpy as np, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8+n])
s, e = h['blocks.0.wqkv']['data_offsets']
a = np.frombuffer(b[8+n+s:8+n+e], dtype='<f4').reshape(h['blocks.0.wqkv']['shape'])
s, e = h['ints']['data_offsets']
i = np.frombuffer(b[8+n+s:8+n+e], dtype='<i4')
print(json.dumps([a.tolist(), i.tolist()]))`;
  const r = spawnSync('python3', ['-c', py, p], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [a, i] = JSON.parse(r.stdout) as [number[][], number[]];
  assert.deepEqual(a, [[1.5, -2.25, 3], [Math.fround(Math.PI), -0, Math.fround(1e-30)]]);
  assert.deepEqual(i, [7, -8, 2147483647]);
  fs.rmSync(dir, { recursive: true });
});

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeSafetensors(bytes, 'ckpt.safetensors'), (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, /^ckpt\.safetensors is not a valid safetensors file: /);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

function withHeader(header: object, dataBytes: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

test('safetensors refuses truncated, garbled and inconsistent files with one line', () => {
  const good = encodeSafetensors(sample());
  // Truncated at every kind of place: inside the length, inside the header, inside the data.
  rejects(good.subarray(0, 5), /truncated/);
  rejects(good.subarray(0, 20), /truncated/);
  rejects(good.subarray(0, good.length - 1), /truncated/);
  // One byte too many.
  const longer = new Uint8Array(good.length + 4);
  longer.set(good);
  rejects(longer, /trailing bytes/);
  // A garbled header.
  const garbled = good.slice();
  garbled[9] = 0x7b; // '{' where a '"' was
  rejects(garbled, /not valid JSON/);
  // Absurd header length.
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  rejects(huge, /implausible/);
  // Size that does not match the shape.
  rejects(withHeader({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 12), /needs 16/);
  // Unknown dtype, bad shape, hole, overlap.
  rejects(withHeader({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2), /unsupported dtype/);
  // Absurd counts: a shape whose element count overflows, a header entry far past the data.
  rejects(withHeader({ w: { dtype: 'F32', shape: [1e15, 1e15], data_offsets: [0, 4] } }, 4), /needs/);
  rejects(withHeader({ w: { dtype: 'F32', shape: [1], data_offsets: [2 ** 50, 2 ** 50 + 4] } }, 4), /truncated/);
  rejects(withHeader({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /bad shape/);
  rejects(withHeader({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /hole or overlap/);
  rejects(
    withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12),
    /hole or overlap/,
  );
  rejects(withHeader([1, 2] as unknown as object, 0), /not a JSON object/);
});

test('readSafetensors names a missing file in one line', () => {
  assert.throws(() => readSafetensors('/nonexistent/dir/model.safetensors'), (e: unknown) => e instanceof UserError && /does not exist/.test(e.message));
});

/** Bits of one float32 converted to a 16-bit float. */
const f16 = (x: number): number => encodeHalf([x], 'F16')[0]!;
const bf16 = (x: number): number => encodeHalf([x], 'BF16')[0]!;
const f32bits = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0]!;
const fromBits = (b: number): number => new Float32Array(Uint32Array.of(b).buffer)[0]!;

test('f16: exact values, round to nearest even, subnormals, overflow to inf, inf and nan', () => {
  assert.equal(f16(1), 0x3c00);
  assert.equal(f16(-2), 0xc000);
  assert.equal(f16(0), 0x0000);
  assert.equal(f16(-0), 0x8000);
  assert.equal(f16(65504), 0x7bff); // the largest half
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1)
  assert.equal(f16(1 + 2 ** -11), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up
  assert.equal(f16(1 + 3 * 2 ** -11), 0x3c02);
  // just above halfway rounds up
  assert.equal(f16(1 + 2 ** -11 + 2 ** -20), 0x3c01);
  // a carry out of the mantissa bumps the exponent: 2 - 2^-12 rounds to 2
  assert.equal(f16(2 - 2 ** -12), 0x4000);
  // overflow: 65520 is halfway between 65504 and 65536 (not representable): ties to even = inf
  assert.equal(f16(65519), 0x7bff);
  assert.equal(f16(65520), 0x7c00);
  assert.equal(f16(1e6), 0x7c00);
  assert.equal(f16(-1e6), 0xfc00);
  assert.equal(f16(Infinity), 0x7c00);
  assert.equal(f16(-Infinity), 0xfc00);
  const nan = f16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  // subnormals: the smallest is 2^-24 (bits 1), the largest 1023 * 2^-24
  assert.equal(f16(2 ** -24), 0x0001);
  assert.equal(f16(-(2 ** -24)), 0x8001);
  assert.equal(f16(1023 * 2 ** -24), 0x03ff);
  assert.equal(f16(2 ** -14), 0x0400); // the smallest normal
  // 2^-25 is halfway between 0 and 2^-24: ties to even = 0; a bit more rounds up
  assert.equal(f16(2 ** -25), 0x0000);
  assert.equal(f16(2 ** -25 * 1.0000001), 0x0001);
  // 3 * 2^-25 is halfway between 2^-24 (odd) and 2^-23 (even): rounds up to 2
  assert.equal(f16(3 * 2 ** -25), 0x0002);
  // the largest subnormal plus half a unit rounds up into the smallest normal
  assert.equal(f16(1023.5 * 2 ** -24), 0x0400);
  assert.equal(f16(1e-10), 0x0000);
  assert.equal(f16(fromBits(1)), 0x0000); // a float32 subnormal
  // reading back is exact for every finite half
  for (let h = 0; h < 0x10000; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) assert.ok((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0, `h=${h}`);
    else assert.equal(f16(x), h, `h=${h.toString(16)} x=${x}`);
  }
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
});

test('bf16: round to nearest even on the low 16 bits, overflow to inf, inf and nan', () => {
  assert.equal(bf16(1), 0x3f80);
  assert.equal(bf16(-0), 0x8000);
  // 1 + 2^-8 is halfway between 1 (even) and 1 + 2^-7: stays 1
  assert.equal(bf16(1 + 2 ** -8), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: rounds up
  assert.equal(bf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(bf16(fromBits(0x3f808001)), 0x3f81); // just above halfway
  assert.equal(bf16(fromBits(0x3f807fff)), 0x3f80); // just below
  assert.equal(bf16(fromBits(0x7f7fffff)), 0x7f80); // the largest float32 rounds to inf
  assert.equal(bf16(Infinity), 0x7f80);
  assert.equal(bf16(-Infinity), 0xff80);
  const nan = bf16(NaN);
  assert.equal(nan & 0x7f80, 0x7f80);
  assert.notEqual(nan & 0x7f, 0);
  // a NaN whose payload lives only in the low bits must not turn into inf
  assert.notEqual(bf16(fromBits(0x7f800001)) & 0x7f, 0);
  // subnormals round like everything else
  assert.equal(bf16(fromBits(0x00008000)), 0x0000);
  assert.equal(bf16(fromBits(0x00018000)), 0x0002);
  assert.equal(f32bits(toFloat32({ dtype: 'BF16', shape: [1], data: Uint16Array.of(0x3f81) })[0]!), 0x3f810000);
});

test('F16 and BF16 tensors round-trip through a file and widen back to float32', () => {
  const x = Float32Array.from([0, 1, -1.5, 3.14159, 65504, 1e-7, 70000, -0]);
  const bytes = encodeSafetensors([
    { name: 'h', shape: [2, 4], data: encodeHalf(x, 'F16'), dtype: 'F16' },
    { name: 'b', shape: [8], data: encodeHalf(x, 'BF16'), dtype: 'BF16' },
  ]);
  const f = decodeSafetensors(bytes, 'mem');
  const h = f.tensors.get('h')!;
  const b = f.tensors.get('b')!;
  assert.equal(h.dtype, 'F16');
  assert.equal(b.dtype, 'BF16');
  const hx = toFloat32(h);
  assert.deepEqual([...hx.slice(0, 3)], [0, 1, -1.5]);
  assert.equal(hx[3], 3.140625);
  assert.equal(hx[4], 65504);
  assert.equal(hx[6], Infinity);
  assert.ok(Math.abs(hx[5]! - 1e-7) < 2 ** -25); // a half subnormal
  const bx = toFloat32(b);
  assert.equal(bx[3], 3.140625);
  assert.equal(bx[6], 70144);
  assert.ok(Object.is(bx[7], -0));
  assert.throws(() => encodeSafetensors([{ name: 'u', shape: [1], data: new Uint16Array(1) }]), /needs dtype F16 or BF16/);
});

test('F16 rounding agrees with numpy on 20,000 awkward float32 values', (t) => {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('python3 with numpy not available');
  // random bit patterns over the whole float32 range (inf, nan, subnormals, overflow included)
  // plus values clustered around the half range, where the rounding cases are
  let seed = 12345;
  const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const x = new Float32Array(20000);
  for (let i = 0; i < x.length; i++) {
    x[i] = i % 2 ? fromBits(Math.floor(rand() * 2 ** 32)) : (rand() - 0.5) * 2 ** (Math.floor(rand() * 50) - 30);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));
  const p = path.join(dir, 'h.safetensors');
  writeSafetensors(p, [{ name: 'x', shape: [x.length], data: x }, { name: 'h', shape: [x.length], data: encodeHalf(x, 'F16'), dtype: 'F16' }]);
  const py = `
import json, struct, numpy as np, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8+n])
def get(k, dt):
    s, e = h[k]['data_offsets']
    return np.frombuffer(b[8+n+s:8+n+e], dtype=dt)
x = get('x', '<f4'); ours = get('h', '<f2')
with np.errstate(all='ignore'):
    ref = x.astype(np.float16)
same = (ref.view(np.uint16) == ours.view(np.uint16)) | (np.isnan(ref) & np.isnan(ours))
print(int((~same).sum()), h['h']['dtype'])`;
  const r = spawnSync('python3', ['-c', py, p], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '0 F16');
});

test('readSafetensors refuses corrupt files as decode does, and a huge file without reading its data', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));
  try {
    const good = encodeSafetensors(sample());
    const file = (name: string, bytes: Uint8Array): string => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, bytes);
      return p;
    };
    const refusedFile = (p: string, pattern: RegExp): void => {
      assert.throws(() => readSafetensors(p), (e: unknown) => e instanceof UserError && e.message.startsWith(`${p} is not a valid safetensors file: `) && pattern.test(e.message) && !e.message.includes('\n'));
    };
    refusedFile(file('short', good.subarray(0, 5)), /only 5 bytes/);
    refusedFile(file('cut-header', good.subarray(0, 20)), /truncated/);
    refusedFile(file('cut-data', good.subarray(0, good.length - 1)), /truncated/);
    refusedFile(file('lies', withHeader({ w: { dtype: 'F32', shape: [1000, 1000], data_offsets: [0, 4000000] } }, 4)), /truncated/);
    // The same tensors read from a file equal the decoded ones.
    const back = readSafetensors(file('good', good));
    assert.deepEqual([...back.tensors.keys()], sample().map((t) => t.name));
    assert.deepEqual([...back.tensors.get('ints')!.data], [7, -8, 2147483647]);
    // A 3 GB (sparse) file whose header is garbage: refused at once. Reading it whole first would
    // take seconds and gigabytes (and Node refuses to read files over 2 GB into one buffer).
    const big = path.join(dir, 'big.safetensors');
    const header = Buffer.from('{"w": nonsense}');
    const head = new Uint8Array(8 + header.length);
    new DataView(head.buffer).setBigUint64(0, BigInt(header.length), true);
    head.set(header, 8);
    fs.writeFileSync(big, head);
    fs.truncateSync(big, 3 * 2 ** 30);
    const t0 = performance.now();
    refusedFile(big, /not valid JSON/);
    assert.ok(performance.now() - t0 < 500, 'refused without reading the data');
    assert.throws(() => readSafetensors(dir), (e: unknown) => e instanceof UserError && /is a folder, not a safetensors file$/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
