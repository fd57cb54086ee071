import type { FloatArray, KernelCall, Kernels } from '../kernels/types.js';

/**
 * Bias-free linear layer with the weight stored [in, out] (see layout.ts):
 * Y[N, out] = X[N, in] W (the nn gemm). Writes y.
 */
export function linearForward(k: Kernels, y: FloatArray, x: FloatArray, w: FloatArray, N: number, nIn: number, nOut: number): void {
  k.gemm(false, false, N, nOut, nIn, 1, x, nIn, w, nOut, 0, y, nOut);
}

/** linearForward as a program step (Kernels.run). */
export function linearForwardStep(y: FloatArray, x: FloatArray, w: FloatArray, N: number, nIn: number, nOut: number): KernelCall {
  return ['gemm', false, false, N, nOut, nIn, 1, x, nIn, w, nOut, 0, y, nOut];
}

/**
 * Backward of `linearForward`: dW += alpha X^T dY (tn gemm, accumulates),
 * dX = alpha dY W^T (nt gemm, WRITES dx). `alpha` carries the loss scale.
 * dx may alias x: dW is computed first, so x is no longer needed when dx is written.
 */
export function linearBackward(
  k: Kernels, dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray,
  N: number, nIn: number, nOut: number, alpha = 1,
): void {
  k.gemm(true, false, nIn, nOut, N, alpha, x, nIn, dy, nOut, 1, dw, nOut);
  k.gemm(false, true, N, nIn, nOut, alpha, dy, nOut, w, nOut, 0, dx, nIn);
}

/** linearBackward as two program steps (the dW product first, so dx may alias x here too). */
export function linearBackwardSteps(
  dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray,
  N: number, nIn: number, nOut: number, alpha = 1,
): KernelCall[] {
  return [
    ['gemm', true, false, nIn, nOut, N, alpha, x, nIn, dy, nOut, 1, dw, nOut],
    ['gemm', false, true, N, nIn, nOut, alpha, dy, nOut, w, nOut, 0, dx, nIn],
  ];
}

/**
 * LM head with the table stored [V, C] (the embedding's orientation, so tied and untied share
 * this code): logits[N, V] = X[N, C] table^T (nt gemm). Writes logits.
 */
export function lmHeadForward(k: Kernels, logits: FloatArray, x: FloatArray, table: FloatArray, N: number, C: number, V: number): void {
  k.gemm(false, true, N, V, C, 1, x, C, table, C, 0, logits, V);
}

/**
 * Backward of `lmHeadForward`: dtable[V, C] += alpha dlogits^T X (tn), dX = alpha dlogits table (nn,
 * WRITES dx). With tied embeddings dtable is the `wte` gradient, which the embedding backward
 * adds to as well (both accumulate: zeroGrad once per optimizer step resets both terms).
 */
export function lmHeadBackward(
  k: Kernels, dx: FloatArray, dtable: FloatArray, dlogits: FloatArray, x: FloatArray, table: FloatArray,
  N: number, C: number, V: number, alpha = 1,
): void {
  k.gemm(true, false, V, C, N, alpha, dlogits, V, x, C, 1, dtable, C);
  k.gemm(false, false, N, C, V, alpha, dlogits, V, table, C, 0, dx, C);
}
