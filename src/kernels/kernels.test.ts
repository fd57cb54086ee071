/**
 * The shared kernel suite: every backend available on this machine (js, wasm, native; 1 and
 * 2 threads) against a float64 reference, the js kernels run on Float64Array copies of the
 * very same (float32) inputs. Backends that cannot be created here are skipped, not failed.
 *
 * Every buffer is allocated from the backend's own arena and carries GUARD extra elements
 * past what the kernel may touch; the reference copies them unchanged, so a write out of
 * bounds (or into gemm row padding) shows up as a mismatch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend, type Backend } from './index.js';
import { HeapArena, type Arena } from './arena.js';
import { ropeTables, type FloatArray, type Kernels } from './types.js';
import { createJsKernels } from './js/index.js';
import { assertAllClose, fillInts, fillNormal, fillUniform, maxAbs, seededRng, toFloat64, type Rng } from './testing.js';

/** The awkward sizes: 1, odd, just over / under multiples of SIMD widths and tile sizes. */
const SIZES = [1, 3, 17, 63, 129];
const GUARD = 16;

/**
 * gemm: float32 accumulation of K products has error ~ eps * sqrt(K) * sum_k |a_ik b_kj|
 * (random rounding; K * eps is the worst case). So each element's error is bounded by
 * GEMM_TOL(K) times its own magnitude |alpha| sum_k |a_ik||b_kj| + |beta||c_ij|, which a
 * missing term (~1/K of that magnitude) or a wrong index (~1) exceeds by far.
 */
const GEMM_TOL = (K: number): number => 1e-5 * Math.sqrt(K);
/**
 * Other kernels: a few float32 roundings per element (float32 eps = 6e-8), plus the error of
 * a SIMD exp/log approximation (~1e-7 relative), so 1e-5 relative. The absolute part is
 * scaled to the tensor (ATOL_FRAC * its largest |value|): it covers results that are small
 * because of cancellation in a reduction (rmsnorm's mean, softmax's weighted sum).
 */
const RTOL = 1e-5;
const ATOL_FRAC = 1e-5;
/** sumSquares: n positive terms accumulated at worst in float32: ~eps * sqrt(n) relative, 16x headroom. */
const SUMSQ_RTOL = (n: number): number => 1e-6 * Math.sqrt(n);

const ref = createJsKernels();

function close(actual: FloatArray, expected: Float64Array, label: string, rtol = RTOL, atolFrac = ATOL_FRAC): void {
  assertAllClose(actual, expected, { rtol, atol: atolFrac * Math.max(maxAbs(expected), 1e-30), label });
}

/** n + GUARD floats from the arena, all filled uniform in [lo, hi). */
function randFloats(arena: Arena, rng: Rng, n: number, lo = -1, hi = 1): FloatArray {
  return fillUniform(arena.floats(n + GUARD), rng, lo, hi);
}

function nanFloats(arena: Arena, n: number): FloatArray {
  return arena.floats(n + GUARD).fill(NaN);
}

/** Runs fn with arena scratch space that is released afterwards. */
function scoped<T>(arena: Arena, fn: () => T): T {
  const m = arena.mark();
  try {
    return fn();
  } finally {
    arena.release(m);
  }
}

function absCopy(x: FloatArray): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]);
  return out;
}

/**
 * Checks C against Cref element by element with the per-element bound GEMM_TOL(K) * mag.
 * Outside the M x N block mag is 0, so padding and guard must come back bit-identical
 * (NaN stays NaN).
 */
function checkGemm(C: FloatArray, Cref: Float64Array, mag: Float64Array, K: number, label: string): void {
  const tol = GEMM_TOL(K);
  for (let i = 0; i < Cref.length; i++) {
    const a = C[i];
    const e = Cref[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    const err = Math.abs(a - e);
    if (!(err <= tol * mag[i])) {
      assert.fail(`${label}: C[${i}] = ${a}, expected ${e} (|err| ${err.toExponential(3)} > ${tol.toExponential(2)} * magnitude ${mag[i].toExponential(3)})`);
    }
  }
}

interface GemmShape { tA: boolean; tB: boolean; M: number; N: number; K: number; alpha: number; beta: number }

/** Allocates A, B, C with padded leading dimensions, runs one (batched) gemm on both sides, compares. */
function runGemmCase(k: Kernels, arena: Arena, rng: Rng, s: GemmShape, batch: number): void {
  const { tA, tB, M, N, K, alpha, beta } = s;
  // Padding that varies with the shape, so a kernel using the minimal ld somewhere is caught.
  const lda = (tA ? M : K) + 1 + ((M + 2 * N + K) % 4);
  const ldb = (tB ? K : N) + 1 + ((M + N + 3 * K) % 3);
  const ldc = N + 2 + ((2 * M + N + K) % 3);
  const rowsA = tA ? K : M;
  const rowsB = tB ? N : K;
  const strideA = rowsA * lda + 5;
  const strideB = rowsB * ldb + 3;
  const strideC = M * ldc + 7;
  const lenA = (batch - 1) * strideA + rowsA * lda;
  const lenB = (batch - 1) * strideB + rowsB * ldb;
  const lenC = (batch - 1) * strideC + M * ldc;
  scoped(arena, () => {
    const A = randFloats(arena, rng, lenA);
    const B = randFloats(arena, rng, lenB);
    // Padding of A and B is NaN: a kernel that reads it (wrong ld) poisons its result.
    poisonPadding(A, batch, strideA, rowsA, lda, tA ? M : K);
    poisonPadding(B, batch, strideB, rowsB, ldb, tB ? K : N);
    const C = beta === 0 ? nanFloats(arena, lenC) : randFloats(arena, rng, lenC);
    const A64 = toFloat64(A);
    const B64 = toFloat64(B);
    const C64 = toFloat64(C);
    const mag = new Float64Array(C.length);
    const absC = absCopy(C);
    if (beta === 0) absC.fill(0);
    if (batch === 1) {
      k.gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      ref.gemm(tA, tB, M, N, K, alpha, A64, lda, B64, ldb, beta, C64, ldc);
      ref.gemm(tA, tB, M, N, K, Math.abs(alpha), absCopy(A), lda, absCopy(B), ldb, 0, mag, ldc);
    } else {
      k.gemmStridedBatched(tA, tB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch);
      ref.gemmStridedBatched(tA, tB, M, N, K, alpha, A64, lda, strideA, B64, ldb, strideB, beta, C64, ldc, strideC, batch);
      ref.gemmStridedBatched(tA, tB, M, N, K, Math.abs(alpha), absCopy(A), lda, strideA, absCopy(B), ldb, strideB, 0, mag, ldc, strideC, batch);
    }
    // Only the M x N blocks got a magnitude; add |beta| |C| there (absC is 0 elsewhere via mag = 0).
    for (let i = 0; i < mag.length; i++) if (mag[i] !== 0) mag[i] += Math.abs(beta) * absC[i];
    const label = `gemm${batch > 1 ? `StridedBatched(batch ${batch})` : ''} ${tA ? 't' : 'n'}${tB ? 't' : 'n'} M=${M} N=${N} K=${K} lda=${lda} ldb=${ldb} ldc=${ldc} alpha=${alpha} beta=${beta}`;
    checkGemm(C, C64, mag, K, label);
  });
}

function poisonPadding(X: FloatArray, batch: number, stride: number, rows: number, ld: number, cols: number): void {
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < rows; r++) X.fill(NaN, b * stride + r * ld + cols, b * stride + r * ld + ld);
    if (b < batch - 1) X.fill(NaN, b * stride + rows * ld, (b + 1) * stride);
  }
}

const FORMS: Array<[boolean, boolean]> = [[false, false], [true, false], [false, true], [true, true]];

type Case = (k: Kernels, arena: Arena, rng: Rng) => void;

const CASES: Array<[string, Case]> = [
  ['gemm: all forms, M/N/K in {1,3,17,63,129}, padded ld, beta 0 (NaN C) and 1', (k, arena, rng) => {
    for (const [tA, tB] of FORMS) {
      for (const M of SIZES) for (const N of SIZES) for (const K of SIZES) {
        runGemmCase(k, arena, rng, { tA, tB, M, N, K, alpha: 1, beta: 0 }, 1);
        runGemmCase(k, arena, rng, { tA, tB, M, N, K, alpha: -0.75, beta: 1 }, 1);
      }
    }
  }],
  ['gemm: alpha != 1 with beta 0, and beta 0.5', (k, arena, rng) => {
    for (const [tA, tB] of FORMS) {
      runGemmCase(k, arena, rng, { tA, tB, M: 17, N: 63, K: 129, alpha: 1.5, beta: 0 }, 1);
      runGemmCase(k, arena, rng, { tA, tB, M: 63, N: 17, K: 3, alpha: 0.125, beta: 0.5 }, 1);
    }
  }],
  ['gemmStridedBatched: batch 3, all forms, gaps between matrices', (k, arena, rng) => {
    for (const [tA, tB] of FORMS) {
      for (const M of [1, 17, 63]) for (const N of [3, 17, 63]) for (const K of [1, 17, 129]) {
        runGemmCase(k, arena, rng, { tA, tB, M, N, K, alpha: 0.5, beta: 0 }, 3);
        runGemmCase(k, arena, rng, { tA, tB, M, N, K, alpha: 1, beta: 1 }, 3);
      }
    }
  }],
  ['gemmStridedBatched: attention shapes (T=64, D=32, 6 heads)', (k, arena, rng) => {
    runGemmCase(k, arena, rng, { tA: false, tB: true, M: 64, N: 64, K: 32, alpha: 1, beta: 0 }, 6);
    runGemmCase(k, arena, rng, { tA: false, tB: false, M: 64, N: 32, K: 64, alpha: 1, beta: 0 }, 6);
    runGemmCase(k, arena, rng, { tA: true, tB: false, M: 64, N: 32, K: 64, alpha: 1, beta: 1 }, 6);
  }],
  ['embedding forward/backward (duplicate tokens)', (k, arena, rng) => {
    const V = 29;
    for (const N of SIZES) for (const C of SIZES) scoped(arena, () => {
      const tokens = fillInts(arena.ints(N), rng, V);
      const table = randFloats(arena, rng, V * C);
      const out = nanFloats(arena, N * C);
      const out64 = toFloat64(out);
      k.embeddingForward(out, tokens, table, N, C);
      ref.embeddingForward(out64, tokens, toFloat64(table), N, C);
      close(out, out64, `embeddingForward N=${N} C=${C}`, 0, 0); // a copy: exact
      const dtable = randFloats(arena, rng, V * C);
      const dout = randFloats(arena, rng, N * C);
      const dtable64 = toFloat64(dtable);
      k.embeddingBackward(dtable, dout, tokens, N, C);
      ref.embeddingBackward(dtable64, toFloat64(dout), tokens, N, C);
      close(dtable, dtable64, `embeddingBackward N=${N} C=${C}`);
    });
  }],
  ['rmsnorm forward/backward', (k, arena, rng) => {
    // eps = 1e-5 is invisible next to mean(x^2) ~ 1.3; the 0.25 shapes check it is used.
    const shapes: Array<[number, number, number]> = [[17, 63, 0.25], [3, 1, 0.25]];
    for (const N of SIZES) for (const C of SIZES) shapes.push([N, C, 1e-5]);
    for (const [N, C, eps] of shapes) scoped(arena, () => {
      const inp = randFloats(arena, rng, N * C, -2, 2);
      const w = randFloats(arena, rng, C, -1.5, 1.5);
      const out = nanFloats(arena, N * C);
      const rstd = nanFloats(arena, N);
      const out64 = toFloat64(out);
      const rstd64 = toFloat64(rstd);
      const inp64 = toFloat64(inp);
      const w64 = toFloat64(w);
      k.rmsnormForward(out, rstd, inp, w, N, C, eps);
      ref.rmsnormForward(out64, rstd64, inp64, w64, N, C, eps);
      close(out, out64, `rmsnormForward out N=${N} C=${C}`);
      close(rstd, rstd64, `rmsnormForward rstd N=${N} C=${C}`);
      // Backward gets identical inputs on both sides: the backend's own (float32) rstd.
      const dinp = randFloats(arena, rng, N * C);
      const dw = randFloats(arena, rng, C);
      const dout = randFloats(arena, rng, N * C);
      const dinp64 = toFloat64(dinp);
      const dw64 = toFloat64(dw);
      k.rmsnormBackward(dinp, dw, dout, inp, w, rstd, N, C);
      ref.rmsnormBackward(dinp64, dw64, toFloat64(dout), inp64, w64, toFloat64(rstd), N, C);
      close(dinp, dinp64, `rmsnormBackward dinp N=${N} C=${C}`);
      close(dw, dw64, `rmsnormBackward dweight N=${N} C=${C}`);
    });
  }],
  ['addRmsnorm forward (residual add fused into the norm; in place on a; same bits as add + rmsnorm)', (k, arena, rng) => {
    const shapes: Array<[number, number, number]> = [[17, 63, 0.25]];
    for (const N of SIZES) for (const C of SIZES) shapes.push([N, C, 1e-5]);
    for (const [N, C, eps] of shapes) scoped(arena, () => {
      const a = randFloats(arena, rng, N * C, -2, 2);
      const b = randFloats(arena, rng, N * C, -2, 2);
      const w = randFloats(arena, rng, C, -1.5, 1.5);
      const sum = nanFloats(arena, N * C), out = nanFloats(arena, N * C), rstd = nanFloats(arena, N);
      const sum64 = toFloat64(sum), out64 = toFloat64(out), rstd64 = toFloat64(rstd);
      k.addRmsnormForward(sum, out, rstd, a, b, w, N, C, eps);
      ref.addRmsnormForward(sum64, out64, rstd64, toFloat64(a), toFloat64(b), toFloat64(w), N, C, eps);
      close(sum, sum64, `addRmsnorm sum N=${N} C=${C}`);
      close(out, out64, `addRmsnorm out N=${N} C=${C}`);
      close(rstd, rstd64, `addRmsnorm rstd N=${N} C=${C}`);
      // the unfused pair on the same backend gives the same bits; and in place (sum = a) too
      const sum2 = nanFloats(arena, N * C), out2 = nanFloats(arena, N * C), rstd2 = nanFloats(arena, N);
      k.add(sum2, a, b, N * C);
      k.rmsnormForward(out2, rstd2, sum2, w, N, C, eps);
      const same = (x: FloatArray, y: FloatArray, what: string, n = x.length): void => {
        for (let i = 0; i < n; i++) if (!Object.is(x[i], y[i])) assert.fail(`addRmsnorm ${what}[${i}] N=${N} C=${C}: ${x[i]} fused, ${y[i]} unfused`);
      };
      same(sum, sum2, 'sum'); same(out, out2, 'out'); same(rstd, rstd2, 'rstd');
      const out3 = nanFloats(arena, N * C), rstd3 = nanFloats(arena, N);
      k.addRmsnormForward(a, out3, rstd3, a, b, w, N, C, eps);
      same(a, sum2, 'sum in place', N * C); same(out3, out2, 'out in place'); same(rstd3, rstd2, 'rstd in place');
    });
  }],
  ['rope forward/backward (strided rows, untouched tail)', (k, arena, rng) => {
    const shapes = [
      { B: 1, T: 1, H: 1, D: 2, stride: 2 },
      { B: 2, T: 3, H: 1, D: 2, stride: 5 },
      { B: 2, T: 17, H: 3, D: 8, stride: 3 * 3 * 8 }, // q of a fused qkv row
      { B: 3, T: 63, H: 2, D: 64, stride: 2 * 64 + 3 },
      { B: 1, T: 129, H: 4, D: 16, stride: 64 },
    ];
    for (const { B, T, H, D, stride } of shapes) scoped(arena, () => {
      const nRows = B * T;
      const cos = arena.floats((T * D) / 2);
      const sin = arena.floats((T * D) / 2);
      ropeTables(cos, sin, T, D, 10000);
      const cos64 = toFloat64(cos);
      const sin64 = toFloat64(sin);
      const x = randFloats(arena, rng, nRows * stride);
      const x64 = toFloat64(x);
      k.ropeForward(x, nRows, T, H, D, stride, cos, sin);
      ref.ropeForward(x64, nRows, T, H, D, stride, cos64, sin64);
      close(x, x64, `ropeForward B=${B} T=${T} H=${H} D=${D} stride=${stride}`);
      const dx = randFloats(arena, rng, nRows * stride);
      const dx64 = toFloat64(dx);
      k.ropeBackward(dx, nRows, T, H, D, stride, cos, sin);
      ref.ropeBackward(dx64, nRows, T, H, D, stride, cos64, sin64);
      close(dx, dx64, `ropeBackward B=${B} T=${T} H=${H} D=${D} stride=${stride}`);
    });
  }],
  ['softmaxCausal forward/backward (NaN above the diagonal is ignored)', (k, arena, rng) => {
    const cases: Array<[number, number, number]> = SIZES.map((T) => [T, 0.125, 8]);
    cases.push([17, 1, 200], [63, 1, 200]); // scores far beyond exp's float32 range: needs the max shift
    for (const [T, scale, spread] of cases) scoped(arena, () => {
      const nMat = 3;
      const att = randFloats(arena, rng, nMat * T * T, -spread, spread);
      for (let m = 0; m < nMat; m++) for (let t = 0; t < T; t++) att.fill(NaN, (m * T + t) * T + t + 1, (m * T + t + 1) * T);
      const att64 = toFloat64(att);
      k.softmaxCausalForward(att, nMat, T, scale);
      ref.softmaxCausalForward(att64, nMat, T, scale);
      const label = `softmaxCausalForward nMat=${nMat} T=${T} scale=${scale} spread=${spread}`;
      close(att, att64, label);
      for (let m = 0; m < nMat; m++) for (let t = 0; t < T; t++) for (let j = t + 1; j < T; j++) {
        assert.equal(att[(m * T + t) * T + j], 0, `${label}: att[${m}][${t}][${j}] above the diagonal is not 0`);
      }
      const datt = randFloats(arena, rng, nMat * T * T);
      const datt64 = toFloat64(datt);
      k.softmaxCausalBackward(datt, att, nMat, T, scale);
      ref.softmaxCausalBackward(datt64, toFloat64(att), nMat, T, scale);
      close(datt, datt64, `softmaxCausalBackward nMat=${nMat} T=${T} scale=${scale}`);
    });
  }],
  ['attentionCausal fused forward/backward vs the materialized T x T softmax (T off the tiles, D 16-128)', (k, arena, rng) => {
    // [B, T, H, D, spread of q and k]: T = 1, T below / across / not a multiple of the
    // kernels' query block (32) and key tile (64), D not a multiple of 4 or 16, and scores
    // far beyond exp's float32 range (spread 6 at D 64: |scale q.k| up to ~290)
    const shapes: Array<[number, number, number, number, number]> = [
      [1, 1, 1, 16, 1], [2, 17, 3, 16, 1], [1, 70, 2, 32, 1], [2, 129, 2, 64, 1], [1, 65, 1, 128, 1],
      [1, 33, 2, 18, 1], [1, 100, 1, 64, 6],
    ];
    for (const [B, T, H, D, spread] of shapes) scoped(arena, () => {
      const C = H * D;
      const N = B * T;
      const scale = 1 / Math.sqrt(D);
      const qkv = randFloats(arena, rng, N * 3 * C, -spread, spread);
      const qkv64 = toFloat64(qkv);
      const out = nanFloats(arena, N * C);
      const lse = nanFloats(arena, B * H * T);
      const out64 = toFloat64(out);
      const lse64 = toFloat64(lse);
      const label = `attentionCausal B=${B} T=${T} H=${H} D=${D} spread=${spread}`;
      k.attentionCausalForward(out, lse, qkv, B, T, H, D, scale);
      ref.attentionCausalForward(out64, lse64, qkv64, B, T, H, D, scale);
      const m = materializedAttention(qkv64, null, B, T, H, D, scale);
      // the oracle itself against the plain T x T computation (float64: agreement to rounding)
      assertAllClose(out64.subarray(0, N * C), m.out, { rtol: 1e-10, atol: 1e-12, label: `${label}: js oracle out` });
      assertAllClose(lse64.subarray(0, B * H * T), m.lse, { rtol: 1e-10, atol: 1e-12, label: `${label}: js oracle lse` });
      close(out, out64, `${label} forward out`);
      close(lse, lse64, `${label} forward lse`);
      // backward from the backend's own (float32) out and lse on both sides
      const dout = randFloats(arena, rng, N * C);
      const dqkv = nanFloats(arena, N * 3 * C);
      const dqkv64 = toFloat64(dqkv);
      k.attentionCausalBackward(dqkv, dout, qkv, out, lse, B, T, H, D, scale);
      ref.attentionCausalBackward(dqkv64, toFloat64(dout), qkv64, toFloat64(out), toFloat64(lse), B, T, H, D, scale);
      const mb = materializedAttention(qkv64, toFloat64(dout), B, T, H, D, scale);
      assertAllClose(dqkv64.subarray(0, N * 3 * C), mb.dqkv!, { rtol: 1e-4, atol: 1e-5 * maxAbs(mb.dqkv!), label: `${label}: js oracle dqkv` });
      // each of dq, dk, dv against its own scale (dv is larger than dq and dk by ~1/scale)
      for (const [part, name] of [[0, 'dq'], [1, 'dk'], [2, 'dv']] as const) {
        const pick = (x: FloatArray): Float64Array => {
          const r = new Float64Array(N * D * H);
          for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) r[i * C + c] = x[i * 3 * C + part * C + c]!;
          return r;
        };
        close(pick(dqkv), pick(dqkv64), `${label} backward ${name}`, 1e-4, 1e-4);
      }
      assert.ok(dqkv.subarray(N * 3 * C).every((v) => Number.isNaN(v)), `${label}: dqkv written past its end`);
    });
  }],
  ['swiglu forward/backward', (k, arena, rng) => {
    for (const N of SIZES) for (const F of SIZES) scoped(arena, () => {
      const h = randFloats(arena, rng, N * 2 * F, -6, 6);
      const h64 = toFloat64(h);
      const out = nanFloats(arena, N * F);
      const out64 = toFloat64(out);
      k.swigluForward(out, h, N, F);
      ref.swigluForward(out64, h64, N, F);
      close(out, out64, `swigluForward N=${N} F=${F}`);
      const dout = randFloats(arena, rng, N * F);
      const dh = nanFloats(arena, N * 2 * F);
      const dh64 = toFloat64(dh);
      k.swigluBackward(dh, dout, h, N, F);
      ref.swigluBackward(dh64, toFloat64(dout), h64, N, F);
      close(dh, dh64, `swigluBackward N=${N} F=${F}`);
      // in place: the gradient overwrites h (what the model does, saving an [N, 2F] buffer)
      const guard = Float64Array.from(h.subarray(N * 2 * F));
      k.swigluBackward(h, dout, h, N, F);
      close(h.subarray(0, N * 2 * F), dh64.subarray(0, N * 2 * F), `swigluBackward in place N=${N} F=${F}`);
      close(h.subarray(N * 2 * F), guard, `swigluBackward in place N=${N} F=${F}: past the end`, 0, 0);
    });
  }],
  ['add / axpy / scale / sumSquares', (k, arena, rng) => {
    for (const n of [...SIZES, 1000, 4099]) scoped(arena, () => {
      const a = randFloats(arena, rng, n);
      const b = randFloats(arena, rng, n);
      const out = nanFloats(arena, n);
      const out64 = toFloat64(out);
      k.add(out, a, b, n);
      ref.add(out64, toFloat64(a), toFloat64(b), n);
      close(out, out64, `add n=${n}`);
      const a64 = toFloat64(a);
      k.add(a, a, b, n); // out aliases a
      ref.add(a64, a64, toFloat64(b), n);
      close(a, a64, `add (out = a) n=${n}`);
      const b64 = toFloat64(b);
      k.add(b, a, b, n); // out aliases b
      ref.add(b64, a64, b64, n);
      close(b, b64, `add (out = b) n=${n}`);
      const dst = randFloats(arena, rng, n);
      const src = randFloats(arena, rng, n);
      const dst64 = toFloat64(dst);
      k.axpy(dst, src, -0.375, n);
      ref.axpy(dst64, toFloat64(src), -0.375, n);
      close(dst, dst64, `axpy n=${n}`);
      k.scale(dst, 1.75, n);
      ref.scale(dst64, 1.75, n);
      close(dst, dst64, `scale n=${n}`);
      const x = randFloats(arena, rng, n);
      const got = k.sumSquares(x, n);
      const want = ref.sumSquares(toFloat64(x), n);
      assert.ok(Math.abs(got - want) <= SUMSQ_RTOL(n) * want, `sumSquares n=${n}: ${got}, expected ${want}`);
    });
  }],
  ['dropout: hashed mask, bit-identical to the js oracle', (k, arena, rng) => {
    // 140001 > the size wasm splits across threads: each chunk must continue the counter sequence
    const cases = [
      { threshold: Math.round(0.1 * 2 ** 32), scale: Math.fround(1 / 0.9), counter: 12345 },
      { threshold: 2 ** 31, scale: 2, counter: 0xfffffff0 }, // p = 0.5, the counter wraps inside the call
      { threshold: -(2 ** 30), scale: 4, counter: -5 }, // int32 bit patterns: p = 0.75, counter 2^32 - 5
      { threshold: 0, scale: 1, counter: 7 }, // keeps everything
    ];
    for (const n of [...SIZES, 1000, 4099, 140001]) for (const c of cases) scoped(arena, () => {
      const x = randFloats(arena, rng, n);
      const out = nanFloats(arena, n);
      const want = new Float32Array(out); // the oracle on float32: one rounding of x * scale, as a float32 multiply
      ref.dropout(want, new Float32Array(x), n, c.threshold, c.counter);
      k.dropout(out, x, n, c.threshold, c.counter);
      const label = `dropout n=${n} threshold=${c.threshold} counter=${c.counter}`;
      assertAllClose(out, want, { rtol: 0, atol: 0, label });
      let kept = 0;
      for (let i = 0; i < n; i++) {
        if (out[i] !== 0) {
          kept++;
          assert.equal(out[i], Math.fround(x[i] * c.scale), `${label}: kept element ${i} is x * scale`);
        }
      }
      if (c.threshold === 0) assert.equal(kept, n, `${label}: threshold 0 keeps every element`);
      if (n >= 4099) {
        const pKeep = 1 - (c.threshold >>> 0) / 2 ** 32;
        const sd = Math.sqrt((n * pKeep * (1 - pKeep)) || 1);
        assert.ok(Math.abs(kept - n * pKeep) <= 5 * sd, `${label}: kept ${kept} of ${n}, expected ${(n * pKeep).toFixed(0)} +- ${(5 * sd).toFixed(0)}`);
      }
      const xa = arena.floats(n + GUARD);
      xa.set(x);
      k.dropout(xa, xa, n, c.threshold, c.counter); // in place
      assertAllClose(xa, want, { rtol: 0, atol: 0, n, label: `${label} in place` });
      assertAllClose(xa.subarray(n), x.subarray(n), { rtol: 0, atol: 0, label: `${label} in place: guard unchanged` });
    });
  }],
  ['crossEntropy forward and fused forward+backward (also in place)', (k, arena, rng) => {
    for (const N of [1, 3, 17]) for (const V of [...SIZES, 1000]) scoped(arena, () => {
      const logits = fillNormal(arena.floats(N * V + GUARD), rng, 4);
      // One row far outside exp's float32 range: only a max-shifted logsumexp survives it.
      if (N > 1) fillUniform(logits.subarray(V, 2 * V), rng, -120, 120);
      const targets = fillInts(arena.ints(N), rng, V);
      const logits64 = toFloat64(logits);
      const big = Math.max(1, maxAbs(logits64, N * V));
      const lossTol = { rtol: RTOL, atol: 1e-6 * big }; // the float32 logsumexp is off by ~eps * max|logit|
      const losses = nanFloats(arena, N);
      const losses64 = toFloat64(losses);
      k.crossEntropyForward(losses, logits, targets, N, V);
      ref.crossEntropyForward(losses64, logits64, targets, N, V);
      assertAllClose(losses, losses64, { ...lossTol, label: `crossEntropyForward N=${N} V=${V}` });
      assertAllClose(logits, logits64, { rtol: 0, atol: 0, label: `crossEntropyForward left logits unchanged N=${N} V=${V}` });

      const dscale = 1 / N;
      const dTol = { rtol: 2 * RTOL, atol: dscale * 1e-6 * big };
      const dlogits = nanFloats(arena, N * V);
      const dlogits64 = toFloat64(dlogits);
      losses.fill(NaN);
      k.crossEntropyForwardBackward(dlogits, losses, logits, targets, N, V, dscale);
      ref.crossEntropyForwardBackward(dlogits64, losses64, logits64, targets, N, V, dscale);
      assertAllClose(losses, losses64, { ...lossTol, label: `crossEntropyForwardBackward losses N=${N} V=${V}` });
      assertAllClose(dlogits, dlogits64, { ...dTol, label: `crossEntropyForwardBackward dlogits N=${N} V=${V}` });

      losses.fill(NaN);
      k.crossEntropyForwardBackward(logits, losses, logits, targets, N, V, dscale); // in place
      assertAllClose(losses, losses64, { ...lossTol, label: `crossEntropyForwardBackward in place losses N=${N} V=${V}` });
      assertAllClose(logits, dlogits64, { ...dTol, n: N * V, label: `crossEntropyForwardBackward in place dlogits N=${N} V=${V}` });
      assertAllClose(logits.subarray(N * V), logits64.subarray(N * V), { rtol: 0, atol: 0, label: `crossEntropyForwardBackward in place: guard after logits N=${N} V=${V}` });
    });
  }],
  ['optimizer updates: AdamW, Lion, Schedule-Free AdamW over 3 steps', (k, arena, rng) => {
    const n = 1037;
    const b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    const optTol = (x: FloatArray, x64: Float64Array, label: string): void =>
      assertAllClose(x, x64, { rtol: RTOL, atol: 1e-7, n: n + GUARD, label });
    scoped(arena, () => {
      const p = randFloats(arena, rng, n), m = arena.floats(n + GUARD), v = arena.floats(n + GUARD);
      const p64 = toFloat64(p), m64 = toFloat64(m), v64 = toFloat64(v);
      for (let t = 1; t <= 3; t++) {
        const g = fillNormal(arena.floats(n + GUARD), rng, 0.1);
        const lr = 0.01 * t;
        k.adamwUpdate(p, g, m, v, n, lr, b1, b2, eps, wd, 1 - b1 ** t, 1 - b2 ** t);
        ref.adamwUpdate(p64, toFloat64(g), m64, v64, n, lr, b1, b2, eps, wd, 1 - b1 ** t, 1 - b2 ** t);
        optTol(p, p64, `adamw p step ${t}`);
        optTol(m, m64, `adamw m step ${t}`);
        optTol(v, v64, `adamw v step ${t}`);
      }
    });
    scoped(arena, () => {
      const p = randFloats(arena, rng, n), m = randFloats(arena, rng, n, -0.1, 0.1);
      const p64 = toFloat64(p), m64 = toFloat64(m);
      for (let t = 1; t <= 3; t++) {
        const g = fillNormal(arena.floats(n + GUARD), rng, 0.1);
        k.lionUpdate(p, g, m, n, 1e-3, b1, 0.99, wd);
        ref.lionUpdate(p64, toFloat64(g), m64, n, 1e-3, b1, 0.99, wd);
        optTol(p, p64, `lion p step ${t}`);
        optTol(m, m64, `lion m step ${t}`);
      }
    });
    scoped(arena, () => {
      const y = randFloats(arena, rng, n), z = randFloats(arena, rng, n), x = randFloats(arena, rng, n), v = arena.floats(n + GUARD);
      const y64 = toFloat64(y), z64 = toFloat64(z), x64 = toFloat64(x), v64 = toFloat64(v);
      let sumLr2 = 0;
      for (let t = 1; t <= 3; t++) {
        const g = fillNormal(arena.floats(n + GUARD), rng, 0.1);
        const lr = 0.01 * t;
        sumLr2 += lr * lr;
        const ck = (lr * lr) / sumLr2;
        k.scheduleFreeAdamwUpdate(y, g, z, x, v, n, lr, b1, b2, eps, wd, ck, 1 - b2 ** t);
        ref.scheduleFreeAdamwUpdate(y64, toFloat64(g), z64, x64, v64, n, lr, b1, b2, eps, wd, ck, 1 - b2 ** t);
        optTol(y, y64, `sfadamw y step ${t}`);
        optTol(z, z64, `sfadamw z step ${t}`);
        optTol(x, x64, `sfadamw x step ${t}`);
        optTol(v, v64, `sfadamw v step ${t}`);
      }
    });
  }],
];

const CONFIGS: Array<{ backend: 'js' | 'wasm' | 'native'; threads: number }> = [
  { backend: 'js', threads: 1 },
  { backend: 'wasm', threads: 1 },
  { backend: 'wasm', threads: 2 },
  { backend: 'native', threads: 1 },
  { backend: 'native', threads: 2 },
];

for (const cfg of CONFIGS) {
  test(`kernels: ${cfg.backend} backend, threads=${cfg.threads}, vs float64 js reference`, async (t) => {
    let be: Backend;
    try {
      be = await createBackend({ ...cfg, initialBytes: 32 << 20 });
    } catch (e) {
      t.skip(`${cfg.backend} backend not available here: ${(e as Error).message}`);
      return;
    }
    try {
      assert.equal(be.info.name, cfg.backend);
      assert.equal(be.kernels.name, cfg.backend);
      for (const [name, fn] of CASES) {
        // A fixed seed per case: a failure reproduces alone, whatever ran before it.
        await t.test(name, () => fn(be.kernels, be.arena, seededRng(hashName(name))));
      }
    } finally {
      await be.dispose();
    }
  });
}

test('testing helpers: allclose fails on a mismatch even when the expected array holds NaN', () => {
  assert.throws(() => assertAllClose([1, 2, NaN], [1, 2.1, NaN], { rtol: 1e-3, atol: 0 }), assert.AssertionError);
  assert.throws(() => assertAllClose([1, NaN], [1, 2], { rtol: 1, atol: 1 }), assert.AssertionError);
  assert.throws(() => assertAllClose([1, 2], [1, NaN], { rtol: 1, atol: 1 }), assert.AssertionError);
  assert.throws(() => assertAllClose([1], [1], { rtol: NaN, atol: 0 }), assert.AssertionError);
  assertAllClose([1, 2.0001, NaN], [1, 2, NaN], { rtol: 1e-4, atol: 0 });
  assert.equal(maxAbs([1, NaN, -3]), 3);
});

/**
 * The suite must be able to fail: each mutant is the js oracle with one planted bug of the
 * kind a SIMD port makes (a dropped tail term, a minimal ld, a missing max shift...), and
 * the named case has to reject it.
 */
test('kernels: the suite rejects planted bugs', async (t) => {
  const js = createJsKernels();
  const dropLastK: Kernels['gemm'] = (tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) =>
    js.gemm(tA, tB, M, N, Math.max(1, K - 1), alpha, A, lda, B, ldb, beta, C, ldc);
  const mutants: Array<[string, string, Partial<Kernels>]> = [
    ['gemm drops the last k', 'gemm: all forms', { gemm: dropLastK }],
    ['gemm ignores beta', 'gemm: all forms', { gemm: (tA, tB, M, N, K, al, A, lda, B, ldb, _beta, C, ldc) => js.gemm(tA, tB, M, N, K, al, A, lda, B, ldb, 0, C, ldc) }],
    ['gemm uses the minimal lda', 'gemm: all forms', { gemm: (tA, tB, M, N, K, al, A, _lda, B, ldb, be, C, ldc) => js.gemm(tA, tB, M, N, K, al, A, tA ? M : K, B, ldb, be, C, ldc) }],
    ['gemm writes row padding', 'gemm: all forms', {
      gemm: (tA, tB, M, N, K, al, A, lda, B, ldb, be, C, ldc) => { js.gemm(tA, tB, M, N, K, al, A, lda, B, ldb, be, C, ldc); C[N] = 0; },
    }],
    ['batched gemm forgets strideC', 'gemmStridedBatched: batch 3', {
      gemmStridedBatched: (tA, tB, M, N, K, al, A, lda, sA, B, ldb, sB, be, C, ldc, _sC, n) => js.gemmStridedBatched(tA, tB, M, N, K, al, A, lda, sA, B, ldb, sB, be, C, ldc, 0, n),
    }],
    ['embedding backward overwrites', 'embedding', { embeddingBackward: (dt, dout, tok, N, C) => { dt.fill(0, 0, 29 * C); js.embeddingBackward(dt, dout, tok, N, C); } }],
    ['rmsnorm forward without eps', 'rmsnorm', { rmsnormForward: (o, r, x, w, N, C) => js.rmsnormForward(o, r, x, w, N, C, 0) }],
    ['rmsnorm backward without the mean term', 'rmsnorm', {
      rmsnormBackward: (dx, dw, dout, x, w, rstd, N, C) => {
        for (let i = 0; i < N * C; i++) dx[i] += rstd[Math.floor(i / C)] * w[i % C] * dout[i];
        const junk = new Float64Array(N * C);
        js.rmsnormBackward(junk, dw, dout, x, w, rstd, N, C);
      },
    }],
    ['rope backward rotates forward', 'rope', { ropeBackward: js.ropeForward }],
    ['rope takes the position from the row, ignoring T', 'rope', {
      ropeForward: (x, nRows, T, H, D, stride, cos, sin) => {
        // Only right while r < T: the batches after the first get positions past the table.
        for (let r = 0; r < nRows; r++) js.ropeForward(x.subarray(r * stride), 1, 1, H, D, stride, cos.subarray(Math.min(r, T - 1) * D / 2), sin.subarray(Math.min(r, T - 1) * D / 2));
      },
    }],
    ['rope pairs adjacent elements (GPT-J) instead of rotate-half', 'rope', {
      ropeForward: (x, nRows, T, H, D, stride, cos, sin) => {
        for (let r = 0; r < nRows; r++) for (let h = 0; h < H; h++) for (let i = 0; i < D / 2; i++) {
          const a = r * stride + h * D + 2 * i, c = cos[(r % T) * D / 2 + i], s = sin[(r % T) * D / 2 + i];
          const xa = x[a], xb = x[a + 1];
          x[a] = xa * c - xb * s;
          x[a + 1] = xa * s + xb * c;
        }
      },
    }],
    ['addRmsnorm normalizes a instead of a + b', 'addRmsnorm', {
      addRmsnormForward: (sum, out, rstd, a, b, w, N, C, eps) => { js.add(sum, a, b, N * C); js.rmsnormForward(out, rstd, a, w, N, C, eps); },
    }],
    ['addRmsnorm adds b twice', 'addRmsnorm', {
      addRmsnormForward: (sum, out, rstd, a, b, w, N, C, eps) => { js.addRmsnormForward(sum, out, rstd, a, b, w, N, C, eps); js.add(sum, sum, b, N * C); },
    }],
    ['embedding forward reads the next row', 'embedding', {
      embeddingForward: (out, tok, table, N, C) => js.embeddingForward(out, Int32Array.from(tok.subarray(0, N), (v) => (v + 1) % 29), table, N, C),
    }],
    ['softmax backward without the scale', 'softmaxCausal', { softmaxCausalBackward: (d, a, nMat, T) => js.softmaxCausalBackward(d, a, nMat, T, 1) }],
    ['fused attention backward drops the scale on dq and dk', 'attentionCausal', {
      attentionCausalBackward: (dqkv, dout, qkv, out, lse, B, T, H, D, scale) => {
        js.attentionCausalBackward(dqkv, dout, qkv, out, lse, B, T, H, D, scale);
        for (let r = 0; r < B * T; r++) for (let c = 0; c < 2 * H * D; c++) dqkv[r * 3 * H * D + c] /= scale;
      },
    }],
    ['fused attention forward uses the next query\'s keys too (off-by-one mask)', 'attentionCausal', {
      attentionCausalForward: (out, lse, qkv, B, T, H, D, scale) => {
        // keys j <= t + 1: shift k and v up a row for the kernel, as if the mask let one more in
        const C3 = 3 * H * D;
        const shifted = Float64Array.from(qkv.subarray(0, B * T * C3));
        for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) for (let c = H * D; c < C3; c++) shifted[(b * T + t) * C3 + c] = qkv[(b * T + t + 1) * C3 + c]!;
        js.attentionCausalForward(out, lse, shifted, B, T, H, D, scale);
      },
    }],
    ['swiglu forward uses sigmoid instead of silu', 'swiglu', {
      swigluForward: (out, h, N, F) => { for (let i = 0; i < N; i++) for (let j = 0; j < F; j++) out[i * F + j] = h[i * 2 * F + F + j] / (1 + Math.exp(-h[i * 2 * F + j])); },
    }],
    ['cross-entropy without the max shift (float32 exp)', 'crossEntropy', {
      crossEntropyForward: (losses, logits, tg, N, V) => {
        for (let i = 0; i < N; i++) {
          let s = 0;
          for (let v = 0; v < V; v++) s = Math.fround(s + Math.fround(Math.exp(logits[i * V + v])));
          losses[i] = Math.log(s) - logits[i * V + tg[i]];
        }
      },
    }],
    ['softmax without the max shift', 'softmaxCausal', {
      softmaxCausalForward: (att, nMat, T, scale) => {
        for (let r = 0; r < nMat * T; r++) {
          const t = r % T;
          let s = 0;
          for (let j = 0; j <= t; j++) s += (att[r * T + j] = Math.fround(Math.exp(scale * att[r * T + j])));
          for (let j = 0; j < T; j++) att[r * T + j] = j <= t ? att[r * T + j] / s : 0;
        }
      },
    }],
    ['swiglu backward with silu\'(g) = sigmoid(g)', 'swiglu', {
      swigluBackward: (dh, dout, h, N, F) => {
        js.swigluBackward(dh, dout, h, N, F);
        for (let i = 0; i < N; i++) for (let j = 0; j < F; j++) dh[i * 2 * F + j] = dout[i * F + j] * h[i * 2 * F + F + j] / (1 + Math.exp(-h[i * 2 * F + j]));
      },
    }],
    ['add skips the last element', 'add / axpy', { add: (o, a, b, n) => js.add(o, a, b, n - 1) }],
    ['sumSquares skips the last element', 'add / axpy', { sumSquares: (x, n) => js.sumSquares(x, n - 1) }],
    ['dropout ignores the counter', 'dropout', { dropout: (o, x, n, th) => js.dropout(o, x, n, th, 0) }],
    ['dropout restarts the counter halfway (a thread chunk that does not continue the sequence)', 'dropout', {
      dropout: (o, x, n, th, c) => { const h = n >> 1; js.dropout(o, x, h, th, c); js.dropout(o.subarray(h), x.subarray(h), n - h, th, c); },
    }],
    ['dropout keeps elements unscaled', 'dropout', { dropout: (o, x, n, th, c) => { js.dropout(o, x, n, th, c); for (let i = 0; i < n; i++) if (o[i] !== 0) o[i] = x[i]!; } }],
    ['dropout scales by 1 / (1 - p) in float64', 'dropout', { dropout: (o, x, n, th, c) => { js.dropout(o, x, n, th, c); for (let i = 0; i < n; i++) if (o[i] !== 0) o[i] = x[i]! * (2 ** 32 / (2 ** 32 - (th >>> 0))); } }],
    ['cross-entropy in place overwrites logits too early', 'crossEntropy', {
      crossEntropyForwardBackward: (d, losses, logits, tg, N, V, ds) => {
        for (let i = 0; i < N; i++) {
          js.crossEntropyForwardBackward(d.subarray(i * V), losses.subarray(i), logits.subarray(i * V), tg.subarray(i), 1, V, ds);
          if (d === logits) losses[i] = Math.log(V); // as if recomputed from the overwritten row
        }
      },
    }],
    ['AdamW without bias correction of m', 'optimizer', { adamwUpdate: (p, g, m, v, n, lr, b1, b2, eps, wd, _bc1, bc2) => js.adamwUpdate(p, g, m, v, n, lr, b1, b2, eps, wd, 1, bc2) }],
    ['Lion updates m before taking the sign', 'optimizer', {
      lionUpdate: (p, g, m, n, lr, b1, b2, wd) => { for (let i = 0; i < n; i++) { m[i] = b2 * m[i] + (1 - b2) * g[i]; p[i] -= lr * (Math.sign(m[i]) + wd * p[i]); } },
    }],
    ['Schedule-Free decays with z instead of y', 'optimizer', {
      scheduleFreeAdamwUpdate: (y, g, z, x, v, n, lr, b1, b2, eps, wd, ck, bc2) => { y.set(z); js.scheduleFreeAdamwUpdate(y, g, z, x, v, n, lr, b1, b2, eps, wd, ck, bc2); },
    }],
  ];
  for (const [bug, caseName, overrides] of mutants) {
    await t.test(bug, () => {
      const found = CASES.find(([name]) => name.startsWith(caseName));
      assert.ok(found, `no case named ${caseName}`);
      const kernels: Kernels = { ...js, ...overrides };
      const arena = new HeapArena('f32');
      assert.throws(() => found[1](kernels, arena, seededRng(hashName(found[0]))), assert.AssertionError, `the "${found[0]}" case let "${bug}" pass`);
    });
  }
});

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * Attention the unfused way, in float64: the whole T x T probability matrix per head, then
 * its products; with dout also the gradients through the softmax's Jacobian (the kernels
 * above must agree with this without ever forming P).
 */
function materializedAttention(qkv: Float64Array, dout: Float64Array | null, B: number, T: number, H: number, D: number, scale: number):
  { out: Float64Array; lse: Float64Array; dqkv: Float64Array | null } {
  const C = H * D;
  const C3 = 3 * C;
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * H * T);
  const dqkv = dout ? new Float64Array(B * T * C3) : null;
  const P = new Float64Array(T * T);
  const dP = new Float64Array(T * T);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const q = (t: number, d: number): number => qkv[(b * T + t) * C3 + h * D + d]!;
    const kk = (t: number, d: number): number => qkv[(b * T + t) * C3 + C + h * D + d]!;
    const v = (t: number, d: number): number => qkv[(b * T + t) * C3 + 2 * C + h * D + d]!;
    for (let t = 0; t < T; t++) {
      let mx = -Infinity;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q(t, d) * kk(j, d);
        P[t * T + j] = scale * s;
        mx = Math.max(mx, scale * s);
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) sum += Math.exp(P[t * T + j]! - mx);
      lse[(b * H + h) * T + t] = mx + Math.log(sum);
      for (let j = 0; j <= t; j++) P[t * T + j] = Math.exp(P[t * T + j]! - mx) / sum;
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let j = 0; j <= t; j++) o += P[t * T + j]! * v(j, d);
        out[(b * T + t) * C + h * D + d] = o;
      }
    }
    if (!dout || !dqkv) continue;
    const dy = (t: number, d: number): number => dout[(b * T + t) * C + h * D + d]!;
    for (let t = 0; t < T; t++) {
      let rowDot = 0;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += dy(t, d) * v(j, d);
        dP[t * T + j] = s;
        rowDot += s * P[t * T + j]!;
      }
      // dS = P * (dP - sum_k P dP), times scale for the raw q.k
      for (let j = 0; j <= t; j++) dP[t * T + j] = scale * P[t * T + j]! * (dP[t * T + j]! - rowDot);
    }
    for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) {
      let dq = 0, dk = 0, dv = 0;
      for (let j = 0; j <= t; j++) dq += dP[t * T + j]! * kk(j, d);
      for (let i = t; i < T; i++) {
        dk += dP[i * T + t]! * q(i, d);
        dv += P[i * T + t]! * dy(i, d);
      }
      const r = (b * T + t) * C3 + h * D + d;
      dqkv[r] = dq;
      dqkv[r + C] = dk;
      dqkv[r + 2 * C] = dv;
    }
  }
  return { out, lse, dqkv };
}
