import { test } from 'node:test';
import assert from 'node:assert/strict';
import { permuteForGguf, unpermuteFromGguf } from './gguf-llama.js';
import { mulberry32 } from '../util/rng.js';

/** y = W x for a row-major [rows, cols] W. */
function matvec(w: Float32Array, rows: number, cols: number, x: Float64Array): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

const angle = (pos: number, i: number, D: number, theta: number): number => pos * Math.pow(theta, (-2 * i) / D);

/** Our (and Hugging Face's) RoPE: pairs (i, i + D/2) of each head. */
function ropeRotateHalf(v: Float64Array, nHead: number, pos: number, theta: number): Float64Array {
  const D = v.length / nHead;
  const out = new Float64Array(v);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < D / 2; i++) {
      const a = v[h * D + i]!;
      const b = v[h * D + i + D / 2]!;
      const t = angle(pos, i, D, theta);
      out[h * D + i] = a * Math.cos(t) - b * Math.sin(t);
      out[h * D + i + D / 2] = a * Math.sin(t) + b * Math.cos(t);
    }
  }
  return out;
}

/** llama.cpp's RoPE for the llama architecture (GGML_ROPE_TYPE_NORM): pairs (2i, 2i + 1). */
function ropeInterleaved(v: Float64Array, nHead: number, pos: number, theta: number): Float64Array {
  const D = v.length / nHead;
  const out = new Float64Array(v);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < D / 2; i++) {
      const a = v[h * D + 2 * i]!;
      const b = v[h * D + 2 * i + 1]!;
      const t = angle(pos, i, D, theta);
      out[h * D + 2 * i] = a * Math.cos(t) - b * Math.sin(t);
      out[h * D + 2 * i + 1] = a * Math.sin(t) + b * Math.cos(t);
    }
  }
  return out;
}

function randomVec(n: number, rand: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rand() * 2 - 1;
  return a;
}

test('permuteForGguf: interleaved RoPE of the permuted W x is the row-permutation of rotate-half RoPE of W x, and q.k is unchanged', () => {
  const rand = mulberry32(7);
  const nHead = 3;
  const D = 8;
  const rows = nHead * D;
  const cols = 10;
  const wq = randomVec(rows * cols, rand);
  const wk = randomVec(rows * cols, rand);
  const x = Float64Array.from(randomVec(cols, rand));
  const x2 = Float64Array.from(randomVec(cols, rand));
  const pq = permuteForGguf(wq, rows, cols, nHead);
  const pk = permuteForGguf(wk, rows, cols, nHead);
  for (const pos of [0, 1, 5, 37]) {
    const ours = ropeRotateHalf(matvec(wq, rows, cols, x), nHead, pos, 10000);
    const theirs = ropeInterleaved(matvec(pq, rows, cols, x), nHead, pos, 10000);
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < D / 2; i++) {
        assert.ok(Math.abs(theirs[h * D + 2 * i]! - ours[h * D + i]!) < 1e-12);
        assert.ok(Math.abs(theirs[h * D + 2 * i + 1]! - ours[h * D + i + D / 2]!) < 1e-12);
      }
    }
    // Attention scores per head agree (q at pos, k at another position).
    const kOurs = ropeRotateHalf(matvec(wk, rows, cols, x2), nHead, 3, 10000);
    const kTheirs = ropeInterleaved(matvec(pk, rows, cols, x2), nHead, 3, 10000);
    for (let h = 0; h < nHead; h++) {
      let a = 0;
      let b = 0;
      for (let d = 0; d < D; d++) {
        a += ours[h * D + d]! * kOurs[h * D + d]!;
        b += theirs[h * D + d]! * kTheirs[h * D + d]!;
      }
      assert.ok(Math.abs(a - b) < 1e-10, `head ${h} pos ${pos}: ${a} vs ${b}`);
    }
  }
  // Without the permutation the two conventions disagree (the test can fail).
  const wrong = ropeInterleaved(matvec(wq, rows, cols, x), nHead, 5, 10000);
  const right = ropeInterleaved(matvec(pq, rows, cols, x), nHead, 5, 10000);
  assert.ok(wrong.some((v, i) => Math.abs(v - right[i]!) > 1e-3));
});

test('permuteForGguf: explicit row order, and unpermuteFromGguf inverts it', () => {
  // 2 heads of D = 4, one column holding the row index.
  const w = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...permuteForGguf(w, 8, 1, 2)], [0, 2, 1, 3, 4, 6, 5, 7]);
  const rand = mulberry32(3);
  const m = randomVec(12 * 5, rand);
  assert.deepEqual(unpermuteFromGguf(permuteForGguf(m, 12, 5, 2), 12, 5, 2), m);
  assert.deepEqual(permuteForGguf(unpermuteFromGguf(m, 12, 5, 3), 12, 5, 3), m);
  assert.throws(() => permuteForGguf(m, 12, 5, 5), /heads/);
  assert.throws(() => permuteForGguf(m, 12, 4, 2), /matrix/);
});
