import type { FloatArray } from '../types.js';

function sigmoid(g: number): number {
  return 1 / (1 + Math.exp(-g));
}

/** out[i, j] = silu(h[i, j]) * h[i, F + j]. Writes out [N, F]. */
export function swigluForward(out: FloatArray, h: FloatArray, N: number, F: number): void {
  for (let i = 0; i < N; i++) {
    const hr = i * 2 * F;
    const or = i * F;
    for (let j = 0; j < F; j++) {
      const g = h[hr + j];
      out[or + j] = g * sigmoid(g) * h[hr + F + j];
    }
  }
}

/**
 * Writes dh: d gate = dout * up * silu'(g) with silu'(g) = s (1 + g (1 - s)), s = sigmoid(g);
 * d up = dout * silu(g).
 */
export function swigluBackward(dh: FloatArray, dout: FloatArray, h: FloatArray, N: number, F: number): void {
  for (let i = 0; i < N; i++) {
    const hr = i * 2 * F;
    const or = i * F;
    for (let j = 0; j < F; j++) {
      const g = h[hr + j];
      const u = h[hr + F + j];
      const d = dout[or + j];
      const s = sigmoid(g);
      dh[hr + j] = d * u * s * (1 + g * (1 - s));
      dh[hr + F + j] = d * g * s;
    }
  }
}
