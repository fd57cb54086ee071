import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from './safetensors.js';
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
  rejects(withHeader({ w: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, 4), /unsupported dtype/);
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
