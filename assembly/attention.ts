// Fused causal attention (flash-style): for one head, per block of BQ queries the keys are
// visited in tiles of BK; each tile's scores go through a running max and sum (online
// softmax) straight into the output, so the T x T probabilities never exist. Backward walks
// key tiles, recomputes each (query block, key tile)'s probabilities from q, k and the saved
// log-sum-exp, and accumulates dk, dv for the tile in scratch and dq in place.
//
// Layout (see Kernels.attentionCausalForward): qkv rows of 3C floats (q | k | v, head h at
// column h*D of each part), out and dout rows of C floats, lse [B*H, T]. A call handles heads
// g0 .. g0+ng-1 (g = b*H + h), so threads split the work by whole heads and never share an
// output row segment.
//
// Two primitives do all the arithmetic: `scores` (rows of A times a packed, transposed tile:
// QK^T and dO V^T) and `accRows` (rows of a coefficient tile times rows of X, accumulated:
// PV, dS K, P^T dO, dS^T Q). Both keep 2 rows x 16 columns of accumulators in registers.
import { madd, hsum, hmax, vexp } from './simd';

/** Queries per block and keys per tile. BK must be a multiple of 16 and of BQ (see below). */
const BQ: i32 = 32;
const BK: i32 = 64;

/** Scratch floats one call needs for head size D (per thread). */
export function attentionScratchFloats(D: i32): i32 {
  // Kt, Vt [D, BK]; S, dP [BQ, BK]; two accumulators [BK, D]; m, l [BQ]
  return 4 * D * BK + 2 * BQ * BK + 2 * BQ;
}

// lane indices 0..3 and -inf, loaded from memory (a v128 constant would be rebuilt in every loop)
const TABLE = memory.data<i32>([0, 1, 2, 3, 0xff800000, 0xff800000, 0xff800000, 0xff800000], 16);

// @ts-ignore: decorator
@inline function ptr(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}

/** dst[d*BK + j] = src[j*ld + d] for j < n, 0 for n <= j < ncols (a tile transposed, zero-padded). */
function packT(dst: usize, src: usize, ld: i32, n: i32, D: i32, ncols: i32): void {
  for (let j = 0; j < ncols; j++) {
    if (j < n) {
      const s = ptr(src, j * ld);
      for (let d = 0; d < D; d++) store<f32>(ptr(dst, d * BK + j), load<f32>(ptr(s, d)));
    } else {
      for (let d = 0; d < D; d++) store<f32>(ptr(dst, d * BK + j), 0);
    }
  }
}

/** S[i, 0..ncols) = A[i, 0..D) . Kt[0..D, 0..ncols) for i < nq; S has row stride BK, ncols a multiple of 16. */
function scores(S: usize, A: usize, lda: i32, nq: i32, Kt: usize, D: i32, ncols: i32): void {
  let i = 0;
  for (; i + 2 <= nq; i += 2) {
    const a0 = ptr(A, i * lda), a1 = ptr(A, (i + 1) * lda);
    for (let c = 0; c < ncols; c += 16) {
      let x0 = f32x4.splat(0), x1 = x0, x2 = x0, x3 = x0, y0 = x0, y1 = x0, y2 = x0, y3 = x0;
      let kp = ptr(Kt, c);
      for (let d = 0; d < D; d++) {
        const u = f32x4.splat(load<f32>(ptr(a0, d))), w = f32x4.splat(load<f32>(ptr(a1, d)));
        const k0 = v128.load(kp), k1 = v128.load(kp, 16), k2 = v128.load(kp, 32), k3 = v128.load(kp, 48);
        x0 = madd(u, k0, x0); x1 = madd(u, k1, x1); x2 = madd(u, k2, x2); x3 = madd(u, k3, x3);
        y0 = madd(w, k0, y0); y1 = madd(w, k1, y1); y2 = madd(w, k2, y2); y3 = madd(w, k3, y3);
        kp += <usize>BK << 2;
      }
      const s0 = ptr(S, i * BK + c), s1 = ptr(S, (i + 1) * BK + c);
      v128.store(s0, x0); v128.store(s0, x1, 16); v128.store(s0, x2, 32); v128.store(s0, x3, 48);
      v128.store(s1, y0); v128.store(s1, y1, 16); v128.store(s1, y2, 32); v128.store(s1, y3, 48);
    }
  }
  if (i < nq) {
    const a0 = ptr(A, i * lda);
    for (let c = 0; c < ncols; c += 16) {
      let x0 = f32x4.splat(0), x1 = x0, x2 = x0, x3 = x0;
      let kp = ptr(Kt, c);
      for (let d = 0; d < D; d++) {
        const u = f32x4.splat(load<f32>(ptr(a0, d)));
        x0 = madd(u, v128.load(kp), x0); x1 = madd(u, v128.load(kp, 16), x1);
        x2 = madd(u, v128.load(kp, 32), x2); x3 = madd(u, v128.load(kp, 48), x3);
        kp += <usize>BK << 2;
      }
      const s0 = ptr(S, i * BK + c);
      v128.store(s0, x0); v128.store(s0, x1, 16); v128.store(s0, x2, 32); v128.store(s0, x3, 48);
    }
  }
}

/**
 * O[r, 0..D) += sum_k P[r*cr + k*ck] X[k, 0..D) for r < nr, over k in [max(0, r+low), min(kmax, r+high)).
 * Rows go in pairs over the union of their ranges: the coefficients must be 0 outside a row's
 * own range (the causal mask wrote them so).
 */
function accRows(O: usize, ldo: i32, P: usize, cr: i32, ck: i32, nr: i32, X: usize, ldx: i32, D: i32,
  kmax: i32, low: i32, high: i32): void {
  const ckb = <usize>ck << 2;
  const ldxb = <usize>ldx << 2;
  let r = 0;
  for (; r + 2 <= nr; r += 2) {
    const k0 = max(0, r + low), k1 = min(kmax, r + 1 + high);
    if (k0 >= k1) continue;
    const o0 = ptr(O, r * ldo), o1 = ptr(O, (r + 1) * ldo);
    const p0 = ptr(P, r * cr), p1 = ptr(P, (r + 1) * cr);
    let d = 0;
    for (; d + 16 <= D; d += 16) {
      let a0 = v128.load(ptr(o0, d)), a1 = v128.load(ptr(o0, d), 16), a2 = v128.load(ptr(o0, d), 32), a3 = v128.load(ptr(o0, d), 48);
      let b0 = v128.load(ptr(o1, d)), b1 = v128.load(ptr(o1, d), 16), b2 = v128.load(ptr(o1, d), 32), b3 = v128.load(ptr(o1, d), 48);
      let xp = ptr(X, k0 * ldx + d);
      let q0 = p0 + <usize>k0 * ckb, q1 = p1 + <usize>k0 * ckb;
      for (let k = k0; k < k1; k++) {
        const u = f32x4.splat(load<f32>(q0)), w = f32x4.splat(load<f32>(q1));
        const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
        a0 = madd(u, x0, a0); a1 = madd(u, x1, a1); a2 = madd(u, x2, a2); a3 = madd(u, x3, a3);
        b0 = madd(w, x0, b0); b1 = madd(w, x1, b1); b2 = madd(w, x2, b2); b3 = madd(w, x3, b3);
        xp += ldxb; q0 += ckb; q1 += ckb;
      }
      v128.store(ptr(o0, d), a0); v128.store(ptr(o0, d), a1, 16); v128.store(ptr(o0, d), a2, 32); v128.store(ptr(o0, d), a3, 48);
      v128.store(ptr(o1, d), b0); v128.store(ptr(o1, d), b1, 16); v128.store(ptr(o1, d), b2, 32); v128.store(ptr(o1, d), b3, 48);
    }
    for (; d + 4 <= D; d += 4) {
      let a0 = v128.load(ptr(o0, d)), b0 = v128.load(ptr(o1, d));
      let xp = ptr(X, k0 * ldx + d);
      let q0 = p0 + <usize>k0 * ckb, q1 = p1 + <usize>k0 * ckb;
      for (let k = k0; k < k1; k++) {
        const x0 = v128.load(xp);
        a0 = madd(f32x4.splat(load<f32>(q0)), x0, a0);
        b0 = madd(f32x4.splat(load<f32>(q1)), x0, b0);
        xp += ldxb; q0 += ckb; q1 += ckb;
      }
      v128.store(ptr(o0, d), a0); v128.store(ptr(o1, d), b0);
    }
    for (; d < D; d++) {
      let a: f32 = load<f32>(ptr(o0, d)), b: f32 = load<f32>(ptr(o1, d));
      for (let k = k0; k < k1; k++) {
        const x = load<f32>(ptr(X, k * ldx + d));
        a += load<f32>(p0 + <usize>k * ckb) * x;
        b += load<f32>(p1 + <usize>k * ckb) * x;
      }
      store<f32>(ptr(o0, d), a); store<f32>(ptr(o1, d), b);
    }
  }
  if (r < nr) {
    const k0 = max(0, r + low), k1 = min(kmax, r + high);
    if (k0 >= k1) return;
    const o0 = ptr(O, r * ldo);
    const p0 = ptr(P, r * cr);
    let d = 0;
    for (; d + 4 <= D; d += 4) {
      let a0 = v128.load(ptr(o0, d));
      let xp = ptr(X, k0 * ldx + d);
      let q0 = p0 + <usize>k0 * ckb;
      for (let k = k0; k < k1; k++) {
        a0 = madd(f32x4.splat(load<f32>(q0)), v128.load(xp), a0);
        xp += ldxb; q0 += ckb;
      }
      v128.store(ptr(o0, d), a0);
    }
    for (; d < D; d++) {
      let a: f32 = load<f32>(ptr(o0, d));
      for (let k = k0; k < k1; k++) a += load<f32>(p0 + <usize>k * ckb) * load<f32>(ptr(X, k * ldx + d));
      store<f32>(ptr(o0, d), a);
    }
  }
}

/** sum_d a[d] * b[d]. */
function dot(a: usize, b: usize, D: i32): f32 {
  let acc = f32x4.splat(0);
  let d = 0;
  for (; d + 4 <= D; d += 4) acc = madd(v128.load(ptr(a, d)), v128.load(ptr(b, d)), acc);
  let s = hsum(acc);
  for (; d < D; d++) s += load<f32>(ptr(a, d)) * load<f32>(ptr(b, d));
  return s;
}

/** Lanes j .. j+3 whose index is below n (all ones) or not (zeros). */
// @ts-ignore: decorator
@inline function laneMask(j: i32, n: i32): v128 {
  return i32x4.lt_s(i32x4.add(v128.load(TABLE), i32x4.splat(j)), i32x4.splat(n));
}

/** Forward for heads g0 .. g0+ng-1 (see the file comment); `scratch` holds attentionScratchFloats(D) floats. */
export function attentionCausalForward(out: usize, lse: usize, qkv: usize, g0: i32, ng: i32, T: i32, H: i32, D: i32,
  scale: f32, scratch: usize): void {
  const C = H * D, C3 = 3 * C;
  const Kt = scratch;
  const S = ptr(Kt, 2 * D * BK);
  const O = ptr(S, 2 * BQ * BK);
  const M = ptr(O, 2 * BK * D);
  const L = ptr(M, BQ);
  const ninf = v128.load(TABLE, 16);
  const vscale = f32x4.splat(scale);
  for (let g = g0; g < g0 + ng; g++) {
    const b = g / H, h = g % H;
    const qb = ptr(qkv, b * T * C3 + h * D), kb = ptr(qb, C), vb = ptr(qb, 2 * C);
    for (let i0 = 0; i0 < T; i0 += BQ) {
      const nq = min(BQ, T - i0);
      for (let i = 0; i < nq; i++) { store<f32>(ptr(M, i), <f32>-Infinity); store<f32>(ptr(L, i), 0); }
      memory.fill(O, 0, <usize>(nq * D) << 2);
      const jEnd = i0 + nq; // the block's last query sees keys < jEnd
      for (let j0 = 0; j0 < jEnd; j0 += BK) {
        const nk = min(BK, jEnd - j0);
        const ncols = (nk + 15) & ~15;
        packT(Kt, ptr(kb, j0 * C3), C3, nk, D, ncols);
        scores(S, ptr(qb, i0 * C3), C3, nq, Kt, D, ncols);
        for (let i = 0; i < nq; i++) {
          const nv = min(nk, i0 + i - j0 + 1); // keys j0 .. j0+nv-1 are visible to this query
          const srow = ptr(S, i * BK);
          if (nv <= 0) { memory.fill(srow, 0, <usize>ncols << 2); continue; }
          let vm = ninf;
          for (let c = 0; c < ncols; c += 4) vm = f32x4.max(vm, v128.bitselect(v128.load(ptr(srow, c)), ninf, laneMask(c, nv)));
          const mOld = load<f32>(ptr(M, i));
          const mNew = max(mOld, hmax(vm) * scale);
          const vmn = f32x4.splat(-mNew);
          let vs = f32x4.splat(0);
          for (let c = 0; c < ncols; c += 4) {
            const p = v128.and(vexp(madd(v128.load(ptr(srow, c)), vscale, vmn)), laneMask(c, nv));
            v128.store(ptr(srow, c), p);
            vs = f32x4.add(vs, p);
          }
          const corr = f32x4.extract_lane(vexp(f32x4.splat(mOld - mNew)), 0);
          store<f32>(ptr(L, i), load<f32>(ptr(L, i)) * corr + hsum(vs));
          store<f32>(ptr(M, i), mNew);
          if (corr != 1) {
            const orow = ptr(O, i * D);
            const vc = f32x4.splat(corr);
            let d = 0;
            for (; d + 4 <= D; d += 4) v128.store(ptr(orow, d), f32x4.mul(v128.load(ptr(orow, d)), vc));
            for (; d < D; d++) store<f32>(ptr(orow, d), load<f32>(ptr(orow, d)) * corr);
          }
        }
        // O[i] += sum_j P[i, j] V[j0 + j]: query i sees keys j < i0 + i - j0 + 1
        accRows(O, D, S, BK, 1, nq, ptr(vb, j0 * C3), C3, D, nk, -BK, i0 - j0 + 1);
      }
      for (let i = 0; i < nq; i++) {
        const t = i0 + i;
        const l = load<f32>(ptr(L, i));
        const inv: f32 = <f32>1 / l;
        const orow = ptr(O, i * D);
        const dst = ptr(out, (b * T + t) * C + h * D);
        const vi = f32x4.splat(inv);
        let d = 0;
        for (; d + 4 <= D; d += 4) v128.store(ptr(dst, d), f32x4.mul(v128.load(ptr(orow, d)), vi));
        for (; d < D; d++) store<f32>(ptr(dst, d), load<f32>(ptr(orow, d)) * inv);
        store<f32>(ptr(lse, g * T + t), load<f32>(ptr(M, i)) + Mathf.log(l));
      }
    }
  }
}

/** Backward for heads g0 .. g0+ng-1: writes their dq, dk, dv columns of dqkv. */
export function attentionCausalBackward(dqkv: usize, dout: usize, qkv: usize, out: usize, lse: usize, g0: i32, ng: i32,
  T: i32, H: i32, D: i32, scale: f32, scratch: usize): void {
  const C = H * D, C3 = 3 * C;
  const Kt = scratch;
  const Vt = ptr(Kt, D * BK);
  const S = ptr(Vt, D * BK);
  const dP = ptr(S, BQ * BK);
  const dK = ptr(dP, BQ * BK);
  const dV = ptr(dK, BK * D);
  const vscale = f32x4.splat(scale);
  for (let g = g0; g < g0 + ng; g++) {
    const b = g / H, h = g % H;
    const qb = ptr(qkv, b * T * C3 + h * D), kb = ptr(qb, C), vb = ptr(qb, 2 * C);
    const dqb = ptr(dqkv, b * T * C3 + h * D), dkb = ptr(dqb, C), dvb = ptr(dqb, 2 * C);
    const dob = ptr(dout, b * T * C + h * D), ob = ptr(out, b * T * C + h * D);
    for (let t = 0; t < T; t++) memory.fill(ptr(dqb, t * C3), 0, <usize>D << 2);
    for (let j0 = 0; j0 < T; j0 += BK) {
      const nk = min(BK, T - j0);
      const ncols = (nk + 15) & ~15;
      packT(Kt, ptr(kb, j0 * C3), C3, nk, D, ncols);
      packT(Vt, ptr(vb, j0 * C3), C3, nk, D, ncols);
      memory.fill(dK, 0, <usize>(nk * D) << 2);
      memory.fill(dV, 0, <usize>(nk * D) << 2);
      for (let i0 = j0; i0 < T; i0 += BQ) {
        const nq = min(BQ, T - i0);
        const nke = min(nk, i0 + nq - j0); // keys after the block's last query take no part
        const nce = (nke + 15) & ~15;
        scores(S, ptr(qb, i0 * C3), C3, nq, Kt, D, nce);
        scores(dP, ptr(dob, i0 * C), C, nq, Vt, D, nce);
        for (let i = 0; i < nq; i++) {
          const t = i0 + i;
          const nv = min(nke, t - j0 + 1);
          const delta = dot(ptr(dob, t * C), ptr(ob, t * C), D);
          const vl = f32x4.splat(-load<f32>(ptr(lse, g * T + t)));
          const vd = f32x4.splat(delta);
          const srow = ptr(S, i * BK), drow = ptr(dP, i * BK);
          for (let c = 0; c < nce; c += 4) {
            const p = v128.and(vexp(madd(v128.load(ptr(srow, c)), vscale, vl)), laneMask(c, nv));
            v128.store(ptr(srow, c), p);
            v128.store(ptr(drow, c), f32x4.mul(f32x4.mul(p, f32x4.sub(v128.load(ptr(drow, c)), vd)), vscale));
          }
        }
        // key j sees queries i >= j + j0 - i0
        accRows(dV, D, S, 1, BK, nke, ptr(dob, i0 * C), C, D, nq, j0 - i0, BQ + 1);
        accRows(dK, D, dP, 1, BK, nke, ptr(qb, i0 * C3), C3, D, nq, j0 - i0, BQ + 1);
        // query i sees keys j < i0 + i - j0 + 1
        accRows(ptr(dqb, i0 * C3), C3, dP, BK, 1, nq, ptr(kb, j0 * C3), C3, D, nke, -BK, i0 - j0 + 1);
      }
      for (let j = 0; j < nk; j++) {
        memory.copy(ptr(dkb, (j0 + j) * C3), ptr(dK, j * D), <usize>D << 2);
        memory.copy(ptr(dvb, (j0 + j) * C3), ptr(dV, j * D), <usize>D << 2);
      }
    }
  }
}
