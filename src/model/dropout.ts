import { keepScale, mix32 } from '../kernels/js/dropout.js';
import type { FloatArray, Kernels } from '../kernels/types.js';

/**
 * Inverted dropout as an op pair whose mask is never stored. Element i of a call is kept when a
 * 32-bit hash of (stream, i) is >= round(p * 2^32) (the `dropout` kernel), and kept values are
 * scaled by 1 / (1 - p), so the expected output equals the input and evaluation needs no
 * rescaling. The stream is itself a hash of (seed, counter, site): the trainer gives the counter
 * (one per micro-batch), the model numbers its sites (embedding, each layer's attention and MLP
 * outputs). Backward recomputes the same mask from the same stream, so dropout costs no memory
 * and no RNG state: a resumed run draws exactly the masks an uninterrupted one would.
 *
 * The hash is integer arithmetic and the scale is rounded to float32, so every backend (js,
 * wasm, native) produces the same bits.
 */

/**
 * The 32-bit stream of one dropout site for one forward: a hash of the run's seed, the counter
 * (any integer in [0, 2^53), split into its low and high 32 bits; the trainer uses
 * step * grad_accum + micro-batch) and the site number, as an int32 bit pattern (see
 * dropoutThreshold).
 */
export function dropoutStream(seed: number, counter: number, site: number): number {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`dropout counter must be an integer in [0, 2^53) (got ${counter})`);
  let h = mix32((seed >>> 0) ^ 0x5bd1e995);
  h = mix32(h ^ (counter >>> 0));
  h = mix32(h ^ (Math.floor(counter / 2 ** 32) >>> 0));
  return mix32(h ^ (site >>> 0));
}

/**
 * Hashes at or above this threshold keep their element: P(keep) = 1 - p (to within 2^-32).
 * Returned as the int32 bit pattern of the uint32 threshold: an int32 is a small integer to V8,
 * passed to the kernel without boxing (see Kernels.dropout).
 */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout probability must be in [0, 1) (got ${p})`);
  return Math.min(2 ** 32 - 1, Math.round(p * 2 ** 32)) | 0;
}

/**
 * The factor of kept elements: the inverse of the keep probability of dropoutThreshold(p),
 * rounded to float32 (the kernels compute it from the threshold, the same on every backend).
 */
export function dropoutScale(p: number): number {
  return keepScale(dropoutThreshold(p));
}

/**
 * out[i] = x[i] * dropoutScale(p) where the mask of `stream` keeps element i, else 0 (n
 * elements; in place ok), for threshold = dropoutThreshold(p) (computed once by the caller:
 * the per-call arguments stay int32). Threshold 0 keeps everything (a copy).
 */
export function dropoutForward(k: Kernels, out: FloatArray, x: FloatArray, n: number, threshold: number, stream: number): void {
  k.dropout(out, x, n, threshold, stream);
}

/**
 * Backward of dropoutForward with the same (threshold, stream): the op is diagonal, so dx = dy
 * masked and scaled exactly as the forward masked x (the mask is recomputed, not stored). In place ok.
 */
export function dropoutBackward(k: Kernels, dx: FloatArray, dy: FloatArray, n: number, threshold: number, stream: number): void {
  k.dropout(dx, dy, n, threshold, stream);
}
