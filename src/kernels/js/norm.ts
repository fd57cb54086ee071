import type { FloatArray } from '../types.js';

/** RMSNorm: rstd[i] = 1/sqrt(mean(x_i^2) + eps); out = x * rstd * weight. Writes out, rstd. */
export function rmsnormForward(out: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, eps: number): void {
  for (let i = 0; i < N; i++) {
    const row = i * C;
    let ss = 0;
    for (let j = 0; j < C; j++) ss += inp[row + j] * inp[row + j];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[i] = r;
    for (let j = 0; j < C; j++) out[row + j] = inp[row + j] * r * weight[j];
  }
}

/**
 * Accumulates dinp += rstd * (w*dout - x * rstd^2 * mean_j(w_j dout_j x_j)) and
 * dweight += dout * x * rstd, using the rstd saved by the forward pass.
 */
export function rmsnormBackward(
  dinp: FloatArray, dweight: FloatArray, dout: FloatArray, inp: FloatArray,
  weight: FloatArray, rstd: FloatArray, N: number, C: number,
): void {
  for (let i = 0; i < N; i++) {
    const row = i * C;
    const r = rstd[i];
    let dot = 0;
    for (let j = 0; j < C; j++) dot += weight[j] * dout[row + j] * inp[row + j];
    const k = r * r * (dot / C);
    for (let j = 0; j < C; j++) {
      const x = inp[row + j];
      const d = dout[row + j];
      dinp[row + j] += r * (weight[j] * d - x * k);
      dweight[j] += d * x * r;
    }
  }
}

/**
 * sum = a + b, then RMSNorm of sum (Kernels.addRmsnormForward). Each row's sum is written
 * first and read back, so on Float32Array the norm sees the same rounded values as add
 * followed by rmsnormForward. sum may alias a or b.
 */
export function addRmsnormForward(sum: FloatArray, out: FloatArray, rstd: FloatArray, a: FloatArray, b: FloatArray,
  weight: FloatArray, N: number, C: number, eps: number): void {
  for (let i = 0; i < N; i++) {
    const row = i * C;
    for (let j = 0; j < C; j++) sum[row + j] = a[row + j] + b[row + j];
    let ss = 0;
    for (let j = 0; j < C; j++) ss += sum[row + j] * sum[row + j];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[i] = r;
    for (let j = 0; j < C; j++) out[row + j] = sum[row + j] * r * weight[j];
  }
}
