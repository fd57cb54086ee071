import type { FloatArray } from '../types.js';

/** out[i] = a[i] + b[i]; out may alias a or b (each index is read before it is written). */
export function add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** dst[i] += alpha * src[i]. */
export function axpy(dst: FloatArray, src: FloatArray, alpha: number, n: number): void {
  for (let i = 0; i < n; i++) dst[i] += alpha * src[i];
}

/** x[i] *= s. */
export function scale(x: FloatArray, s: number, n: number): void {
  for (let i = 0; i < n; i++) x[i] *= s;
}

/** sum_i x[i]^2 accumulated in a JS number (float64). */
export function sumSquares(x: FloatArray, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}
