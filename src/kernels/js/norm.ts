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
