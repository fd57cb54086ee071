import type { FloatArray, Kernels } from '../kernels/types.js';
import { dropoutForward } from './dropout.js';
import { mlpForward, type MlpPlan } from './mlp.js';

/**
 * The transformer block's forward around its attention, shared by the training forward
 * (gpt.ts, N = B*T rows) and the KV-cache decoder (generate.ts, one row per sequence), so the
 * two run the same op code:
 *   ln1 = attn_norm(res)                                   blockNormIn
 *   y = attention(ln1)                                     the caller's (full causal / KV cache)
 *   mid = res + drop(y); ln2 = mlp_norm(mid);
 *   y = mlp(ln2); out = mid + drop(y)                      blockFinish
 * `mid` and `out` may be the same buffer as `res` (the decoder updates one residual in place).
 */
export interface BlockPlan {
  C: number;
  eps: number;
  res: FloatArray;
  ln1: FloatArray;
  rstd1: FloatArray;
  /** Attention output on entry to blockFinish, then the MLP's output (scratch [N, C]). */
  y: FloatArray;
  mid: FloatArray;
  ln2: FloatArray;
  rstd2: FloatArray;
  out: FloatArray;
  attnNorm: FloatArray;
  mlpNorm: FloatArray;
  /** Its buf.x is ln2 and buf.y is y. */
  mlp: MlpPlan;
}

/** Dropout of a training forward: the threshold and this layer's two streams (attention, MLP). */
export interface BlockDropout {
  threshold: number;
  attnStream: number;
  mlpStream: number;
}

export function blockNormIn(k: Kernels, p: BlockPlan, N: number): void {
  k.rmsnormForward(p.ln1, p.rstd1, p.res, p.attnNorm, N, p.C, p.eps);
}

/** Everything after the attention: `B` rows of the MLP plan (N = B * its T). */
export function blockFinish(k: Kernels, p: BlockPlan, B: number, N: number, drop: BlockDropout | null): void {
  const n = N * p.C;
  if (drop) dropoutForward(k, p.y, p.y, n, drop.threshold, drop.attnStream);
  k.add(p.mid, p.res, p.y, n);
  k.rmsnormForward(p.ln2, p.rstd2, p.mid, p.mlpNorm, N, p.C, p.eps);
  mlpForward(k, p.mlp, B);
  if (drop) dropoutForward(k, p.y, p.y, n, drop.threshold, drop.mlpStream);
  k.add(p.out, p.mid, p.y, n);
}
