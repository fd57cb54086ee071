import type { FloatArray, KernelCall, KernelProgram, Kernels } from '../kernels/types.js';
import { dropoutForward } from './dropout.js';
import { mlpForwardSteps, type MlpPlan } from './mlp.js';

/**
 * The transformer block's forward around its attention, shared by the training forward
 * (gpt.ts, N = B*T rows) and the KV-cache decoder (generate.ts, one row per sequence), so the
 * two run the same op code:
 *   ln1 = attn_norm(res)                                   blockNormIn
 *   y = attention(ln1)                                     the caller's (full causal / KV cache)
 *   mid = res + drop(y); ln2 = mlp_norm(mid);
 *   y = mlp(ln2); out = mid + drop(y)                      blockFinish
 * `mid` and `out` may be the same buffer as `res` (the decoder updates one residual in place).
 * blockFinish is one program (Kernels.run): the residual add fused into the norm
 * (addRmsnormForward), the MLP's products and SwiGLU, and without dropout the last residual
 * add too, run by the wasm backend's team with one wake-up. With dropout, the masks run
 * between programs (their streams change every step, the programs' arguments do not).
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
  /** blockFinish's programs per row count N, built on first use (see finishPrograms). */
  finishPrograms?: FinishPrograms[];
}

/** The two forms of blockFinish's program for one N: with the final add, and without (dropout). */
interface FinishPrograms {
  /** norm + MLP + out = mid + y */
  whole: KernelProgram;
  /** norm + MLP (dropout on y, then the add, follow) */
  mlp: KernelProgram;
}

/**
 * The programs for B rows of the MLP plan (N = B * its T). Built once per N: the plan's buffers
 * never change, so steps after the first allocate nothing.
 */
function finishPrograms(p: BlockPlan, B: number, N: number): FinishPrograms {
  const cache = (p.finishPrograms ??= []);
  let f = cache[N];
  if (!f) {
    const mlp: KernelCall[] = [['addRmsnormForward', p.mid, p.ln2, p.rstd2, p.res, p.y, p.mlpNorm, N, p.C, p.eps], ...mlpForwardSteps(p.mlp, B)];
    f = cache[N] = { mlp, whole: [...mlp, ['add', p.out, p.mid, p.y, N * p.C]] };
  }
  return f;
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
  const programs = finishPrograms(p, B, N);
  if (!drop) {
    k.run(programs.whole);
    return;
  }
  const n = N * p.C;
  dropoutForward(k, p.y, p.y, n, drop.threshold, drop.attnStream);
  k.run(programs.mlp);
  dropoutForward(k, p.y, p.y, n, drop.threshold, drop.mlpStream);
  k.add(p.out, p.mid, p.y, n);
}
