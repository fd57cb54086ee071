/**
 * Helpers for tests in every folder: a seeded PRNG, random fills, float64 copies,
 * numpy-style closeness checks that name the worst element, and central finite differences.
 * Nothing here is used by the library itself.
 */
import assert from 'node:assert/strict';
import type { FloatArray } from './types.js';
import { mulberry32 } from '../util/rng.js';

/** A deterministic uniform [0, 1) generator (mulberry32): same seed, same sequence, any machine. */
export type Rng = () => number;

export function seededRng(seed: number): Rng {
  return mulberry32(seed);
}

/** Fills x[0..n) with uniform values in [lo, hi). Returns x. */
export function fillUniform<T extends FloatArray>(x: T, rng: Rng, lo = -1, hi = 1, n = x.length): T {
  for (let i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng();
  return x;
}

/** Fills x[0..n) with normal(0, std) values (Box-Muller). Returns x. */
export function fillNormal<T extends FloatArray>(x: T, rng: Rng, std = 1, n = x.length): T {
  for (let i = 0; i < n; i++) {
    const u = 1 - rng(); // (0, 1]: log(u) is finite
    x[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
  }
  return x;
}

/** Fills an Int32Array with integers uniform in [0, hi). Returns x. */
export function fillInts(x: Int32Array, rng: Rng, hi: number, n = x.length): Int32Array {
  for (let i = 0; i < n; i++) x[i] = Math.floor(rng() * hi);
  return x;
}

/** A float64 copy of x (the exact values: float32 -> float64 is lossless). */
export function toFloat64(x: ArrayLike<number>, n = x.length): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = x[i];
  return out;
}

export interface Closeness {
  /** max |actual - expected| */
  maxAbs: number;
  /** max |actual - expected| / |expected| over elements with expected != 0 */
  maxRel: number;
  /** the element with the largest |a - e| / (atol + rtol |e|), or -1 if none */
  worst: number;
  /** that largest ratio: <= 1 means within tolerance */
  worstRatio: number;
}

/**
 * Compares elementwise under numpy's allclose rule |a - e| <= atol + rtol * |e|.
 * NaN anywhere (in either) counts as infinitely far unless both are NaN at that index.
 */
export function closeness(actual: ArrayLike<number>, expected: ArrayLike<number>, n: number, rtol: number, atol: number): Closeness {
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < n; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    const d = Math.abs(a - e);
    const r = d === 0 ? 0 : d / (atol + rtol * Math.abs(e));
    const ratio = Number.isNaN(r) ? Infinity : r;
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    if (e !== 0 && !(d / Math.abs(e) <= maxRel)) maxRel = Number.isNaN(d) ? Infinity : d / Math.abs(e);
    if (ratio > worstRatio || (worst < 0 && ratio > 0)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  return { maxAbs, maxRel, worst, worstRatio };
}

/** Throws an AssertionError naming the worst element when any |a - e| > atol + rtol |e|. */
export function assertAllClose(
  actual: ArrayLike<number>, expected: ArrayLike<number>,
  opts: { rtol: number; atol: number; n?: number; label?: string },
): void {
  const n = opts.n ?? expected.length;
  // A NaN tolerance would make every comparison false, i.e. silently pass.
  assert.ok(opts.rtol >= 0 && opts.atol >= 0, `${opts.label ?? 'array'}: tolerances must be numbers >= 0 (rtol ${opts.rtol}, atol ${opts.atol})`);
  assert.ok(actual.length >= n, `${opts.label ?? 'array'}: actual has ${actual.length} elements, need ${n}`);
  const c = closeness(actual, expected, n, opts.rtol, opts.atol);
  if (c.worstRatio > 1) {
    const i = c.worst;
    assert.fail(
      `${opts.label ?? 'array'}: element ${i} is ${actual[i]}, expected ${expected[i]} ` +
      `(|diff| ${Math.abs(actual[i] - expected[i]).toExponential(3)} > atol ${opts.atol} + rtol ${opts.rtol} * |expected|; ` +
      `max abs diff ${c.maxAbs.toExponential(3)}, max rel ${c.maxRel.toExponential(3)}, n=${n})`,
    );
  }
}

/** Largest finite-or-infinite |x[i]| over i < n, NaNs skipped (0 if none). Useful to scale an absolute tolerance. */
export function maxAbs(x: ArrayLike<number>, n = x.length): number {
  let m = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

/**
 * Central finite-difference gradient of f with respect to x[0..n): perturbs x in place
 * (restoring each entry exactly) and calls f() twice per entry. Use float64 arrays: in
 * float32 the step would drown in rounding.
 */
export function numericGradient(x: Float64Array, f: () => number, h = 1e-5, n = x.length): Float64Array {
  const g = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const old = x[i];
    x[i] = old + h;
    const fp = f();
    x[i] = old - h;
    const fm = f();
    x[i] = old;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** sum_i w[i] * y[i] in float64: a scalar objective whose gradient with respect to y is w. */
export function dot(w: ArrayLike<number>, y: ArrayLike<number>, n = w.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += w[i] * y[i];
  return s;
}
