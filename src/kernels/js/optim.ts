import type { FloatArray } from '../types.js';

/**
 * AdamW, decoupled weight decay (decay uses p before this step's update):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr ((m/bc1) / (sqrt(v/bc2) + eps) + wd p).
 */
export function adamwUpdate(
  p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number,
  lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number,
): void {
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + (1 - b1) * gi;
    const vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi / bc1 / (Math.sqrt(vi / bc2) + eps) + wd * p[i]);
  }
}

/** Lion: u = sign(b1 m + (1-b1) g); p -= lr (u + wd p); m = b2 m + (1-b2) g. */
export function lionUpdate(p: FloatArray, g: FloatArray, m: FloatArray, n: number, lr: number, b1: number, b2: number, wd: number): void {
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const u = Math.sign(b1 * m[i] + (1 - b1) * gi);
    p[i] -= lr * (u + wd * p[i]);
    m[i] = b2 * m[i] + (1 - b2) * gi;
  }
}

/**
 * Schedule-Free AdamW: v = b2 v + (1-b2) g^2; z -= lr (g / (sqrt(v/bc2) + eps) + wd y);
 * x = (1-ck) x + ck z; y = (1-b1) z + b1 x. Weight decay uses y, where g was taken.
 */
export function scheduleFreeAdamwUpdate(
  y: FloatArray, g: FloatArray, z: FloatArray, x: FloatArray, v: FloatArray, n: number,
  lr: number, b1: number, b2: number, eps: number, wd: number, ck: number, bc2: number,
): void {
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const vi = b2 * v[i] + (1 - b2) * gi * gi;
    v[i] = vi;
    const zi = z[i] - lr * (gi / (Math.sqrt(vi / bc2) + eps) + wd * y[i]);
    z[i] = zi;
    const xi = (1 - ck) * x[i] + ck * zi;
    x[i] = xi;
    y[i] = (1 - b1) * zi + b1 * xi;
  }
}
