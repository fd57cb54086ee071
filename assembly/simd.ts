// SIMD helpers shared by every kernel. The same source builds twice: with relaxed SIMD
// (`madd` is one fused multiply-add) and without (`madd` is mul + add). The branch on
// ASC_FEATURE_RELAXED_SIMD is resolved at compile time, so neither build pays for it.

/** a * b + c, fused when the build has relaxed SIMD. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Largest of the four lanes. */
// @ts-ignore: decorator
@inline export function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

// Cephes-style expf: e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln2 / 2; e^r by a
// degree-6 polynomial. ln 2 is split in two constants so r keeps its low bits. n is
// rounded with the 1.5 * 2^23 trick: after adding it, n sits in the low mantissa bits.
// Relative error about 2e-7 for x in [-60, 88]. Below -60 the result is flushed to exactly
// 0 (absolute error < 1e-26): left alone, e^x there lands near float32's subnormal range,
// and softmax probabilities (then cross-entropy gradients scaled by 1/N) become subnormal
// numbers, which x86 handles ~100x slower: a gemm reading sharp attention probabilities
// ran 70-170x slower within a few hundred training steps. NaN still propagates.
//
// The constants are read from a table in memory rather than written as v128.const:
// V8 rebuilds a v128 constant from immediates at every use inside a loop (no hoisting),
// which made this function 3x slower; a load is one cheap instruction.
const EXP_TABLE = memory.data<f32>([
  -87.3365478515625, -87.3365478515625, -87.3365478515625, -87.3365478515625, // 0: clamp low
  88.3762626647949, 88.3762626647949, 88.3762626647949, 88.3762626647949, // 16: clamp high
  1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341, // 32: log2(e)
  12582912.0, 12582912.0, 12582912.0, 12582912.0, // 48: 1.5 * 2^23
  0.693359375, 0.693359375, 0.693359375, 0.693359375, // 64: ln2 high part
  -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, // 80: ln2 low part
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, // 96: polynomial
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, // 112
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, // 128
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, // 144
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, // 160
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, // 176
  1.0, 1.0, 1.0, 1.0, // 192: one
  0.0, 0.0, 0.0, 0.0, // 208: zero
  -60.0, -60.0, -60.0, -60.0, // 224: flush-to-zero threshold (see above)
], 16);

/** The vector 1.0 (loaded, see above). */
// @ts-ignore: decorator
@inline export function vone(): v128 {
  return v128.load(EXP_TABLE, 192);
}

/** The vector 0.0 (loaded, see above). */
// @ts-ignore: decorator
@inline export function vzero(): v128 {
  return v128.load(EXP_TABLE, 208);
}

/** e^x on four lanes (see the comment above for accuracy). */
// @ts-ignore: decorator
@inline export function vexp(x0: v128): v128 {
  const T = EXP_TABLE;
  const x1 = f32x4.pmin(f32x4.pmax(x0, v128.load(T)), v128.load(T, 16));
  const t = madd(x1, v128.load(T, 32), v128.load(T, 48));
  const n = f32x4.sub(t, v128.load(T, 48));
  let r = f32x4.sub(x1, f32x4.mul(n, v128.load(T, 64)));
  r = f32x4.sub(r, f32x4.mul(n, v128.load(T, 80)));
  let p = madd(v128.load(T, 96), r, v128.load(T, 112));
  p = madd(p, r, v128.load(T, 128));
  p = madd(p, r, v128.load(T, 144));
  p = madd(p, r, v128.load(T, 160));
  p = madd(p, r, v128.load(T, 176));
  p = madd(p, f32x4.mul(r, r), f32x4.add(r, v128.load(T, 192)));
  // multiply by 2^n: add n (the low bits of t) to the exponent field
  const y = i32x4.add(p, i32x4.shl(t, 23));
  // lanes with x0 < -60 become +0 (the compare is false for NaN, which stays NaN)
  return v128.andnot(y, f32x4.lt(x0, v128.load(T, 224)));
}

/** Scalar e^x with exactly the same arithmetic as lane 0 of vexp. */
// @ts-ignore: decorator
@inline export function sexp(x: f32): f32 {
  return f32x4.extract_lane(vexp(f32x4.splat(x)), 0);
}

/** 1 / (1 + e^-g) on four lanes. */
// @ts-ignore: decorator
@inline export function vsigmoid(g: v128): v128 {
  const one = vone();
  return f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(g))));
}
