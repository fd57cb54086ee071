/*
 * pocketlm native BLAS addon: row-major single-precision matrix products through any
 * CBLAS (OpenBLAS preferred), on Float32Array views into the shared wasm memory.
 *
 * Plain N-API (no node-addon-api) so it builds with just a C compiler and Node's headers.
 * The calls are synchronous on the calling thread: the arrays are views into one
 * SharedArrayBuffer that the wasm kernels also use, so no data is ever copied.
 *
 * Every call checks its arguments fully (types, sizes, and that each matrix fits in its
 * view): an out-of-bounds BLAS call would silently corrupt the arena. The checks are a
 * few integer comparisons next to ~0.25 us of N-API argument unpacking (mostly the three
 * napi_get_typedarray_info calls, ~50 ns each).
 *
 * Threads: OpenBLAS is kept at one thread and each call is split over the addon's own
 * fork-join pool (pool.c), which scales better on the model's small shapes.
 */
#define _GNU_SOURCE /* dladdr */
#define NAPI_VERSION 8
#include <node_api.h>

#include <cblas.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "attention.h"
#include "pool.h"

/* OpenBLAS extensions, looked up at run time so any CBLAS links. */
typedef void (*set_threads_fn)(int);
typedef char *(*get_config_fn)(void);
typedef char *(*get_corename_fn)(void);

static set_threads_fn p_set_threads = NULL;
static get_config_fn p_get_config = NULL;
static get_corename_fn p_get_corename = NULL;

#define MAX_ARGS 17

/* Throws a TypeError/RangeError and returns NULL from the calling napi_callback. */
#define THROW_TYPE(env, msg)             \
  do {                                   \
    napi_throw_type_error(env, NULL, msg); \
    return NULL;                         \
  } while (0)
#define THROW_RANGE(env, msg)             \
  do {                                    \
    napi_throw_range_error(env, NULL, msg); \
    return NULL;                          \
  } while (0)

typedef struct {
  float *data;
  size_t length; /* elements */
} f32view;

/* Returns 0 on success; on failure throws (a clear message naming the argument) and returns -1. */
static int get_f32(napi_env env, napi_value v, const char *name, f32view *out) {
  napi_typedarray_type type;
  size_t length, byte_offset;
  void *data;
  napi_value ab;
  char msg[160];
  /* Fails with napi_invalid_arg for anything that is not a typed array (one call, not two). */
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &byte_offset) != napi_ok) {
    snprintf(msg, sizeof msg, "native sgemm: %s must be a Float32Array", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  if (type != napi_float32_array) {
    snprintf(msg, sizeof msg,
             "native sgemm: %s must be a Float32Array (the native backend is float32 only; "
             "use --backend js for float64)",
             name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  /* N-API's data pointer already includes byte_offset. */
  out->data = (float *)data;
  out->length = length;
  return 0;
}

static int get_int(napi_env env, napi_value v, const char *name, int64_t *out) {
  char msg[120];
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    snprintf(msg, sizeof msg, "native sgemm: %s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  if (*out < 0 || *out > INT32_MAX) {
    snprintf(msg, sizeof msg, "native sgemm: %s = %lld is out of range", name, (long long)*out);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

static int get_bool(napi_env env, napi_value v, const char *name, bool *out) {
  char msg[120];
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    snprintf(msg, sizeof msg, "native sgemm: %s must be a boolean", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

static int get_double(napi_env env, napi_value v, const char *name, double *out) {
  char msg[120];
  if (napi_get_value_double(env, v, out) != napi_ok) {
    snprintf(msg, sizeof msg, "native sgemm: %s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/*
 * Elements a rows x cols row-major matrix with leading dimension ld spans, checked to be
 * a valid layout (ld >= cols). Returns -1 (and throws) when ld is too small.
 */
static int64_t extent(napi_env env, const char *name, int64_t rows, int64_t cols, int64_t ld) {
  char msg[160];
  int64_t minld = cols > 1 ? cols : 1;
  if (ld < minld) {
    snprintf(msg, sizeof msg, "native sgemm: ld%s = %lld is smaller than the row length %lld", name,
             (long long)ld, (long long)minld);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  if (rows == 0 || cols == 0) return 0;
  return (rows - 1) * ld + cols;
}

/* Checks that `batch` matrices spanning `ext` elements each, `stride` apart, fit in the view. */
static int fits(napi_env env, const char *name, const f32view *v, int64_t ext, int64_t stride, int64_t batch) {
  char msg[200];
  if (ext == 0 || batch == 0) return 0;
  int64_t need = (batch - 1) * stride + ext;
  if (need > (int64_t)v->length) {
    snprintf(msg, sizeof msg, "native sgemm: %s needs %lld elements but its view has %llu", name,
             (long long)need, (unsigned long long)v->length);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

typedef struct {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc, sa, sb, sc, batch;
  double alpha, beta;
  f32view A, B, C;
} gemm_args;

/* Unpacks and validates; `batched` selects the 17-argument strided form. Returns 0 or -1 (thrown). */
static int unpack(napi_env env, napi_callback_info info, bool batched, gemm_args *g) {
  size_t argc = MAX_ARGS;
  napi_value a[MAX_ARGS];
  size_t want = batched ? 17 : 13;
  char msg[120];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return -1;
  if (argc != want) {
    snprintf(msg, sizeof msg, "native %s: expected %zu arguments, got %zu",
             batched ? "sgemmStridedBatched" : "sgemm", want, argc);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  /* Argument order mirrors Kernels.gemm / gemmStridedBatched. */
  size_t i = 0;
  if (get_bool(env, a[i++], "transA", &g->ta) || get_bool(env, a[i++], "transB", &g->tb)) return -1;
  if (get_int(env, a[i++], "M", &g->M) || get_int(env, a[i++], "N", &g->N) || get_int(env, a[i++], "K", &g->K))
    return -1;
  if (get_double(env, a[i++], "alpha", &g->alpha)) return -1;
  if (get_f32(env, a[i++], "A", &g->A) || get_int(env, a[i++], "lda", &g->lda)) return -1;
  g->sa = 0;
  if (batched && get_int(env, a[i++], "strideA", &g->sa)) return -1;
  if (get_f32(env, a[i++], "B", &g->B) || get_int(env, a[i++], "ldb", &g->ldb)) return -1;
  g->sb = 0;
  if (batched && get_int(env, a[i++], "strideB", &g->sb)) return -1;
  if (get_double(env, a[i++], "beta", &g->beta)) return -1;
  if (get_f32(env, a[i++], "C", &g->C) || get_int(env, a[i++], "ldc", &g->ldc)) return -1;
  g->sc = 0;
  g->batch = 1;
  if (batched && (get_int(env, a[i++], "strideC", &g->sc) || get_int(env, a[i++], "batch", &g->batch))) return -1;

  /* op(A) is M x K: stored K x M when transposed. */
  int64_t ea = g->ta ? extent(env, "a", g->K, g->M, g->lda) : extent(env, "a", g->M, g->K, g->lda);
  if (ea < 0) return -1;
  int64_t eb = g->tb ? extent(env, "b", g->N, g->K, g->ldb) : extent(env, "b", g->K, g->N, g->ldb);
  if (eb < 0) return -1;
  int64_t ec = extent(env, "c", g->M, g->N, g->ldc);
  if (ec < 0) return -1;
  if (g->M == 0 || g->N == 0) return 0; /* nothing to write */
  if (g->K == 0) ea = eb = 0;           /* A and B are not read */
  if (fits(env, "A", &g->A, ea, g->sa, g->batch) || fits(env, "B", &g->B, eb, g->sb, g->batch) ||
      fits(env, "C", &g->C, ec, g->sc, g->batch))
    return -1;
  return 0;
}

/* Products b in [lo, hi) of a (batched) call, on the calling thread. */
static void run_range(const gemm_args *g, int64_t lo, int64_t hi) {
  enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = g->tb ? CblasTrans : CblasNoTrans;
  for (int64_t b = lo; b < hi; b++) {
    cblas_sgemm(CblasRowMajor, ta, tb, (int)g->M, (int)g->N, (int)g->K, (float)g->alpha,
                g->A.data + b * g->sa, (int)g->lda, g->B.data + b * g->sb, (int)g->ldb, (float)g->beta,
                g->C.data + b * g->sc, (int)g->ldc);
  }
}

/* How one call is divided between the pool's threads. */
enum split_kind { SPLIT_BATCH, SPLIT_ROWS, SPLIT_COLS };

typedef struct {
  const gemm_args *g;
  enum split_kind kind;
  int64_t item; /* the product being split (rows/cols) */
} gemm_job;

/* Below this many multiply-adds (~10 us on one core) a hand-off costs more than it saves. */
#define SPLIT_MIN_MACS (1 << 20)
/* Row/column shares are multiples of this (whole register tiles, 64-byte aligned columns). */
#define SPLIT_ALIGN 16

static void gemm_part(void *ctx, int part, int nparts) {
  const gemm_job *j = (const gemm_job *)ctx;
  const gemm_args *g = j->g;
  if (j->kind == SPLIT_BATCH) {
    run_range(g, g->batch * part / nparts, g->batch * (part + 1) / nparts);
    return;
  }
  int64_t len = j->kind == SPLIT_ROWS ? g->M : g->N;
  int64_t chunk = (len + nparts - 1) / nparts;
  chunk = (chunk + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
  int64_t lo = chunk * part, hi = lo + chunk;
  if (hi > len) hi = len;
  if (lo >= hi) return;
  const float *A = g->A.data + j->item * g->sa;
  const float *B = g->B.data + j->item * g->sb;
  float *C = g->C.data + j->item * g->sc;
  int64_t M = g->M, N = g->N;
  if (j->kind == SPLIT_ROWS) {
    /* rows lo..hi of op(A) and of C */
    A += g->ta ? lo : lo * g->lda;
    C += lo * g->ldc;
    M = hi - lo;
  } else {
    /* columns lo..hi of op(B) and of C */
    B += g->tb ? lo * g->ldb : lo;
    C += lo;
    N = hi - lo;
  }
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)g->K, (float)g->alpha, A, (int)g->lda, B, (int)g->ldb, (float)g->beta, C, (int)g->ldc);
}

/* Whether batched calls are split by batch items (setBatchSplit; on by default). */
static int batch_split = 1;

static void run(const gemm_args *g) {
  if (g->M == 0 || g->N == 0 || g->batch == 0) return;
  if (g->K == 0) {
    /* BLAS implementations differ on K = 0; the contract says C = beta*C (C not read if beta = 0). */
    for (int64_t b = 0; b < g->batch; b++) {
      float *c = g->C.data + b * g->sc;
      for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) c[i * g->ldc + j] = g->beta == 0 ? 0.0f : (float)(g->beta * c[i * g->ldc + j]);
    }
    return;
  }
  int n = pool_size();
  if (n < 2) {
    run_range(g, 0, g->batch);
    return;
  }
  /* Whole products per thread when the batch shares out evenly (attention heads). */
  if (batch_split && g->batch >= 2 && (g->batch % n == 0 || g->batch >= 4 * n)) {
    gemm_job j = {g, SPLIT_BATCH, 0};
    pool_run(n, gemm_part, &j);
    return;
  }
  /* Otherwise each product's rows (or columns, when there are more of them) are shared. */
  for (int64_t b = 0; b < g->batch; b++) {
    if (g->M * g->N * g->K < SPLIT_MIN_MACS) {
      run_range(g, b, b + 1);
      continue;
    }
    gemm_job j = {g, g->M >= g->N ? SPLIT_ROWS : SPLIT_COLS, b};
    pool_run(n, gemm_part, &j);
  }
}

static napi_value Sgemm(napi_env env, napi_callback_info info) {
  gemm_args g;
  if (unpack(env, info, false, &g)) return NULL;
  run(&g);
  return NULL;
}

static napi_value SgemmStridedBatched(napi_env env, napi_callback_info info) {
  gemm_args g;
  if (unpack(env, info, true, &g)) return NULL;
  run(&g);
  return NULL;
}


/* Unpacks count Float32Array views named in names and needing need[i] elements each; -1 on a throw. */
static int get_views(napi_env env, napi_value *a, int count, const char *const *names, const int64_t *need, f32view *v) {
  char msg[200];
  for (int i = 0; i < count; i++) {
    if (get_f32(env, a[i], names[i], &v[i])) return -1;
    if ((int64_t)v[i].length < need[i]) {
      snprintf(msg, sizeof msg, "native attention: %s has %llu elements, needs %lld", names[i], (unsigned long long)v[i].length,
               (long long)need[i]);
      napi_throw_range_error(env, NULL, msg);
      return -1;
    }
  }
  return 0;
}

/* Reads B, T, H, D (non-negative ints) and scale from a[0..4]. */
static int get_dims(napi_env env, napi_value *a, int64_t *dims, double *scale) {
  static const char *const names[4] = {"B", "T", "H", "D"};
  for (int i = 0; i < 4; i++)
    if (get_int(env, a[i], names[i], &dims[i])) return -1;
  if (dims[0] * dims[1] * dims[2] * dims[3] * 3 > INT32_MAX) {
    napi_throw_range_error(env, NULL, "native attention: B*T*3*H*D is beyond 2^31 elements");
    return -1;
  }
  return get_double(env, a[4], "scale", scale);
}

/* attentionForward(out, lse, qkv, B, T, H, D, scale): Kernels.attentionCausalForward. */
static napi_value AttentionForward(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value a[8];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc != 8) THROW_TYPE(env, "native attentionForward: expected 8 arguments");
  int64_t d[4];
  double scale;
  if (get_dims(env, a + 3, d, &scale)) return NULL;
  if (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[3] == 0) return NULL;
  const int64_t N = d[0] * d[1], C = d[2] * d[3];
  static const char *const names[3] = {"out", "lse", "qkv"};
  const int64_t need[3] = {N * C, d[0] * d[2] * d[1], N * 3 * C};
  f32view v[3];
  if (get_views(env, a, 3, names, need, v)) return NULL;
  if (attention_causal_forward(v[0].data, v[1].data, v[2].data, (int)d[0], (int)d[1], (int)d[2], (int)d[3], (float)scale))
    THROW_RANGE(env, "native attentionForward: out of memory for the tile scratch");
  return NULL;
}

/* attentionBackward(dqkv, dout, qkv, out, lse, B, T, H, D, scale): Kernels.attentionCausalBackward. */
static napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value a[10];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc != 10) THROW_TYPE(env, "native attentionBackward: expected 10 arguments");
  int64_t d[4];
  double scale;
  if (get_dims(env, a + 5, d, &scale)) return NULL;
  if (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[3] == 0) return NULL;
  const int64_t N = d[0] * d[1], C = d[2] * d[3];
  static const char *const names[5] = {"dqkv", "dout", "qkv", "out", "lse"};
  const int64_t need[5] = {N * 3 * C, N * C, N * 3 * C, N * C, d[0] * d[2] * d[1]};
  f32view v[5];
  if (get_views(env, a, 5, names, need, v)) return NULL;
  if (attention_causal_backward(v[0].data, v[1].data, v[2].data, v[3].data, v[4].data, (int)d[0], (int)d[1], (int)d[2], (int)d[3],
                                (float)scale))
    THROW_RANGE(env, "native attentionBackward: out of memory for the tile scratch");
  return NULL;
}

/*
 * Threads for the following products. With OpenBLAS, OpenBLAS itself is kept at one thread
 * and the addon's pool splits each call (see pool.c); another CBLAS threads itself (or not),
 * so the count is ignored there.
 */
static napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  int32_t n;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc != 1 || napi_get_value_int32(env, a[0], &n) != napi_ok) THROW_TYPE(env, "native setThreads: expected one number");
  if (n < 1 || n > 1024) THROW_RANGE(env, "native setThreads: thread count must be between 1 and 1024");
  if (p_set_threads) pool_set_size(n);
  return NULL;
}

static napi_value SetBatchSplit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  bool on;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc != 1 || napi_get_value_bool(env, a[0], &on) != napi_ok) THROW_TYPE(env, "native setBatchSplit: expected one boolean");
  batch_split = on;
  return NULL;
}

/* The pool's idle workers sleep now instead of spinning: a long non-BLAS kernel comes next. */
static napi_value Park(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  pool_park();
  return NULL;
}

static napi_value GetThreads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, pool_size(), &out);
  return out;
}

static void cleanup(void *arg) {
  (void)arg;
  pool_shutdown();
}

/*
 * "OpenBLAS 0.3.21 (core Cooperlake, /lib/.../libopenblas.so.0)": what `pocketlm doctor` shows.
 * The core matters: a CPU this OpenBLAS does not know gets the slow generic kernels.
 */
static void describe_library(char *buf, size_t size) {
  Dl_info dli;
  const char *path = "unknown path";
  if (dladdr((void *)&cblas_sgemm, &dli) && dli.dli_fname) path = dli.dli_fname;
  if (p_get_config) {
    /* The config string is "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": keep name and version. */
    const char *cfg = p_get_config();
    char name[64] = "OpenBLAS";
    if (cfg) {
      const char *sp = strchr(cfg, ' ');
      if (sp) sp = strchr(sp + 1, ' ');
      size_t n = sp ? (size_t)(sp - cfg) : strlen(cfg);
      if (n >= sizeof name) n = sizeof name - 1;
      memcpy(name, cfg, n);
      name[n] = 0;
    }
    const char *core = p_get_corename ? p_get_corename() : NULL;
    snprintf(buf, size, "%s (core %s, %s)", name, core ? core : "unknown", path);
  } else {
    snprintf(buf, size, "CBLAS (%s)", path);
  }
}

static napi_status export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_status s = napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  if (s != napi_ok) return s;
  return napi_set_named_property(env, exports, name, fn);
}

static napi_value Init(napi_env env, napi_value exports) {
  p_set_threads = (set_threads_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  p_get_config = (get_config_fn)dlsym(RTLD_DEFAULT, "openblas_get_config");
  p_get_corename = (get_corename_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
  /* OpenBLAS runs single-threaded inside each share of a split call. */
  if (p_set_threads) p_set_threads(1);
  napi_add_env_cleanup_hook(env, cleanup, NULL);

  char lib[512];
  describe_library(lib, sizeof lib);
  napi_value s, b;
  if (export_fn(env, exports, "sgemm", Sgemm) != napi_ok ||
      export_fn(env, exports, "sgemmStridedBatched", SgemmStridedBatched) != napi_ok ||
      export_fn(env, exports, "setThreads", SetThreads) != napi_ok ||
      export_fn(env, exports, "getThreads", GetThreads) != napi_ok ||
      export_fn(env, exports, "setBatchSplit", SetBatchSplit) != napi_ok ||
      export_fn(env, exports, "park", Park) != napi_ok ||
      export_fn(env, exports, "attentionForward", AttentionForward) != napi_ok ||
      export_fn(env, exports, "attentionBackward", AttentionBackward) != napi_ok)
    return NULL;
  napi_create_string_utf8(env, lib, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, exports, "library", s);
  napi_get_boolean(env, p_set_threads != NULL, &b);
  napi_set_named_property(env, exports, "threadControl", b);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
