import type { BackendName, FloatArray, Kernels } from '../../kernels/types.js';
import { linearBackward, linearForward } from '../linear.js';

/**
 * Causal multi-head self-attention with RoPE, as one op pair over planned buffers:
 *   qkv = x Wqkv ([N, 3C], row = q | k | v, head h at columns h*D of each part)
 *   rope(q, k) in place  (qkv is kept post-RoPE for backward)
 *   atty[b, :, h] = softmax_causal(q_bh k_bh^T / sqrt(D)) v_bh   (heads side by side in atty [N, C])
 *   y = atty Wo
 * N = B*T. `attentionForward`/`attentionBackward` run the middle line as ONE fused kernel
 * (Kernels.attentionCausalForward/Backward): the T x T probabilities are never stored, only the
 * per-row log-sum-exp lse [B, H, T], and backward recomputes the probabilities per tile.
 * `attentionForwardUnfused`/`attentionBackwardUnfused` are the former path (per-head products
 * into a stored [B, H, T, T] matrix, a separate softmax), kept as the reference the fused path
 * is tested against; they need the plan's `att`/`datt` buffers.
 * Every subarray view is made when the plan is built, never per step.
 */
export interface AttentionDims {
  /** Largest batch the buffers hold; calls may use any B <= maxB. */
  maxB: number;
  T: number;
  C: number;
  H: number;
  /**
   * Rows per causal block (default: `defaultCausalBlock(T)`). The products are split into
   * query-row blocks (and key blocks in the transposed products) so that a block never touches
   * keys after its last query: with nb blocks the attention products do (nb+1)/(2 nb) of the
   * full-square work (62.5% for nb = 4). T itself = one block = the plain full-square products.
   */
  block?: number;
}

/**
 * Block size for causal attention products, per backend. wasm/js: 64 rows (4 blocks at T = 256,
 * 2 at T = 128; the whole sequence when T < 128, where the saving does not pay for the extra,
 * smaller products). native: the whole sequence, because each OpenBLAS call has a fixed
 * threading cost: measured at T = 256 (B 8, C 192, fwd+bwd of one layer, 2 threads) the full
 * square took 22.5 ms against 23.4 ms with 2 blocks and 29 ms with 4, while on wasm 4 blocks
 * were ~7% faster than the full square (89.5 vs 96 ms).
 */
export function defaultCausalBlock(T: number, backend: BackendName = 'wasm'): number {
  if (backend === 'native') return T;
  return T < 128 ? T : 64;
}

export interface AttentionBuffers {
  // forward
  /** Normed input [N, C] (read). */
  x: FloatArray;
  /** [N, 3C], written by forward, post-RoPE. */
  qkv: FloatArray;
  /** Log-sum-exp of each row's scaled scores [B, H, T], written by forward. */
  lse: FloatArray;
  /** Attention probabilities [B, H, T, T]: only for the unfused reference path. */
  att?: FloatArray;
  /** Heads' outputs [N, C]. */
  atty: FloatArray;
  /** Output [N, C] (written). */
  y: FloatArray;
  wqkv: FloatArray;
  wo: FloatArray;
  cos: FloatArray;
  sin: FloatArray;
  // backward
  /** dL/dy [N, C] (read). */
  dy: FloatArray;
  /** dL/dx [N, C] (WRITTEN; may be the same buffer as datty). */
  dx: FloatArray;
  dwqkv: FloatArray;
  dwo: FloatArray;
  /** Scratch [N, C]. */
  datty: FloatArray;
  /** Scratch [N, 3C]. */
  dqkv: FloatArray;
  /** Scratch [B, H, T, T]: only for the unfused reference path. */
  datt?: FloatArray;
}

/** Views for one (batch row b, block [r0, r1)) made at planning time. */
interface BlockViews {
  r0: number;
  r1: number;
  // query-row block: rows r0..r1 against keys 0..r1
  q: FloatArray; att: FloatArray; atty: FloatArray; datty: FloatArray; datt: FloatArray; dq: FloatArray;
  // key block (keys r0..r1) against query rows r0..T: att/datt at (r0, r0), rows r0.. of q and datty
  attKey: FloatArray; dattKey: FloatArray; qRows: FloatArray; dattyRows: FloatArray; dk: FloatArray; dv: FloatArray;
}

interface BatchViews { k: FloatArray; v: FloatArray; blocks: BlockViews[] }

export class AttentionPlan {
  readonly D: number;
  readonly scale: number;
  readonly perBatch: BatchViews[] = [];

  constructor(readonly dims: AttentionDims, readonly buf: AttentionBuffers) {
    const { maxB, T, C, H } = dims;
    this.D = C / H;
    this.scale = 1 / Math.sqrt(this.D);
    const block = Math.max(1, Math.min(T, dims.block ?? defaultCausalBlock(T)));
    const C3 = 3 * C;
    const { att, datt } = buf;
    if (!att || !datt) return; // fused path only: no block views needed
    for (let b = 0; b < maxB; b++) {
      const r3 = b * T * C3;
      const r1b = b * T * C;
      const a = b * H * T * T;
      const blocks: BlockViews[] = [];
      for (let r0 = 0; r0 < T; r0 += block) {
        const r1 = Math.min(T, r0 + block);
        blocks.push({
          r0, r1,
          q: buf.qkv.subarray(r3 + r0 * C3), att: att.subarray(a + r0 * T), atty: buf.atty.subarray(r1b + r0 * C),
          datty: buf.datty.subarray(r1b + r0 * C), datt: datt.subarray(a + r0 * T), dq: buf.dqkv.subarray(r3 + r0 * C3),
          attKey: att.subarray(a + r0 * T + r0), dattKey: datt.subarray(a + r0 * T + r0),
          qRows: buf.qkv.subarray(r3 + r0 * C3), dattyRows: buf.datty.subarray(r1b + r0 * C),
          dk: buf.dqkv.subarray(r3 + r0 * C3 + C), dv: buf.dqkv.subarray(r3 + r0 * C3 + 2 * C),
        });
      }
      this.perBatch.push({ k: buf.qkv.subarray(r3 + C), v: buf.qkv.subarray(r3 + 2 * C), blocks });
    }
  }
}

export function attentionForward(kn: Kernels, p: AttentionPlan, B: number): void {
  const { T, C, H } = p.dims;
  const { D, buf } = p;
  const N = B * T;
  linearForward(kn, buf.qkv, buf.x, buf.wqkv, N, C, 3 * C);
  // q and k are the first 2H heads of each row: rotate both in one call
  kn.ropeForward(buf.qkv, N, T, 2 * H, D, 3 * C, buf.cos, buf.sin);
  kn.attentionCausalForward(buf.atty, buf.lse, buf.qkv, B, T, H, D, p.scale);
  linearForward(kn, buf.y, buf.atty, buf.wo, N, C, C);
}

/** Accumulates dwqkv, dwo (scaled by alpha) and writes dx. Needs the forward's buffers intact. */
export function attentionBackward(kn: Kernels, p: AttentionPlan, B: number, alpha = 1): void {
  const { T, C, H } = p.dims;
  const { D, buf } = p;
  const N = B * T;
  linearBackward(kn, buf.datty, buf.dwo, buf.dy, buf.atty, buf.wo, N, C, C, alpha);
  kn.attentionCausalBackward(buf.dqkv, buf.datty, buf.qkv, buf.atty, buf.lse, B, T, H, D, p.scale);
  // gradients w.r.t. the pre-RoPE q, k: the inverse rotation
  kn.ropeBackward(buf.dqkv, N, T, 2 * H, D, 3 * C, buf.cos, buf.sin);
  linearBackward(kn, buf.dx, buf.dwqkv, buf.dqkv, buf.x, buf.wqkv, N, C, 3 * C, 1);
}

function needUnfused(p: AttentionPlan): { att: FloatArray; datt: FloatArray } {
  const { att, datt } = p.buf;
  if (!att || !datt) throw new Error('attention: the unfused path needs the plan\'s att and datt buffers');
  return { att, datt };
}

/** The unfused reference forward: stores the probabilities in buf.att (buf.lse is not written). */
export function attentionForwardUnfused(kn: Kernels, p: AttentionPlan, B: number): void {
  const { att } = needUnfused(p);
  const { T, C, H } = p.dims;
  const { D, buf } = p;
  const N = B * T;
  const C3 = 3 * C;
  const TT = T * T;
  linearForward(kn, buf.qkv, buf.x, buf.wqkv, N, C, C3);
  // q and k are the first 2H heads of each row: rotate both in one call
  kn.ropeForward(buf.qkv, N, T, 2 * H, D, C3, buf.cos, buf.sin);
  for (let b = 0; b < B; b++) {
    const pb = p.perBatch[b]!;
    for (const v of pb.blocks) {
      // S[r0..r1, 0..r1] = Q K^T per head (scores right of the block's last query stay unwritten:
      // the causal softmax ignores everything above the diagonal); the scale is applied in the softmax
      kn.gemmStridedBatched(false, true, v.r1 - v.r0, v.r1, D, 1, v.q, C3, D, pb.k, C3, D, 0, v.att, T, TT, H);
    }
  }
  kn.softmaxCausalForward(att, B * H, T, p.scale);
  for (let b = 0; b < B; b++) {
    const pb = p.perBatch[b]!;
    for (const v of pb.blocks) {
      // Y[r0..r1] = P[r0..r1, 0..r1] V[0..r1]  (P is exactly 0 beyond the diagonal)
      kn.gemmStridedBatched(false, false, v.r1 - v.r0, D, v.r1, 1, v.att, T, TT, pb.v, C3, D, 0, v.atty, C, D, H);
    }
  }
  linearForward(kn, buf.y, buf.atty, buf.wo, N, C, C);
}

/** The unfused reference backward (reads buf.att, uses buf.datt as scratch). */
export function attentionBackwardUnfused(kn: Kernels, p: AttentionPlan, B: number, alpha = 1): void {
  const { att, datt } = needUnfused(p);
  const { T, C, H } = p.dims;
  const { D, buf } = p;
  const N = B * T;
  const C3 = 3 * C;
  const TT = T * T;
  linearBackward(kn, buf.datty, buf.dwo, buf.dy, buf.atty, buf.wo, N, C, C, alpha);
  for (let b = 0; b < B; b++) {
    const pb = p.perBatch[b]!;
    for (const v of pb.blocks) {
      // dP[r0..r1, 0..r1] = dY[r0..r1] V[0..r1]^T
      kn.gemmStridedBatched(false, true, v.r1 - v.r0, v.r1, D, 1, v.datty, C, D, pb.v, C3, D, 0, v.datt, T, TT, H);
      // dV[keys r0..r1] = P[r0..T, r0..r1]^T dY[r0..T]  (queries before r0 never see these keys)
      kn.gemmStridedBatched(true, false, v.r1 - v.r0, D, T - v.r0, 1, v.attKey, T, TT, v.dattyRows, C, D, 0, v.dv, C3, D, H);
    }
  }
  kn.softmaxCausalBackward(datt, att, B * H, T, p.scale);
  for (let b = 0; b < B; b++) {
    const pb = p.perBatch[b]!;
    for (const v of pb.blocks) {
      // dQ[r0..r1] = dS[r0..r1, 0..r1] K[0..r1]; dK[keys r0..r1] = dS[r0..T, r0..r1]^T Q[r0..T]
      // (dS is exactly 0 above the diagonal, so causality holds in backward too)
      kn.gemmStridedBatched(false, false, v.r1 - v.r0, D, v.r1, 1, v.datt, T, TT, pb.k, C3, D, 0, v.dq, C3, D, H);
      kn.gemmStridedBatched(true, false, v.r1 - v.r0, D, T - v.r0, 1, v.dattKey, T, TT, v.qRows, C3, D, 0, v.dk, C3, D, H);
    }
  }
  // gradients w.r.t. the pre-RoPE q, k: the inverse rotation
  kn.ropeBackward(buf.dqkv, N, T, 2 * H, D, C3, buf.cos, buf.sin);
  linearBackward(kn, buf.dx, buf.dwqkv, buf.dqkv, buf.x, buf.wqkv, N, C, C3, 1);
}
