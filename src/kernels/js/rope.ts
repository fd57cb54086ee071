import type { FloatArray } from '../types.js';

/**
 * Rotates each rotate-half pair (a, b) = (x[i], x[i + D/2]) of every head by the angle of
 * position t = row % T. `sign` = +1 is the forward rotation, -1 its inverse (the transpose).
 */
function rotate(x: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray, sign: number): void {
  const half = D / 2;
  for (let r = 0; r < nRows; r++) {
    const tab = (r % T) * half;
    for (let h = 0; h < nHeads; h++) {
      const base = r * rowStride + h * D;
      for (let i = 0; i < half; i++) {
        const c = cos[tab + i];
        const s = sign * sin[tab + i];
        const a = x[base + i];
        const b = x[base + i + half];
        x[base + i] = a * c - b * s;
        x[base + i + half] = a * s + b * c;
      }
    }
  }
}

/** a' = a cos - b sin; b' = a sin + b cos, in place. */
export function ropeForward(x: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray): void {
  rotate(x, nRows, T, nHeads, D, rowStride, cos, sin, 1);
}

/** The inverse (transposed) rotation, which maps dL/dx' to dL/dx. In place. */
export function ropeBackward(dx: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray): void {
  rotate(dx, nRows, T, nHeads, D, rowStride, cos, sin, -1);
}
