import type { FloatArray, Kernels } from '../kernels/types.js';
import { linearBackward, linearForward } from './linear.js';

/**
 * Causal multi-head self-attention with RoPE, as one op pair over planned buffers:
 *   qkv = x Wqkv ([N, 3C], row = q | k | v, head h at columns h*D of each part)
 *   rope(q, k) in place  (qkv is kept post-RoPE for backward)
 *   S[b, h] = q_bh k_bh^T         (gemmStridedBatched over heads: stride D inside a row of 3C)
 *   P = causal softmax(S / sqrt(D))   ([B, H, T, T], kept for backward)
 *   atty[b, :, h] = P[b, h] v_bh  (heads written side by side into atty [N, C])
 *   y = atty Wo
 * N = B*T. Every subarray view is made when the plan is built, never per step.
 */
export interface AttentionDims {
  /** Largest batch the buffers hold; calls may use any B <= maxB. */
  maxB: number;
  T: number;
  C: number;
  H: number;
}

export interface AttentionBuffers {
  // forward
  /** Normed input [N, C] (read). */
  x: FloatArray;
  /** [N, 3C], written by forward, post-RoPE. */
  qkv: FloatArray;
  /** Attention probabilities [B, H, T, T]. */
  att: FloatArray;
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
  /** Scratch [B, H, T, T]. */
  datt: FloatArray;
}

interface BatchViews {
  q: FloatArray; k: FloatArray; v: FloatArray; att: FloatArray; atty: FloatArray;
  dq: FloatArray; dk: FloatArray; dv: FloatArray; datt: FloatArray; datty: FloatArray;
}

export class AttentionPlan {
  readonly D: number;
  readonly scale: number;
  readonly perBatch: BatchViews[] = [];

  constructor(readonly dims: AttentionDims, readonly buf: AttentionBuffers) {
    const { maxB, T, C, H } = dims;
    this.D = C / H;
    this.scale = 1 / Math.sqrt(this.D);
    for (let b = 0; b < maxB; b++) {
      const r3 = b * T * 3 * C;
      const r1 = b * T * C;
      const a = b * H * T * T;
      this.perBatch.push({
        q: buf.qkv.subarray(r3), k: buf.qkv.subarray(r3 + C), v: buf.qkv.subarray(r3 + 2 * C),
        att: buf.att.subarray(a), atty: buf.atty.subarray(r1),
        dq: buf.dqkv.subarray(r3), dk: buf.dqkv.subarray(r3 + C), dv: buf.dqkv.subarray(r3 + 2 * C),
        datt: buf.datt.subarray(a), datty: buf.datty.subarray(r1),
      });
    }
  }
}

export function attentionForward(kn: Kernels, p: AttentionPlan, B: number): void {
  const { T, C, H } = p.dims;
  const { D, buf } = p;
  const N = B * T;
  const C3 = 3 * C;
  linearForward(kn, buf.qkv, buf.x, buf.wqkv, N, C, C3);
  // q and k are the first 2H heads of each row: rotate both in one call
  kn.ropeForward(buf.qkv, N, T, 2 * H, D, C3, buf.cos, buf.sin);
  for (let b = 0; b < B; b++) {
    const v = p.perBatch[b]!;
    // S = Q K^T per head; the scale is applied inside the softmax
    kn.gemmStridedBatched(false, true, T, T, D, 1, v.q, C3, D, v.k, C3, D, 0, v.att, T, T * T, H);
  }
  kn.softmaxCausalForward(buf.att, B * H, T, p.scale);
  for (let b = 0; b < B; b++) {
    const v = p.perBatch[b]!;
    kn.gemmStridedBatched(false, false, T, D, T, 1, v.att, T, T * T, v.v, C3, D, 0, v.atty, C, D, H);
  }
  linearForward(kn, buf.y, buf.atty, buf.wo, N, C, C);
}

/** Accumulates dwqkv, dwo (scaled by alpha) and writes dx. Needs the forward's buffers intact. */
export function attentionBackward(kn: Kernels, p: AttentionPlan, B: number, alpha = 1): void {
  const { T, C, H } = p.dims;
  const { D, buf } = p;
  const N = B * T;
  const C3 = 3 * C;
  linearBackward(kn, buf.datty, buf.dwo, buf.dy, buf.atty, buf.wo, N, C, C, alpha);
  for (let b = 0; b < B; b++) {
    const v = p.perBatch[b]!;
    // dP = dY V^T ; dV = P^T dY
    kn.gemmStridedBatched(false, true, T, T, D, 1, v.datty, C, D, v.v, C3, D, 0, v.datt, T, T * T, H);
    kn.gemmStridedBatched(true, false, T, D, T, 1, v.att, T, T * T, v.datty, C, D, 0, v.dv, C3, D, H);
  }
  kn.softmaxCausalBackward(buf.datt, buf.att, B * H, T, p.scale);
  for (let b = 0; b < B; b++) {
    const v = p.perBatch[b]!;
    // dQ = dS K ; dK = dS^T Q  (dS is zero above the diagonal, so causality holds in backward too)
    kn.gemmStridedBatched(false, false, T, D, T, 1, v.datt, T, T * T, v.k, C3, D, 0, v.dq, C3, D, H);
    kn.gemmStridedBatched(true, false, T, D, T, 1, v.datt, T, T * T, v.q, C3, D, 0, v.dk, C3, D, H);
  }
  // gradients w.r.t. the pre-RoPE q, k: the inverse rotation
  kn.ropeBackward(buf.dqkv, N, T, 2 * H, D, C3, buf.cos, buf.sin);
  linearBackward(kn, buf.dx, buf.dwqkv, buf.dqkv, buf.x, buf.wqkv, N, C, C3, 1);
}
