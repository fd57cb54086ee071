/*
 * The fused attention's tile primitives, included once per instruction set by attention.c with
 * NAME(x) giving each copy its own names and a `#pragma GCC target` around the include, so that
 * every helper in a copy is compiled (and inlined) for that copy's instructions.
 */

static inline v16 NAME(vload)(const float *p) {
  v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void NAME(vstore)(float *p, v16 v) { memcpy(p, &v, sizeof v); }
/* a scalar broadcast: GCC widens the scalar operand of a vector operation (x - 0 folds away). The
 * helpers are always_inline: GCC does not inline a plain function into a target_clones variant
 * (another -march), and called out of line they would run in generic lane-by-lane code. */
static inline v16 NAME(vsplat)(float x) { return x - (v16){0}; }
static inline v16 NAME(vsel)(i16 mask, v16 a, v16 b) { return (v16)((mask & (i16)a) | (~mask & (i16)b)); }

/* e^x on 16 lanes: the wasm kernels' Cephes-style polynomial (assembly/simd.ts), flushed to 0 below -60. */
static inline v16 NAME(vexp)(v16 x0) {
  v16 x = NAME(vsel)(x0 < NAME(vsplat)(-87.3365478515625f), NAME(vsplat)(-87.3365478515625f), x0);
  x = NAME(vsel)(x > NAME(vsplat)(88.3762626647949f), NAME(vsplat)(88.3762626647949f), x);
  v16 t = x * NAME(vsplat)(1.44269504088896341f) + NAME(vsplat)(12582912.0f);
  v16 n = t - NAME(vsplat)(12582912.0f);
  v16 r = x - n * NAME(vsplat)(0.693359375f);
  r = r - n * NAME(vsplat)(-2.12194440e-4f);
  v16 p = NAME(vsplat)(1.9875691500e-4f) * r + NAME(vsplat)(1.3981999507e-3f);
  p = p * r + NAME(vsplat)(8.3334519073e-3f);
  p = p * r + NAME(vsplat)(4.1665795894e-2f);
  p = p * r + NAME(vsplat)(1.6666665459e-1f);
  p = p * r + NAME(vsplat)(5.0000001201e-1f);
  p = p * (r * r) + (r + NAME(vsplat)(1.0f));
  v16 y = (v16)((i16)p + ((i16)t << 23));
  return NAME(vsel)(x0 < NAME(vsplat)(-60.0f), NAME(vsplat)(0.0f), y);
}

static inline float NAME(hsum)(v16 v) {
  float s = 0;
  for (int i = 0; i < 16; i++) s += v[i];
  return s;
}

/* lanes c .. c+15 below n: all ones, else 0 */
static inline i16 NAME(lane_mask)(int c, int n) {
  i16 idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  i16 lim = {n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c, n - c};
  return idx < lim;
}

/* dst[d*BK + j] = src[j*ld + d] for j < n, 0 for n <= j < ncols. */
static void NAME(pack_t)(float *dst, const float *src, int64_t ld, int n, int D, int ncols) {
  for (int j = 0; j < ncols; j++) {
    if (j < n) {
      const float *s = src + j * ld;
      for (int d = 0; d < D; d++) dst[d * BK + j] = s[d];
    } else {
      for (int d = 0; d < D; d++) dst[d * BK + j] = 0;
    }
  }
}

/* S[i, 0..ncols) = A[i, :] . Kt[:, 0..ncols) for i < nq (ncols a multiple of 16). */
static void NAME(scores)(float *S, const float *A, int64_t lda, int nq, const float *Kt, int D, int ncols) {
  int i = 0;
  for (; i + 2 <= nq; i += 2) {
    const float *a0 = A + i * lda, *a1 = a0 + lda;
    int c = 0;
    for (; c + 32 <= ncols; c += 32) {
      v16 x0 = NAME(vsplat)(0), x1 = x0, y0 = x0, y1 = x0;
      for (int d = 0; d < D; d++) {
        v16 k0 = NAME(vload)(Kt + d * BK + c), k1 = NAME(vload)(Kt + d * BK + c + 16);
        v16 u = NAME(vsplat)(a0[d]), w = NAME(vsplat)(a1[d]);
        x0 += u * k0; x1 += u * k1; y0 += w * k0; y1 += w * k1;
      }
      NAME(vstore)(S + i * BK + c, x0); NAME(vstore)(S + i * BK + c + 16, x1);
      NAME(vstore)(S + (i + 1) * BK + c, y0); NAME(vstore)(S + (i + 1) * BK + c + 16, y1);
    }
    for (; c < ncols; c += 16) {
      v16 x0 = NAME(vsplat)(0), y0 = x0;
      for (int d = 0; d < D; d++) {
        v16 k0 = NAME(vload)(Kt + d * BK + c);
        x0 += NAME(vsplat)(a0[d]) * k0; y0 += NAME(vsplat)(a1[d]) * k0;
      }
      NAME(vstore)(S + i * BK + c, x0); NAME(vstore)(S + (i + 1) * BK + c, y0);
    }
  }
  if (i < nq) {
    const float *a0 = A + i * lda;
    for (int c = 0; c < ncols; c += 16) {
      v16 x0 = NAME(vsplat)(0);
      for (int d = 0; d < D; d++) x0 += NAME(vsplat)(a0[d]) * NAME(vload)(Kt + d * BK + c);
      NAME(vstore)(S + i * BK + c, x0);
    }
  }
}

/*
 * O[r, :D] += sum_k P[r*cr + k*ck] X[k, :D] for r < nr, k in [max(0, r+low), min(kmax, r+high));
 * rows in pairs over the union of their ranges (coefficients are 0 outside a row's own range).
 */
static void NAME(acc_rows)(float *O, int64_t ldo, const float *P, int cr, int ck, int nr, const float *X, int64_t ldx, int D,
                           int kmax, int low, int high) {
  int r = 0;
  for (; r + 2 <= nr; r += 2) {
    int k0 = r + low > 0 ? r + low : 0;
    int k1 = r + 1 + high < kmax ? r + 1 + high : kmax;
    if (k0 >= k1) continue;
    float *o0 = O + r * ldo, *o1 = o0 + ldo;
    const float *p0 = P + r * cr, *p1 = p0 + cr;
    int d = 0;
    for (; d + 32 <= D; d += 32) {
      v16 a0 = NAME(vload)(o0 + d), a1 = NAME(vload)(o0 + d + 16), b0 = NAME(vload)(o1 + d), b1 = NAME(vload)(o1 + d + 16);
      for (int k = k0; k < k1; k++) {
        v16 x0 = NAME(vload)(X + k * ldx + d), x1 = NAME(vload)(X + k * ldx + d + 16);
        v16 u = NAME(vsplat)(p0[k * ck]), w = NAME(vsplat)(p1[k * ck]);
        a0 += u * x0; a1 += u * x1; b0 += w * x0; b1 += w * x1;
      }
      NAME(vstore)(o0 + d, a0); NAME(vstore)(o0 + d + 16, a1); NAME(vstore)(o1 + d, b0); NAME(vstore)(o1 + d + 16, b1);
    }
    for (; d + 16 <= D; d += 16) {
      v16 a0 = NAME(vload)(o0 + d), b0 = NAME(vload)(o1 + d);
      for (int k = k0; k < k1; k++) {
        v16 x0 = NAME(vload)(X + k * ldx + d);
        a0 += NAME(vsplat)(p0[k * ck]) * x0; b0 += NAME(vsplat)(p1[k * ck]) * x0;
      }
      NAME(vstore)(o0 + d, a0); NAME(vstore)(o1 + d, b0);
    }
    for (; d < D; d++) {
      float a = o0[d], b = o1[d];
      for (int k = k0; k < k1; k++) {
        a += p0[k * ck] * X[k * ldx + d];
        b += p1[k * ck] * X[k * ldx + d];
      }
      o0[d] = a; o1[d] = b;
    }
  }
  if (r < nr) {
    int k0 = r + low > 0 ? r + low : 0;
    int k1 = r + high < kmax ? r + high : kmax;
    if (k0 >= k1) return;
    float *o0 = O + r * ldo;
    const float *p0 = P + r * cr;
    int d = 0;
    for (; d + 16 <= D; d += 16) {
      v16 a0 = NAME(vload)(o0 + d);
      for (int k = k0; k < k1; k++) a0 += NAME(vsplat)(p0[k * ck]) * NAME(vload)(X + k * ldx + d);
      NAME(vstore)(o0 + d, a0);
    }
    for (; d < D; d++) {
      float a = o0[d];
      for (int k = k0; k < k1; k++) a += p0[k * ck] * X[k * ldx + d];
      o0[d] = a;
    }
  }
}

/* Probabilities of one forward tile row (online softmax step); returns the new running max. */
static void NAME(softmax_rows)(float *S, int nq, int i0, int j0, int nk, int ncols, float scale, float *M, float *L, float *O, int D) {
  for (int i = 0; i < nq; i++) {
    int nv = i0 + i - j0 + 1;
    if (nv > nk) nv = nk;
    float *srow = S + i * BK;
    if (nv <= 0) {
      memset(srow, 0, sizeof(float) * ncols);
      continue;
    }
    float mx = -INFINITY;
    for (int j = 0; j < nv; j++) mx = srow[j] > mx ? srow[j] : mx;
    float m_old = M[i];
    float m_new = mx * scale > m_old ? mx * scale : m_old;
    v16 vs = NAME(vsplat)(0);
    for (int c = 0; c < ncols; c += 16) {
      v16 p = NAME(vexp)(NAME(vload)(srow + c) * NAME(vsplat)(scale) - NAME(vsplat)(m_new));
      p = (v16)((i16)p & NAME(lane_mask)(c, nv));
      NAME(vstore)(srow + c, p);
      vs += p;
    }
    float corr = NAME(vexp)(NAME(vsplat)(m_old - m_new))[0];
    L[i] = L[i] * corr + NAME(hsum)(vs);
    M[i] = m_new;
    if (corr != 1.0f) {
      float *orow = O + i * D;
      for (int d = 0; d < D; d++) orow[d] *= corr;
    }
  }
}

/* Backward tile rows: S becomes P, dP becomes dS (scaled). */
static void NAME(grad_rows)(float *S, float *dP, int nq, int i0, int j0, int nke, int nce, float scale, const float *lse_row,
                            const float *dob, const float *ob, int64_t C, int D) {
  for (int i = 0; i < nq; i++) {
    int t = i0 + i;
    int nv = t - j0 + 1;
    if (nv > nke) nv = nke;
    float delta = 0;
    const float *dy = dob + t * C, *o = ob + t * C;
    for (int d = 0; d < D; d++) delta += dy[d] * o[d];
    v16 vl = NAME(vsplat)(lse_row[t]), vd = NAME(vsplat)(delta), vsc = NAME(vsplat)(scale);
    float *srow = S + i * BK, *drow = dP + i * BK;
    for (int c = 0; c < nce; c += 16) {
      v16 p = NAME(vexp)(NAME(vload)(srow + c) * vsc - vl);
      p = (v16)((i16)p & NAME(lane_mask)(c, nv));
      NAME(vstore)(srow + c, p);
      NAME(vstore)(drow + c, p * (NAME(vload)(drow + c) - vd) * vsc);
    }
  }
}

