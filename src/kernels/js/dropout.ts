import type { FloatArray } from '../types.js';

/**
 * lowbias32 (from Wellons' hash-prospector): a 32-bit integer mix with low avalanche bias.
 * Returns a uint32. The wasm kernel computes the same function lane by lane.
 */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Golden-ratio increment of the dropout counter: element i hashes counter + i * DROPOUT_WEYL (mod 2^32). */
export const DROPOUT_WEYL = 0x9e3779b9;

/**
 * Inverted dropout with a hashed mask: out[i] = x[i] * scale when
 * mix32((counter + i * DROPOUT_WEYL) mod 2^32) >= threshold (uint32), else 0. In place ok.
 */
export function dropout(out: FloatArray, x: FloatArray, n: number, threshold: number, scale: number, counter: number): void {
  let c = counter >>> 0;
  for (let i = 0; i < n; i++) {
    out[i] = mix32(c) >= threshold ? x[i] * scale : 0;
    c = (c + DROPOUT_WEYL) >>> 0;
  }
}
