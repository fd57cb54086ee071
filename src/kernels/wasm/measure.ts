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
    return (2 * s.M * s.N * s.K) / (best * 1e6);
  } finally {
    arena.release(mark);
  }
}

export function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}
