/**
 * The js oracle checked independently of its own code: hand-derived values, a naive gemm
 * written here, invariants (causal zeros, rows summing to 1, rotations preserving norms) and
 * float64 finite-difference gradients for every backward kernel. The shared suite
 * (kernels.test.ts) then holds every other backend to this oracle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ropeTables } from '../types.js';
import {
  adamwUpdate, crossEntropyForward, crossEntropyForwardBackward, embeddingBackward, embeddingForward,
  gemm, gemmStridedBatched, lionUpdate, rmsnormBackward, rmsnormForward, ropeBackward, ropeForward,
  scheduleFreeAdamwUpdate, softmaxCausalBackward, softmaxCausalForward, sumSquares, swigluBackward, swigluForward,
  createJsKernels,
} from './index.js';
import { assertAllClose, dot, fillInts, fillNormal, fillUniform, numericGradient, seededRng, toFloat64 } from '../testing.js';

/**
 * Central differences with h = 1e-5 in float64: truncation ~h^2 * f''' ~ 1e-10, rounding
 * ~1e-16 * |f| / h ~ 1e-11; a wrong factor or term is off by far more than this.
 */
const FD_TOL = { rtol: 1e-6, atol: 1e-7 };
/** Hand-derived values, checked to float64 rounding of a few operations. */
const EXACT = { rtol: 1e-12, atol: 1e-14 };

test('createJsKernels: name js, one thread, every kernel present', () => {
  const k = createJsKernels();
  assert.equal(k.name, 'js');
  assert.equal(k.threads, 1);
  for (const [key, val] of Object.entries(k)) if (key !== 'name' && key !== 'threads') assert.equal(typeof val, 'function', key);
});

test('gemm: hand example, and a naive triple loop for all forms with padded ld, alpha, beta', () => {
  // [1 2 3; 4 5 6] * [1 0; 0 1; 1 1] = [4 5; 10 11]
  const C = new Float64Array(4).fill(NaN);
  gemm(false, false, 2, 2, 3, 1, Float64Array.from([1, 2, 3, 4, 5, 6]), 3, Float64Array.from([1, 0, 0, 1, 1, 1]), 2, 0, C, 2);
  assert.deepEqual([...C], [4, 5, 10, 11]);

  const rng = seededRng(1);
  for (const tA of [false, true]) for (const tB of [false, true]) for (const [M, N, K] of [[1, 1, 1], [3, 5, 2], [7, 70, 9], [4, 3, 130]]) {
    const lda = (tA ? M : K) + 2, ldb = (tB ? K : N) + 1, ldc = N + 3;
    const A = fillUniform(new Float64Array((tA ? K : M) * lda), rng);
    const B = fillUniform(new Float64Array((tB ? N : K) * ldb), rng);
    const C0 = fillUniform(new Float64Array(M * ldc), rng);
    const opA = (i: number, k: number): number => (tA ? A[k * lda + i] : A[i * lda + k]);
    const opB = (k: number, j: number): number => (tB ? B[j * ldb + k] : B[k * ldb + j]);
    for (const [alpha, beta] of [[1, 0], [-0.5, 1], [2, 0.25]]) {
      const want = Float64Array.from(C0);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += opA(i, k) * opB(k, j);
        want[i * ldc + j] = alpha * s + beta * C0[i * ldc + j];
      }
      const got = Float64Array.from(C0);
      if (beta === 0) for (let i = 0; i < M; i++) got.fill(NaN, i * ldc, i * ldc + N); // beta 0: C not read
      gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
      assertAllClose(got, want, { ...EXACT, label: `gemm ${tA}/${tB} ${M}x${N}x${K} alpha=${alpha} beta=${beta}` });
    }
  }
});

test('gemm on float32 accumulates in float64: one rounding at the end', () => {
  const rng = seededRng(2);
  const K = 4096;
  const A = fillUniform(new Float32Array(K), rng);
  const B = fillUniform(new Float32Array(K), rng);
  const C = new Float32Array(1);
  gemm(false, false, 1, 1, K, 1, A, K, B, 1, 0, C, 1);
  const exact = dot(A, B);
  assert.equal(C[0], Math.fround(exact));
});

test('gemmStridedBatched equals separate gemms on subarrays', () => {
  const rng = seededRng(3);
  const [M, N, K, batch] = [5, 6, 7, 3];
  const sA = M * K + 4, sB = N * K + 2, sC = M * N + 3;
  const A = fillUniform(new Float64Array(batch * sA), rng);
  const B = fillUniform(new Float64Array(batch * sB), rng);
  const C = fillUniform(new Float64Array(batch * sC), rng);
  const want = Float64Array.from(C);
  for (let b = 0; b < batch; b++) gemm(false, true, M, N, K, 0.5, A.subarray(b * sA), K, B.subarray(b * sB), K, 1, want.subarray(b * sC), N);
  gemmStridedBatched(false, true, M, N, K, 0.5, A, K, sA, B, K, sB, 1, C, N, sC, batch);
  assert.deepEqual([...C], [...want]);
});

test('gemm rejects a leading dimension smaller than the matrix', () => {
  assert.throws(() => gemm(false, false, 2, 3, 4, 1, new Float64Array(8), 3, new Float64Array(12), 3, 0, new Float64Array(6), 3), RangeError);
});

test('embedding: forward copies rows, backward accumulates into repeated rows; its gradient matches finite differences', () => {
  const table = Float64Array.from([1, 2, 3, 4, 5, 6]); // V=3, C=2
  const tokens = Int32Array.from([2, 0, 2]);
  const out = new Float64Array(6);
  embeddingForward(out, tokens, table, 3, 2);
  assert.deepEqual([...out], [5, 6, 1, 2, 5, 6]);
  const dtable = Float64Array.from([10, 10, 10, 10, 10, 10]);
  embeddingBackward(dtable, Float64Array.from([1, 2, 3, 4, 5, 6]), tokens, 3, 2);
  assert.deepEqual([...dtable], [13, 14, 10, 10, 16, 18]);
  assert.throws(() => embeddingForward(out, Int32Array.from([3]), table, 1, 2), RangeError);

  const rng = seededRng(4);
  const [V, C, N] = [5, 3, 9];
  const tab = fillUniform(new Float64Array(V * C), rng);
  const toks = fillInts(new Int32Array(N), rng, V);
  const w = fillUniform(new Float64Array(N * C), rng);
  const o = new Float64Array(N * C);
  const num = numericGradient(tab, () => { embeddingForward(o, toks, tab, N, C); return dot(w, o); });
  const g = new Float64Array(V * C);
  embeddingBackward(g, w, toks, N, C);
  assertAllClose(g, num, { ...FD_TOL, label: 'embedding dtable' });
});

test('rmsnorm: hand example', () => {
  // x = [3, 4]: mean square 12.5, rstd = 1/sqrt(12.5); weight [1, 2]
  const out = new Float64Array(2), rstd = new Float64Array(1);
  rmsnormForward(out, rstd, Float64Array.from([3, 4]), Float64Array.from([1, 2]), 1, 2, 0);
  assertAllClose(rstd, [1 / Math.sqrt(12.5)], { ...EXACT });
  assertAllClose(out, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)], { ...EXACT });
  // eps enters under the square root: [1, 1] with eps 3 -> rstd = 1/2
  rmsnormForward(out, rstd, Float64Array.from([1, 1]), Float64Array.from([1, 1]), 1, 2, 3);
  assertAllClose(rstd, [0.5], { ...EXACT });
});

test('rmsnorm backward matches finite differences and accumulates', () => {
  const rng = seededRng(5);
  for (const [N, C, eps] of [[1, 1, 1e-5], [3, 7, 1e-5], [2, 16, 0.3]] as const) {
    const x = fillUniform(new Float64Array(N * C), rng, -2, 2);
    const wt = fillUniform(new Float64Array(C), rng, -1.5, 1.5);
    const dout = fillUniform(new Float64Array(N * C), rng);
    const out = new Float64Array(N * C), rstd = new Float64Array(N);
    const f = (): number => { rmsnormForward(out, rstd, x, wt, N, C, eps); return dot(dout, out); };
    const numX = numericGradient(x, f);
    const numW = numericGradient(wt, f);
    f();
    const d0x = fillUniform(new Float64Array(N * C), rng), d0w = fillUniform(new Float64Array(C), rng);
    const dx = Float64Array.from(d0x), dw = Float64Array.from(d0w);
    rmsnormBackward(dx, dw, dout, x, wt, rstd, N, C);
    for (let i = 0; i < dx.length; i++) dx[i] -= d0x[i];
    for (let i = 0; i < dw.length; i++) dw[i] -= d0w[i];
    assertAllClose(dx, numX, { ...FD_TOL, label: `rmsnorm dinp N=${N} C=${C}` });
    assertAllClose(dw, numW, { ...FD_TOL, label: `rmsnorm dweight N=${N} C=${C}` });
  }
});

test('rope: hand example, position 0 is the identity, rotate-half pairing', () => {
  // D = 2: inv_freq_0 = 1, so position t rotates (a, b) by t radians.
  const T = 2, D = 2;
  const cos = new Float64Array(T), sin = new Float64Array(T);
  ropeTables(cos, sin, T, D, 10000);
  const x = Float64Array.from([0.5, -2, 1, 0]); // rows t=0 and t=1
  ropeForward(x, 2, T, 1, D, 2, cos, sin);
  assertAllClose(x, [0.5, -2, Math.cos(1), Math.sin(1)], { ...EXACT });
  // D = 4, theta = 100: pairs (x0, x2) at angle t and (x1, x3) at angle t / 10.
  const cos4 = new Float64Array(2 * 2), sin4 = new Float64Array(2 * 2);
  ropeTables(cos4, sin4, 2, 4, 100);
  const y = Float64Array.from([0, 0, 0, 0, 1, 2, 3, 4, 9]); // row stride 4... plus one float past the last row
  ropeForward(y, 2, 2, 1, 4, 4, cos4, sin4);
  const [c1, s1, c2, s2] = [Math.cos(1), Math.sin(1), Math.cos(0.1), Math.sin(0.1)];
  assertAllClose(y, [0, 0, 0, 0, 1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 1 * s1 + 3 * c1, 2 * s2 + 4 * c2, 9], { ...EXACT });
});

test('rope: backward inverts forward, preserves pair norms, leaves the rest of each row alone, is the gradient', () => {
  const rng = seededRng(6);
  const [B, T, H, D, stride] = [2, 5, 3, 8, 3 * 8 + 4];
  const nRows = B * T;
  const cos = new Float64Array((T * D) / 2), sin = new Float64Array((T * D) / 2);
  ropeTables(cos, sin, T, D, 10000);
  const x0 = fillUniform(new Float64Array(nRows * stride), rng);
  const x = Float64Array.from(x0);
  ropeForward(x, nRows, T, H, D, stride, cos, sin);
  for (let r = 0; r < nRows; r++) {
    for (let h = 0; h < H; h++) for (let i = 0; i < D / 2; i++) {
      const a = r * stride + h * D + i, b = a + D / 2;
      assert.ok(Math.abs(Math.hypot(x[a], x[b]) - Math.hypot(x0[a], x0[b])) < 1e-14, `pair norm row ${r} head ${h} i ${i}`);
    }
    for (let j = H * D; j < stride; j++) assert.equal(x[r * stride + j], x0[r * stride + j], `row ${r} tail ${j} touched`);
  }
  assert.notDeepEqual([...x], [...x0]);
  ropeBackward(x, nRows, T, H, D, stride, cos, sin);
  assertAllClose(x, x0, { ...EXACT, label: 'rope backward(forward(x))' });

  const w = fillUniform(new Float64Array(nRows * stride), rng);
  const buf = new Float64Array(nRows * stride);
  const num = numericGradient(x0, () => { buf.set(x0); ropeForward(buf, nRows, T, H, D, stride, cos, sin); return dot(w, buf); });
  const g = Float64Array.from(w);
  ropeBackward(g, nRows, T, H, D, stride, cos, sin);
  assertAllClose(g, num, { ...FD_TOL, label: 'rope gradient' });
});

test('softmaxCausal: exact zeros above the diagonal, rows sum to 1, shift invariant, no overflow', () => {
  const T = 6, nMat = 2;
  const rng = seededRng(7);
  const att = fillUniform(new Float64Array(nMat * T * T), rng, -500, 500);
  for (let m = 0; m < nMat; m++) for (let t = 0; t < T; t++) att.fill(NaN, (m * T + t) * T + t + 1, (m * T + t + 1) * T);
  const shifted = Float64Array.from(att, (v, i) => (Number.isNaN(v) ? v : v + 3 * Math.floor(i / T)));
  softmaxCausalForward(att, nMat, T, 1);
  softmaxCausalForward(shifted, nMat, T, 1);
  for (let m = 0; m < nMat; m++) for (let t = 0; t < T; t++) {
    let s = 0;
    for (let j = 0; j < T; j++) {
      const v = att[(m * T + t) * T + j];
      if (j > t) assert.ok(Object.is(v, 0), `att[${m}][${t}][${j}] = ${v}, not +0`);
      else assert.ok(v >= 0 && v <= 1, `att[${m}][${t}][${j}] = ${v}`);
      s += v;
    }
    assert.ok(Math.abs(s - 1) < 1e-14, `row ${m},${t} sums to ${s}`);
  }
  assertAllClose(shifted, att, { ...EXACT, label: 'adding a constant to a row changes nothing' });
  // Hand example: scores [ln 1, ln 3] at scale 1 -> [1/4, 3/4]; with scale 2 -> [1/10, 9/10].
  const two = Float64Array.from([7, NaN, 0, Math.log(3)]);
  softmaxCausalForward(two, 1, 2, 2);
  assertAllClose(two, [1, 0, 0.1, 0.9], { ...EXACT });
});

test('softmaxCausal backward matches finite differences with respect to the raw scores', () => {
  const rng = seededRng(8);
  for (const [T, scale] of [[1, 1], [5, 0.35], [9, 2]] as const) {
    const nMat = 2;
    const s = fillNormal(new Float64Array(nMat * T * T), rng, 1.5);
    const w = fillUniform(new Float64Array(nMat * T * T), rng);
    const att = new Float64Array(s.length);
    const num = numericGradient(s, () => { att.set(s); softmaxCausalForward(att, nMat, T, scale); return dot(w, att); });
    att.set(s);
    softmaxCausalForward(att, nMat, T, scale);
    const g = Float64Array.from(w); // dL/datt = w everywhere (above the diagonal too; it must not matter)
    softmaxCausalBackward(g, att, nMat, T, scale);
    assertAllClose(g, num, { ...FD_TOL, label: `softmaxCausal T=${T} scale=${scale}` });
  }
});

test('swiglu: hand example and finite-difference gradient', () => {
  // g = 0: silu 0; g = ln 3: sigmoid 3/4, silu = 0.75 ln 3. up = [5, 2].
  const out = new Float64Array(2);
  const h = Float64Array.from([0, Math.log(3), 5, 2]); // N=1, F=2
  swigluForward(out, h, 1, 2);
  assertAllClose(out, [0, 0.75 * Math.log(3) * 2], { ...EXACT });
  // d gate = dout * up * s (1 + g (1 - s)); d up = dout * silu(g). dout = [1, 1].
  const dh = new Float64Array(4).fill(NaN);
  swigluBackward(dh, Float64Array.from([1, 1]), h, 1, 2);
  assertAllClose(dh, [5 * 0.5, 2 * 0.75 * (1 + Math.log(3) * 0.25), 0, 0.75 * Math.log(3)], { ...EXACT });

  const rng = seededRng(9);
  const [N, F] = [3, 5];
  const hh = fillUniform(new Float64Array(N * 2 * F), rng, -8, 8);
  const w = fillUniform(new Float64Array(N * F), rng);
  const o = new Float64Array(N * F);
  const num = numericGradient(hh, () => { swigluForward(o, hh, N, F); return dot(w, o); });
  const g = new Float64Array(N * 2 * F);
  swigluBackward(g, w, hh, N, F);
  assertAllClose(g, num, { ...FD_TOL, label: 'swiglu dh' });
});

test('crossEntropy: hand example, V = 1, and dlogits equals the gradient of dscale * sum(losses)', () => {
  // logits [0, ln 3], target 0: softmax [1/4, 3/4], loss ln 4; target 1: loss ln 4 - ln 3.
  const logits = Float64Array.from([0, Math.log(3), 0, Math.log(3)]);
  const losses = new Float64Array(2);
  crossEntropyForward(losses, logits, Int32Array.from([0, 1]), 2, 2);
  assertAllClose(losses, [Math.log(4), Math.log(4) - Math.log(3)], { ...EXACT });
  const d = new Float64Array(4);
  crossEntropyForwardBackward(d, losses, logits, Int32Array.from([0, 1]), 2, 2, 0.5);
  assertAllClose(d, [0.5 * (0.25 - 1), 0.5 * 0.75, 0.5 * 0.25, 0.5 * (0.75 - 1)], { ...EXACT });
  const one = new Float64Array(1), dOne = new Float64Array(1).fill(NaN);
  crossEntropyForwardBackward(dOne, one, Float64Array.from([42]), Int32Array.from([0]), 1, 1, 1);
  assert.deepEqual([one[0], dOne[0]], [0, 0]);
  assert.throws(() => crossEntropyForward(one, logits, Int32Array.from([2]), 1, 2), RangeError);

  const rng = seededRng(10);
  const [N, V, dscale] = [4, 7, 0.7];
  const lg = fillNormal(new Float64Array(N * V), rng, 3);
  const tg = fillInts(new Int32Array(N), rng, V);
  const ls = new Float64Array(N);
  const num = numericGradient(lg, () => { crossEntropyForward(ls, lg, tg, N, V); return dscale * ls.reduce((a, b) => a + b, 0); });
  const g = new Float64Array(N * V);
  crossEntropyForwardBackward(g, ls, lg, tg, N, V, dscale);
  assertAllClose(g, num, { ...FD_TOL, label: 'crossEntropy dlogits' });
  const inPlace = Float64Array.from(lg);
  const ls2 = new Float64Array(N);
  crossEntropyForwardBackward(inPlace, ls2, inPlace, tg, N, V, dscale);
  assert.deepEqual([...inPlace], [...g]);
  assert.deepEqual([...ls2], [...ls]);
  // Huge logits: no overflow.
  const big = Float64Array.from([1000, 999, -1000]);
  crossEntropyForward(ls, big, Int32Array.from([1]), 1, 3);
  assertAllClose([ls[0]], [Math.log(1 + Math.exp(1) + Math.exp(-1999))], { ...EXACT });
});

test('sumSquares in float64 on float32 input', () => {
  assert.equal(sumSquares(Float32Array.from([3, 4, 12]), 3), 169);
  assert.equal(sumSquares(Float32Array.from([3, 4, 12]), 2), 25);
  // 1 + 2^-24 squared exceeds float32's precision near 1; float64 keeps 2^-23.
  const x = Float32Array.from([1, 2 ** -12]);
  assert.equal(sumSquares(x, 2), 1 + 2 ** -24);
});

test('AdamW: two steps by hand', () => {
  // lr 0.1, b1 0.9, b2 0.99, eps 0, wd 0.1; p = 1, g = 0.5 then -0.5.
  // t=1: m = 0.05, v = 0.0025, m/bc1 = 0.05/0.1 = 0.5, v/bc2 = 0.0025/0.01 = 0.25 -> ratio 1;
  //      p = 1 - 0.1 (1 + 0.1 * 1) = 0.89.
  // t=2: m = 0.045 - 0.05 = -0.005, v = 0.002475 + 0.0025 = 0.004975;
  //      m/bc1 = -0.005/0.19 = -1/38, v/bc2 = 0.004975/0.0199 = 0.25 -> ratio -1/19;
  //      p = 0.89 - 0.1 (-1/19 + 0.089) = 0.8863631578947368.
  const p = Float64Array.from([1]), m = new Float64Array(1), v = new Float64Array(1);
  adamwUpdate(p, Float64Array.from([0.5]), m, v, 1, 0.1, 0.9, 0.99, 0, 0.1, 1 - 0.9, 1 - 0.99);
  assertAllClose([p[0], m[0], v[0]], [0.89, 0.05, 0.0025], { ...EXACT });
  adamwUpdate(p, Float64Array.from([-0.5]), m, v, 1, 0.1, 0.9, 0.99, 0, 0.1, 1 - 0.81, 1 - 0.9801);
  assertAllClose([p[0], m[0], v[0]], [0.8863631578947368, -0.005, 0.004975], { ...EXACT });
  // eps adds to sqrt(v_hat), not inside it: g = 1e-8, eps = 1e-8, t = 1 -> ratio 1e-8 / 2e-8 = 0.5.
  // A zero gradient with zero moments only decays: p = -2 - 0.1 * 0.1 * -2 = -1.98.
  const q = Float64Array.from([1, -2]), mq = new Float64Array(2), vq = new Float64Array(2);
  adamwUpdate(q, Float64Array.from([1e-8, 0]), mq, vq, 2, 0.1, 0.9, 0.99, 1e-8, 0, 0.1, 0.01);
  assertAllClose([q[0]], [0.95], { ...EXACT });
  adamwUpdate(q.subarray(1), new Float64Array(1), mq.subarray(1), vq.subarray(1), 1, 0.1, 0.9, 0.99, 1e-8, 0.1, 0.1, 0.01);
  assertAllClose([q[1]], [-1.98], { ...EXACT });
});

test('Lion: three steps by hand', () => {
  // lr 0.1, b1 0.9, b2 0.99, wd 0.1. Element 0: p = 1, m = 0; element 1: p = 2, m = 0, g = 0 always.
  // t=1, g=0.5:  c = 0.05 > 0 -> u = 1; p = 1 - 0.1 (1 + 0.1) = 0.89; m = 0.005.
  // t=2, g=-0.1: c = 0.0045 - 0.01 = -0.0055 -> u = -1 (interpolating with b2 would give +0.00395);
  //              p = 0.89 - 0.1 (-1 + 0.089) = 0.9811; m = 0.00495 - 0.001 = 0.00395.
  // t=3, g=0:    c = 0.003555 -> u = 1; p = 0.9811 - 0.1 (1 + 0.09811) = 0.871289; m = 0.0039105.
  // Element 1: sign(0) = 0, so only the decay: 2 -> 1.98 -> 1.9602 -> 1.940598.
  const p = Float64Array.from([1, 2]), m = new Float64Array(2);
  const expected = [[0.89, 0.005, 1.98], [0.9811, 0.00395, 1.9602], [0.871289, 0.0039105, 1.940598]];
  [0.5, -0.1, 0].forEach((g, t) => {
    lionUpdate(p, Float64Array.from([g, 0]), m, 2, 0.1, 0.9, 0.99, 0.1);
    assertAllClose([p[0], m[0], p[1]], expected[t], { ...EXACT, label: `lion step ${t + 1}` });
    assert.equal(m[1], 0);
  });
});

test('Schedule-Free AdamW: two steps by hand', () => {
  // Mid-run state y = 1, z = 2, x = 0.5, v = 0.04; lr 0.1, b1 0.9, b2 0.99, eps 0, wd 0.5, bc2 0.16.
  // Step A, g = 0.2, ck = 0.25: v = 0.0396 + 0.0004 = 0.04, sqrt(v/bc2) = 0.5;
  //   z = 2 - 0.1 (0.2/0.5 + 0.5 * y=1) = 1.91 (decay uses y: with z it would be 1.86);
  //   x = 0.75 * 0.5 + 0.25 * 1.91 = 0.8525; y = 0.1 * 1.91 + 0.9 * 0.8525 = 0.95825.
  // Step B, g = -0.2, ck = 0.2: v = 0.04; z = 1.91 - 0.1 (-0.4 + 0.5 * 0.95825) = 1.9020875;
  //   x = 0.8 * 0.8525 + 0.2 * 1.9020875 = 1.0624175; y = 0.19020875 + 0.95617575 = 1.1463845.
  const y = Float64Array.from([1]), z = Float64Array.from([2]), x = Float64Array.from([0.5]), v = Float64Array.from([0.04]);
  scheduleFreeAdamwUpdate(y, Float64Array.from([0.2]), z, x, v, 1, 0.1, 0.9, 0.99, 0, 0.5, 0.25, 0.16);
  assertAllClose([y[0], z[0], x[0], v[0]], [0.95825, 1.91, 0.8525, 0.04], { ...EXACT, label: 'sfadamw step A' });
  scheduleFreeAdamwUpdate(y, Float64Array.from([-0.2]), z, x, v, 1, 0.1, 0.9, 0.99, 0, 0.5, 0.2, 0.16);
  assertAllClose([y[0], z[0], x[0], v[0]], [1.1463845, 1.9020875, 1.0624175, 0.04], { ...EXACT, label: 'sfadamw step B' });
});

test('the same code runs on Float32Array (rmsnorm, softmax) and agrees with its float64 result', () => {
  // The same kernel code serves both dtypes; float32 storage costs ~1e-7 relative per rounding.
  const rng = seededRng(11);
  const [N, C] = [4, 9];
  const x64 = fillUniform(new Float64Array(N * C), rng), w64 = fillUniform(new Float64Array(C), rng);
  const x32 = Float32Array.from(x64), w32 = Float32Array.from(w64);
  const o64 = new Float64Array(N * C), r64 = new Float64Array(N), o32 = new Float32Array(N * C), r32 = new Float32Array(N);
  rmsnormForward(o64, r64, toFloat64(x32), toFloat64(w32), N, C, 1e-5);
  rmsnormForward(o32, r32, x32, w32, N, C, 1e-5);
  assertAllClose(o32, o64, { rtol: 1e-6, atol: 1e-7, label: 'rmsnorm float32' });
  const att32 = Float32Array.from(fillUniform(new Float64Array(2 * 16), rng, -3, 3));
  const att64 = toFloat64(att32);
  softmaxCausalForward(att32, 2, 4, 0.5);
  softmaxCausalForward(att64, 2, 4, 0.5);
  assertAllClose(att32, att64, { rtol: 1e-6, atol: 1e-8, label: 'softmax float32' });
});
