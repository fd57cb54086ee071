import type { FloatArray } from '../types.js';

/**
 * lowbias32 (from Wellons' hash-prospector): a 32-bit integer mix with low avalanche bias.
 * Returns the int32 bit pattern of the uint32 hash (`>>> 0` gives the uint32): V8 keeps an
 * int32 unboxed where a uint32 above 2^31 would become a heap number. The wasm kernel computes
 * the same function lane by lane.
 */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return h ^ (h >>> 16);
}

/** Golden-ratio increment of the dropout counter: element i hashes counter + i * DROPOUT_WEYL (mod 2^32). */
export const DROPOUT_WEYL = 0x9e3779b9;

/**
 * The factor of kept elements for a threshold (uint32, or its int32 bit pattern): the inverse of
 * the keep probability (2^32 - threshold) / 2^32, rounded to float32 (the wasm kernel rounds the
 * same float64 quotient the same way).
 */
export function keepScale(threshold: number): number {
  return Math.fround(4294967296 / (4294967296 - (threshold >>> 0)));
}

/**
 * Inverted dropout with a hashed mask: out[i] = x[i] * keepScale(threshold) when
 * mix32((counter + i * DROPOUT_WEYL) mod 2^32) >= threshold, else 0. threshold and counter are
 * uint32 (int32 bit patterns accepted). In place ok.
 */
export function dropout(out: FloatArray, x: FloatArray, n: number, threshold: number, counter: number): void {
  const th = threshold >>> 0;
  const scale = keepScale(th);
  let c = counter >>> 0;
  for (let i = 0; i < n; i++) {
    out[i] = mix32(c) >>> 0 >= th ? x[i] * scale : 0;
    c = (c + DROPOUT_WEYL) >>> 0;
  }
}
