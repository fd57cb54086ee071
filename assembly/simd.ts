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
// degree-6 polynomial. ln 2 is split in two constants so r keeps its low bits.
// Relative error about 1e-7 for x in [-87, 88]; inputs are clamped to that range
// (so exp of a very negative number is tiny but not 0, which softmax does not mind).
const EXP_HI: f32 = 88.3762626647949;
const EXP_LO: f32 = -87.3365478515625;
const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
const P0: f32 = 1.9875691500e-4;
const P1: f32 = 1.3981999507e-3;
const P2: f32 = 8.3334519073e-3;
const P3: f32 = 4.1665795894e-2;
const P4: f32 = 1.6666665459e-1;
const P5: f32 = 5.0000001201e-1;

/** e^x on four lanes (see the comment above for accuracy). */
// @ts-ignore: decorator
@inline export function vexp(x0: v128): v128 {
  const x1 = f32x4.min(f32x4.max(x0, f32x4.splat(EXP_LO)), f32x4.splat(EXP_HI));
  const n = f32x4.nearest(f32x4.mul(x1, f32x4.splat(LOG2E)));
  let r = f32x4.sub(x1, f32x4.mul(n, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = madd(f32x4.splat(P0), r, f32x4.splat(P1));
  p = madd(p, r, f32x4.splat(P2));
  p = madd(p, r, f32x4.splat(P3));
  p = madd(p, r, f32x4.splat(P4));
  p = madd(p, r, f32x4.splat(P5));
  const r2 = f32x4.mul(r, r);
  p = madd(p, r2, f32x4.add(r, f32x4.splat(1.0)));
  // multiply by 2^n by adding n to the exponent field
  const e = i32x4.shl(i32x4.trunc_sat_f32x4_s(n), 23);
  return i32x4.add(p, e);
}

/** Scalar e^x with exactly the same arithmetic as lane 0 of vexp. */
// @ts-ignore: decorator
@inline export function sexp(x: f32): f32 {
  return f32x4.extract_lane(vexp(f32x4.splat(x)), 0);
}

/** 1 / (1 + e^-g) on four lanes. */
// @ts-ignore: decorator
@inline export function vsigmoid(g: v128): v128 {
  const one = f32x4.splat(1.0);
  return f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(g))));
}
