import type { Arena } from '../arena.js';
import type { Kernels } from '../types.js';

/** One matrix product as the model runs it: op(A) is M x K, op(B) is K x N. */
export interface GemmShape {
  form: 'nn' | 'tn' | 'nt';
  M: number;
  N: number;
  K: number;
}

/**
 * The products a GPT with width d does per layer on `rows` = B*T rows: QKV (d -> 3d),
 * attention output (d -> d), fused SwiGLU up (d -> 8d), down (4d -> d), and the LM head
 * (d -> vocab), each in its forward (nn), weight-gradient (tn) and input-gradient (nt) form.
 */
export function modelGemmShapes(rows: number[] = [512, 2048], widths: number[] = [128, 192, 256, 384]): GemmShape[] {
  const out: GemmShape[] = [];
  for (const R of rows) {
    for (const d of widths) {
      const vocab = d <= 128 ? 1024 : d <= 256 ? 2048 : 4096;
      for (const [k, n] of [[d, 3 * d], [d, d], [d, 8 * d], [4 * d, d], [d, vocab]] as const) {
        out.push({ form: 'nn', M: R, N: n, K: k });   // Y = X W
        out.push({ form: 'tn', M: k, N: n, K: R });   // dW = X^T dY
        out.push({ form: 'nt', M: R, N: k, K: n });   // dX = dY W^T
      }
    }
  }
  return out;
}

/** GFLOP/s of one shape: best of a few timed runs, each long enough to time (~minMs). */
export function timeGemm(k: Kernels, arena: Arena, s: GemmShape, minMs = 30): number {
  const mark = arena.mark();
  try {
    const tA = s.form === 'tn', tB = s.form === 'nt';
    const A = arena.floats(s.M * s.K), B = arena.floats(s.K * s.N), C = arena.floats(s.M * s.N);
    for (let i = 0; i < A.length; i++) A[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    for (let i = 0; i < B.length; i++) B[i] = ((i * 104729) % 1000) / 1000 - 0.5;
    const run = (): void => k.gemm(tA, tB, s.M, s.N, s.K, 1, A, tA ? s.M : s.K, B, tB ? s.K : s.N, 0, C, s.N);
    return (2 * s.M * s.N * s.K) / (timeCall(run, minMs) * 1e6);
  } finally {
    arena.release(mark);
  }
}

export function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

/** Milliseconds per call of `run`: best of 3 timed batches, each about minMs long. */
export function timeCall(run: () => void, minMs = 20): number {
  run();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) run();
    if (performance.now() - t0 >= minMs / 3) break;
    reps *= 2;
  }
  let best = Infinity;
  for (let trial = 0; trial < 3; trial++) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) run();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

/**
 * The non-gemm kernels of one training step at a model-like size (rows = B*T, width C,
 * SwiGLU hidden F, vocab V, nMat = B*heads attention matrices of T x T), as named calls
 * on `k`; each entry allocates its buffers from `arena` once.
 */
export function elementwiseCases(k: Kernels, arena: Arena, size = { rows: 2048, C: 256, F: 1024, V: 2048, T: 256, nMat: 32 }): Array<{ name: string; run: () => void }> {
  const { rows, C, F, V, T, nMat } = size;
  const f = (n: number): Float32Array => {
    const a = arena.floats(n) as Float32Array;
    for (let i = 0; i < n; i++) a[i] = ((i * 7919) % 2001) / 1000 - 1;
    return a;
  };
  const tokens = arena.ints(rows);
  for (let i = 0; i < rows; i++) tokens[i] = (i * 31) % V;
  const x = f(rows * C), out = f(rows * C), w = f(C), rstd = f(rows), dx = f(rows * C), dw = f(C);
  const h = f(rows * 2 * F), sw = f(rows * F), dh = f(rows * 2 * F);
  const att = f(nMat * T * T), datt = f(nMat * T * T);
  const logits = f(rows * V), losses = f(rows);
  const n = 1 << 20;
  const p = f(n), g = f(n), m = f(n), v = f(n);
  for (let i = 0; i < n; i++) v[i] = Math.abs(v[i]!);
  const table = f(V * C);
  return [
    { name: 'embeddingForward', run: () => k.embeddingForward(out, tokens, table, rows, C) },
    { name: 'rmsnormForward', run: () => k.rmsnormForward(out, rstd, x, w, rows, C, 1e-5) },
    { name: 'rmsnormBackward', run: () => k.rmsnormBackward(dx, dw, out, x, w, rstd, rows, C) },
    { name: 'swigluForward', run: () => k.swigluForward(sw, h, rows, F) },
    { name: 'swigluBackward', run: () => k.swigluBackward(dh, sw, h, rows, F) },
    { name: 'softmaxCausalForward', run: () => k.softmaxCausalForward(att, nMat, T, 0.125) },
    { name: 'softmaxCausalBackward', run: () => k.softmaxCausalBackward(datt, att, nMat, T, 0.125) },
    { name: 'crossEntropyForward', run: () => k.crossEntropyForward(losses, logits, tokens, rows, V) },
    { name: 'crossEntropyForwardBackward', run: () => k.crossEntropyForwardBackward(h.subarray(0, rows * V), losses, logits, tokens, rows, V, 1 / rows) },
    { name: 'axpy', run: () => k.axpy(p, g, 1e-3, n) },
    { name: 'sumSquares', run: () => { k.sumSquares(g, n); } },
    { name: 'adamwUpdate', run: () => k.adamwUpdate(p, g, m, v, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.5, 0.5) },
  ];
}
