import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NpyWriter, npyHeader, NPY_HEADER_BYTES } from './npy.js';
import { MemoryTokenLoader, TokenLoader, fixedValBatches, permute } from './loader.js';
import { UserError } from '../util/errors.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-loader-'));
}

/** A token file whose id at position i is i mod 65536: every window is checkable. */
function rampFile(dir: string, n: number): string {
  const f = path.join(dir, 'ramp.npy');
  const w = new NpyWriter(f, 'uint16');
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i % 65536;
  w.append(ids);
  w.finish();
  return f;
}

function batches(l: TokenLoader, count: number): number[][] {
  const n = l.batchSize * l.seqLen;
  const x = new Int32Array(n);
  const y = new Int32Array(n);
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    l.nextBatch(x, y);
    out.push([...x, ...y]);
  }
  return out;
}

test('windows are contiguous and targets are inputs shifted by one', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 5000);
  for (const mode of ['random', 'epoch'] as const) {
    const l = new TokenLoader(f, { seqLen: 16, batchSize: 4, seed: 7, mode });
    assert.equal(l.numTokens, 5000);
    const x = new Int32Array(64);
    const y = new Int32Array(64);
    for (let k = 0; k < 50; k++) {
      l.nextBatch(x, y);
      for (let b = 0; b < 4; b++) {
        const s = x[b * 16]!;
        assert.ok(s + 16 < 5000);
        if (mode === 'epoch') assert.equal(s % 16, 0);
        for (let t = 0; t < 16; t++) {
          assert.equal(x[b * 16 + t], s + t);
          assert.equal(y[b * 16 + t], s + t + 1);
        }
      }
    }
    l.close();
  }
  fs.rmSync(dir, { recursive: true });
});

test('same seed, same batches; another seed, other batches', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 20000);
  for (const mode of ['random', 'epoch'] as const) {
    const a = batches(new TokenLoader(f, { seqLen: 8, batchSize: 2, seed: 1, mode }), 20);
    const b = batches(new TokenLoader(f, { seqLen: 8, batchSize: 2, seed: 1, mode }), 20);
    const c = batches(new TokenLoader(f, { seqLen: 8, batchSize: 2, seed: 2, mode }), 20);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  }
  fs.rmSync(dir, { recursive: true });
});

test('restore(state()) continues the exact sequence, also across epochs and through JSON', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 1000);
  for (const mode of ['random', 'epoch'] as const) {
    const a = new TokenLoader(f, { seqLen: 10, batchSize: 3, seed: 99, mode });
    batches(a, 45); // epoch mode: 99 windows, so this crosses an epoch boundary
    const saved = JSON.parse(JSON.stringify(a.state()));
    const expected = batches(a, 60);
    const b = new TokenLoader(f, { seqLen: 10, batchSize: 3, seed: 99, mode });
    b.restore(saved);
    assert.deepEqual(batches(b, 60), expected);
    const wrong = new TokenLoader(f, { seqLen: 11, batchSize: 3, seed: 99, mode });
    assert.throws(() => wrong.restore(saved), UserError);
  }
  fs.rmSync(dir, { recursive: true });
});

test('epoch mode visits every non-overlapping window once per epoch, in a new order each epoch', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 1001);
  const l = new TokenLoader(f, { seqLen: 10, batchSize: 1, seed: 5, mode: 'epoch' });
  const starts = batches(l, 200).map((b) => b[0]!);
  const e1 = starts.slice(0, 100);
  const e2 = starts.slice(100);
  assert.deepEqual([...e1].sort((p, q) => p - q), Array.from({ length: 100 }, (_, i) => i * 10));
  assert.deepEqual([...e2].sort((p, q) => p - q), Array.from({ length: 100 }, (_, i) => i * 10));
  assert.notDeepEqual(e1, e2);
  for (const n of [1, 2, 3, 17, 1000, 4097]) {
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) seen.add(permute(i, n, 3, 1));
    assert.equal(seen.size, n);
    assert.ok([...seen].every((v) => v >= 0 && v < n));
  }
  fs.rmSync(dir, { recursive: true });
});

test('random windows cover the file evenly', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 10001);
  const l = new TokenLoader(f, { seqLen: 1, batchSize: 1000, seed: 3 });
  const hist = new Array(10).fill(0);
  for (const b of batches(l, 20)) for (let i = 0; i < 1000; i++) hist[Math.floor(b[i]! / 1000)]++;
  for (const h of hist) assert.ok(h > 1700 && h < 2300, `bucket ${h}`);
  fs.rmSync(dir, { recursive: true });
});

test('a file shorter than seq_len + 1 tokens is a clear UserError', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 64);
  assert.throws(() => new TokenLoader(f, { seqLen: 64, batchSize: 1, seed: 0 }),
    (e: unknown) => e instanceof UserError && /holds 64 tokens, fewer than seq_len \+ 1 = 65/.test(e.message));
  assert.doesNotThrow(() => new TokenLoader(f, { seqLen: 63, batchSize: 1, seed: 0 }).close());
  fs.writeFileSync(path.join(dir, 'junk.npy'), 'not numpy');
  assert.throws(() => new TokenLoader(path.join(dir, 'junk.npy'), { seqLen: 4, batchSize: 1, seed: 0 }), /not a \.npy file/);
  fs.rmSync(dir, { recursive: true });
});

test('fixedValBatches: the same evenly spaced windows every time', () => {
  const dir = tmpDir();
  const f = rampFile(dir, 10000);
  const a = fixedValBatches(f, { seqLen: 32, batchSize: 4, count: 3 });
  const b = fixedValBatches(f, { seqLen: 32, batchSize: 4, count: 3 });
  assert.deepEqual(a, b);
  const starts = a.flatMap((bt) => [0, 1, 2, 3].map((i) => bt.inputs[i * 32]!));
  assert.equal(starts[0], 0);
  assert.equal(starts[11], 10000 - 33);
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  assert.ok(Math.max(...gaps) - Math.min(...gaps) <= 1);
  assert.equal(a[2]!.targets[127], a[2]!.inputs[127]! + 1);
  fs.rmSync(dir, { recursive: true });
});

test('constant memory: reading a 200 MB token file does not grow RSS', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'big.npy');
  const tokens = 100_000_000; // 200 MB of uint16
  // Sparse: header + truncate, so the test makes the file instantly without writing 200 MB.
  fs.writeFileSync(f, npyHeader('uint16', tokens));
  fs.truncateSync(f, NPY_HEADER_BYTES + 2 * tokens);
  const l = new TokenLoader(f, { seqLen: 256, batchSize: 8, seed: 1 });
  const x = new Int32Array(8 * 256);
  const y = new Int32Array(8 * 256);
  for (let i = 0; i < 200; i++) l.nextBatch(x, y); // warm up (JIT, buffers)
  global.gc?.();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 5000; i++) l.nextBatch(x, y); // 10M windows tokens read from all over the file
  const after = process.memoryUsage().rss;
  l.close();
  assert.ok(after - before < 20 * 1024 * 1024, `RSS grew by ${((after - before) / 1048576).toFixed(1)} MB`);
  fs.rmSync(dir, { recursive: true });
});

test('MemoryTokenLoader (the browser trainer\'s) takes the same windows as TokenLoader, resumes from its state, and gives the same fixed batches', () => {
  const dir = tmpDir();
  const n = 5000;
  const f = rampFile(dir, n);
  const ids = new Uint16Array(n);
  for (let i = 0; i < n; i++) ids[i] = i % 65536;
  for (const mode of ['random', 'epoch'] as const) {
    const file = new TokenLoader(f, { seqLen: 16, batchSize: 3, seed: 7, mode });
    const mem = new MemoryTokenLoader(ids, 16, 3, 7, mode);
    const x = new Int32Array(48);
    const y = new Int32Array(48);
    const memBatches = (count: number): number[][] => Array.from({ length: count }, () => { mem.nextBatch(x, y); return [...x, ...y]; });
    assert.deepEqual(memBatches(5), batches(file, 5), mode);
    const saved = mem.state();
    assert.deepEqual(saved, file.state());
    const next = memBatches(4);
    const again = new MemoryTokenLoader(ids, 16, 3, 7, mode);
    again.restore(saved);
    assert.deepEqual(Array.from({ length: 4 }, () => { again.nextBatch(x, y); return [...x, ...y]; }), next, `${mode}: restored`);
    file.close();
  }
  const mem = new MemoryTokenLoader(ids, 16, 3, 0);
  assert.deepEqual(mem.fixedBatches(2), fixedValBatches(f, { seqLen: 16, batchSize: 3, count: 2 }));
  assert.throws(() => new MemoryTokenLoader(ids.subarray(0, 16), 16, 3, 0), UserError);
  fs.rmSync(dir, { recursive: true, force: true });
});
