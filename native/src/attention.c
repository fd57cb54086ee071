/*
 * Fused causal attention (flash-style) for the native backend: the same algorithm as the wasm
 * kernel (assembly/attention.ts; Kernels.attentionCausalForward/Backward in
 * src/kernels/types.ts is the contract), written with GCC vector extensions so the compiler
 * emits AVX-512, AVX2 or SSE code; on x86-64 Linux with GCC each hot function is compiled for
 * all three (attention_impl.h included under three `#pragma GCC target`s) and the widest
 * the CPU has is picked per call. Heads are split over the
 * addon's thread pool (pool.c); each share mallocs its own tile scratch once per call.
 *
 * Per head, forward: for each block of BQ queries, walk key tiles of BK up to the block's last
 * query: scores S = Q K^T (K packed transposed), a running row max and sum (online softmax),
 * O = O * corr + P V; write O / l and lse = m + log(l). Backward: for each key tile, walk the
 * query blocks at or after it: recompute P = exp(scale S - lse), dP = dO V^T,
 * dS = scale P (dP - delta) with delta = dO . O per row; dV += P^T dO, dK += dS^T Q in tile
 * scratch, dQ += dS K in place.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "pool.h"

#define BQ 32
#define BK 64

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));

/* One instruction set's copy of the tile primitives. */
typedef struct {
  void (*pack_t)(float *dst, const float *src, int64_t ld, int n, int D, int ncols);
  void (*scores)(float *S, const float *A, int64_t lda, int nq, const float *Kt, int D, int ncols);
  void (*acc_rows)(float *O, int64_t ldo, const float *P, int cr, int ck, int nr, const float *X, int64_t ldx, int D, int kmax,
                   int low, int high);
  void (*softmax_rows)(float *S, int nq, int i0, int j0, int nk, int ncols, float scale, float *M, float *L, float *O, int D);
  void (*grad_rows)(float *S, float *dP, int nq, int i0, int j0, int nke, int nce, float scale, const float *lse_row,
                    const float *dob, const float *ob, int64_t C, int D);
} attn_isa;

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define NAME(x) CAT(x, SUFFIX)
#define ISA_TABLE(s) {CAT(pack_t, s), CAT(scores, s), CAT(acc_rows, s), CAT(softmax_rows, s), CAT(grad_rows, s)}

#define SUFFIX _base
#include "attention_impl.h"
#undef SUFFIX
static const attn_isa isa_base = ISA_TABLE(_base);

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SUFFIX _avx2
#include "attention_impl.h"
#undef SUFFIX
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define SUFFIX _avx512
#include "attention_impl.h"
#undef SUFFIX
#pragma GCC pop_options
static const attn_isa isa_avx2 = ISA_TABLE(_avx2);
static const attn_isa isa_avx512 = ISA_TABLE(_avx512);

/* The widest copy this CPU runs (cpuid, read once by the compiler's runtime). */
static const attn_isa *pick_isa(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return &isa_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &isa_avx2;
  return &isa_base;
}
#else
static const attn_isa *pick_isa(void) { return &isa_base; }
#endif

typedef struct {
  float *out, *lse, *dqkv;
  const float *qkv, *dout, *fout, *flse;
  int B, T, H, D;
  float scale;
  int heads;
  int failed;
  const attn_isa *isa;
} attn_job;

static void forward_heads(attn_job *j, int g0, int g1) {
  const attn_isa *f = j->isa;
  const int T = j->T, H = j->H, D = j->D;
  const int64_t C = (int64_t)H * D, C3 = 3 * C;
  float *buf = malloc(sizeof(float) * ((size_t)D * BK + (size_t)BQ * BK + (size_t)BQ * D + 2 * BQ));
  if (!buf) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  float *Kt = buf, *S = Kt + D * BK, *O = S + BQ * BK, *M = O + BQ * D, *L = M + BQ;
  for (int g = g0; g < g1; g++) {
    const int b = g / H, h = g % H;
    const float *qb = j->qkv + (int64_t)b * T * C3 + (int64_t)h * D, *kb = qb + C, *vb = qb + 2 * C;
    for (int i0 = 0; i0 < T; i0 += BQ) {
      const int nq = T - i0 < BQ ? T - i0 : BQ;
      for (int i = 0; i < nq; i++) { M[i] = -INFINITY; L[i] = 0; }
      memset(O, 0, sizeof(float) * nq * D);
      const int jend = i0 + nq;
      for (int j0 = 0; j0 < jend; j0 += BK) {
        const int nk = jend - j0 < BK ? jend - j0 : BK;
        const int ncols = (nk + 15) & ~15;
        f->pack_t(Kt, kb + j0 * C3, C3, nk, D, ncols);
        f->scores(S, qb + i0 * C3, C3, nq, Kt, D, ncols);
        f->softmax_rows(S, nq, i0, j0, nk, ncols, j->scale, M, L, O, D);
        f->acc_rows(O, D, S, BK, 1, nq, vb + j0 * C3, C3, D, nk, -BK, i0 - j0 + 1);
      }
      for (int i = 0; i < nq; i++) {
        const int t = i0 + i;
        const float inv = 1.0f / L[i];
        float *dst = j->out + ((int64_t)b * T + t) * C + (int64_t)h * D;
        for (int d = 0; d < D; d++) dst[d] = O[i * D + d] * inv;
        j->lse[(int64_t)g * T + t] = M[i] + logf(L[i]);
      }
    }
  }
  free(buf);
}

static void backward_heads(attn_job *j, int g0, int g1) {
  const attn_isa *f = j->isa;
  const int T = j->T, H = j->H, D = j->D;
  const int64_t C = (int64_t)H * D, C3 = 3 * C;
  float *buf = malloc(sizeof(float) * (4 * (size_t)D * BK + 2 * (size_t)BQ * BK));
  if (!buf) {
    __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  float *Kt = buf, *Vt = Kt + D * BK, *S = Vt + D * BK, *dP = S + BQ * BK, *dK = dP + BQ * BK, *dV = dK + BK * D;
  for (int g = g0; g < g1; g++) {
    const int b = g / H, h = g % H;
    const float *qb = j->qkv + (int64_t)b * T * C3 + (int64_t)h * D, *kb = qb + C, *vb = qb + 2 * C;
    float *dqb = j->dqkv + (int64_t)b * T * C3 + (int64_t)h * D, *dkb = dqb + C, *dvb = dqb + 2 * C;
    const float *dob = j->dout + (int64_t)b * T * C + (int64_t)h * D, *ob = j->fout + (int64_t)b * T * C + (int64_t)h * D;
    const float *lse_row = j->flse + (int64_t)g * T;
    for (int t = 0; t < T; t++) memset(dqb + t * C3, 0, sizeof(float) * D);
    for (int j0 = 0; j0 < T; j0 += BK) {
      const int nk = T - j0 < BK ? T - j0 : BK;
      const int ncols = (nk + 15) & ~15;
      f->pack_t(Kt, kb + j0 * C3, C3, nk, D, ncols);
      f->pack_t(Vt, vb + j0 * C3, C3, nk, D, ncols);
      memset(dK, 0, sizeof(float) * nk * D);
      memset(dV, 0, sizeof(float) * nk * D);
      for (int i0 = j0; i0 < T; i0 += BQ) {
        const int nq = T - i0 < BQ ? T - i0 : BQ;
        const int nke = nk < i0 + nq - j0 ? nk : i0 + nq - j0;
        const int nce = (nke + 15) & ~15;
        f->scores(S, qb + i0 * C3, C3, nq, Kt, D, nce);
        f->scores(dP, dob + i0 * C, C, nq, Vt, D, nce);
        f->grad_rows(S, dP, nq, i0, j0, nke, nce, j->scale, lse_row, dob, ob, C, D);
        f->acc_rows(dV, D, S, 1, BK, nke, dob + i0 * C, C, D, nq, j0 - i0, BQ + 1);
        f->acc_rows(dK, D, dP, 1, BK, nke, qb + i0 * C3, C3, D, nq, j0 - i0, BQ + 1);
        f->acc_rows(dqb + i0 * C3, C3, dP, BK, 1, nq, kb + j0 * C3, C3, D, nke, -BK, i0 - j0 + 1);
      }
      for (int jj = 0; jj < nk; jj++) {
        memcpy(dkb + (j0 + jj) * C3, dK + jj * D, sizeof(float) * D);
        memcpy(dvb + (j0 + jj) * C3, dV + jj * D, sizeof(float) * D);
      }
    }
  }
  free(buf);
}

static void forward_part(void *ctx, int part, int nparts) {
  attn_job *j = ctx;
  forward_heads(j, (int)((int64_t)j->heads * part / nparts), (int)((int64_t)j->heads * (part + 1) / nparts));
}

static void backward_part(void *ctx, int part, int nparts) {
  attn_job *j = ctx;
  backward_heads(j, (int)((int64_t)j->heads * part / nparts), (int)((int64_t)j->heads * (part + 1) / nparts));
}

/* Threads for B*H heads of T x T x D: one when the whole call is below ~10 us of work. */
static int parts_for(int heads, int T, int D) {
  int n = pool_size();
  if ((int64_t)heads * T * T * D < (1 << 20)) n = 1;
  return n < heads ? n : heads;
}

int attention_causal_forward(float *out, float *lse, const float *qkv, int B, int T, int H, int D, float scale) {
  attn_job j = {.out = out, .lse = lse, .qkv = qkv, .B = B, .T = T, .H = H, .D = D, .scale = scale, .heads = B * H, .isa = pick_isa()};
  int n = parts_for(j.heads, T, D);
  if (n <= 1) forward_heads(&j, 0, j.heads);
  else pool_run(n, forward_part, &j);
  return j.failed ? -1 : 0;
}

int attention_causal_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse, int B, int T,
                              int H, int D, float scale) {
  attn_job j = {.dqkv = dqkv, .dout = dout, .qkv = qkv, .fout = out, .flse = lse, .B = B, .T = T, .H = H, .D = D,
                .scale = scale, .heads = B * H, .isa = pick_isa()};
  int n = parts_for(j.heads, T, D);
  if (n <= 1) backward_heads(&j, 0, j.heads);
  else pool_run(n, backward_part, &j);
  return j.failed ? -1 : 0;
}
