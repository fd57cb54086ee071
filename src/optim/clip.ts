import type { FloatArray, Kernels } from '../kernels/types.js';

/**
 * Scales grads in place so their global L2 norm is at most maxNorm (maxNorm <= 0: no
 * clipping). Returns the norm before clipping, for logging; a non-finite norm is returned
 * untouched (grads are left as they are) so the trainer can detect and report it.
 */
export function clipGradNorm(kernels: Kernels, grads: FloatArray, maxNorm: number): number {
  const norm = Math.sqrt(kernels.sumSquares(grads, grads.length));
  if (maxNorm > 0 && Number.isFinite(norm) && norm > maxNorm) {
    kernels.scale(grads, maxNorm / norm, grads.length);
  }
  return norm;
}
