import type { FloatArray, Kernels } from '../kernels/types.js';
import { linearBackward, linearForward } from './linear.js';

/**
 * SwiGLU MLP as one op pair: h = x W_gate_up ([N, 2F], ONE matmul: gate | up),
 * s = silu(gate) * up ([N, F]), y = s W_down ([N, C]).
 */
export interface MlpDims {
  maxB: number;
  T: number;
  C: number;
  F: number;
}

export interface MlpBuffers {
  /** Normed input [N, C] (read). */
  x: FloatArray;
  /** [N, 2F], kept for backward. */
  h: FloatArray;
  /**
   * SwiGLU output [N, F]: kept for backward, or (plan.recompute) scratch that backward
   * recomputes from h, saving N*F floats per layer for one elementwise pass. Only when
   * recomputing may it alias `ds`.
   */
  s: FloatArray;
  /** Output [N, C] (written). */
  y: FloatArray;
  wGateUp: FloatArray;
  wDown: FloatArray;
  /** dL/dy [N, C] (read). */
  dy: FloatArray;
  /** dL/dx [N, C] (WRITTEN). */
  dx: FloatArray;
  dwGateUp: FloatArray;
  dwDown: FloatArray;
  /** Scratch [N, 2F] for the gate|up gradient; may be `h` itself (swigluBackward works in place). */
  dh: FloatArray;
  /** Scratch [N, F]; may be the same buffer as `s`. */
  ds: FloatArray;
}

export interface MlpPlan {
  dims: MlpDims;
  buf: MlpBuffers;
  /** Backward recomputes `s` from `h` (it was not kept). */
  recompute: boolean;
}

export function mlpForward(k: Kernels, p: MlpPlan, B: number): void {
  const { T, C, F } = p.dims;
  const b = p.buf;
  const N = B * T;
  linearForward(k, b.h, b.x, b.wGateUp, N, C, 2 * F);
  k.swigluForward(b.s, b.h, N, F);
  linearForward(k, b.y, b.s, b.wDown, N, F, C);
}

/** Accumulates dwGateUp, dwDown (scaled by alpha) and writes dx. */
export function mlpBackward(k: Kernels, p: MlpPlan, B: number, alpha = 1): void {
  const { T, C, F } = p.dims;
  const b = p.buf;
  const N = B * T;
  if (p.recompute) k.swigluForward(b.s, b.h, N, F); // the down projection's input
  // ds may alias s: linearBackward reads s for dW before it writes ds
  linearBackward(k, b.ds, b.dwDown, b.dy, b.s, b.wDown, N, F, C, alpha);
  k.swigluBackward(b.dh, b.ds, b.h, N, F);
  linearBackward(k, b.dx, b.dwGateUp, b.dh, b.x, b.wGateUp, N, C, 2 * F, 1);
}
