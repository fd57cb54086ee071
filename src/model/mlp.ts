import type { FloatArray, KernelCall, KernelProgram, Kernels } from '../kernels/types.js';
import { linearBackwardSteps, linearForwardStep } from './linear.js';

/**
 * SwiGLU MLP as one op pair: h = x W_gate_up ([N, 2F], ONE matmul: gate | up),
 * s = silu(gate) * up ([N, F]), y = s W_down ([N, C]).
 * Each direction is one program (Kernels.run): the wasm backend's team of threads runs the
 * products and the elementwise pass in between with one wake-up instead of one per kernel.
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
  /**
   * The backward program per batch size (index B), built on first use: the buffers are fixed,
   * so a step allocates nothing once each B has been seen.
   */
  backwardPrograms?: KernelProgram[];
}

/** The forward's steps: gate|up product, SwiGLU, down product (B rows of T). */
export function mlpForwardSteps(p: MlpPlan, B: number): KernelCall[] {
  const { T, C, F } = p.dims;
  const b = p.buf;
  const N = B * T;
  return [
    linearForwardStep(b.h, b.x, b.wGateUp, N, C, 2 * F),
    ['swigluForward', b.s, b.h, N, F],
    linearForwardStep(b.y, b.s, b.wDown, N, F, C),
  ];
}

/** The backward's steps (see mlpBackward). */
export function mlpBackwardSteps(p: MlpPlan, B: number, alpha = 1): KernelCall[] {
  const { T, C, F } = p.dims;
  const b = p.buf;
  const N = B * T;
  const steps: KernelCall[] = [];
  if (p.recompute) steps.push(['swigluForward', b.s, b.h, N, F]); // the down projection's input
  // ds may alias s: the dW product reads s before the next step writes ds
  steps.push(...linearBackwardSteps(b.ds, b.dwDown, b.dy, b.s, b.wDown, N, F, C, alpha));
  steps.push(['swigluBackward', b.dh, b.ds, b.h, N, F]);
  steps.push(...linearBackwardSteps(b.dx, b.dwGateUp, b.dh, b.x, b.wGateUp, N, C, 2 * F, 1));
  return steps;
}

export function mlpForward(k: Kernels, p: MlpPlan, B: number): void {
  k.run(mlpForwardSteps(p, B));
}

/** Accumulates dwGateUp, dwDown (scaled by alpha) and writes dx. */
export function mlpBackward(k: Kernels, p: MlpPlan, B: number, alpha = 1): void {
  if (alpha !== 1) {
    k.run(mlpBackwardSteps(p, B, alpha));
    return;
  }
  const programs = (p.backwardPrograms ??= []);
  k.run((programs[B] ??= mlpBackwardSteps(p, B)));
}
