import type { FloatArray } from '../types.js';

/**
 * In place over nMat [T, T] matrices: row t becomes softmax(scale * att[t, 0..t]) with
 * exact zeros above the diagonal (whatever was stored there is never read).
 */
export function softmaxCausalForward(att: FloatArray, nMat: number, T: number, scale: number): void {
  for (let m = 0; m < nMat; m++) {
    for (let t = 0; t < T; t++) {
      const row = (m * T + t) * T;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) max = Math.max(max, scale * att[row + j]);
      let sum = 0;
      for (let j = 0; j <= t; j++) {
        const e = Math.exp(scale * att[row + j] - max);
        att[row + j] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let j = 0; j <= t; j++) att[row + j] *= inv;
      for (let j = t + 1; j < T; j++) att[row + j] = 0;
    }
  }
}

/** datt := scale * att * (datt - sum_{k<=t} att datt) on and below the diagonal, 0 above. */
export function softmaxCausalBackward(datt: FloatArray, att: FloatArray, nMat: number, T: number, scale: number): void {
  for (let m = 0; m < nMat; m++) {
    for (let t = 0; t < T; t++) {
      const row = (m * T + t) * T;
      let dot = 0;
      for (let k = 0; k <= t; k++) dot += att[row + k] * datt[row + k];
      for (let j = 0; j <= t; j++) datt[row + j] = scale * att[row + j] * (datt[row + j] - dot);
      for (let j = t + 1; j < T; j++) datt[row + j] = 0;
    }
  }
}
