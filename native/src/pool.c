/*
 * Fork-join over persistent worker threads, for one synchronous call at a time.
 *
 * Why not OpenBLAS's own threads: OpenBLAS 0.3.21 pays a wake-up and a barrier inside every
 * product and its threading scales poorly on the model's small shapes (512x192x192 ran at
 * 85 GFLOP/s on 2 threads vs ~100 on 1, where numpy's newer OpenBLAS reaches ~230). Splitting
 * the rows (or columns, or batch) of C into whole single-threaded products, one per core,
 * needs one hand-off and one join per call.
 *
 * A worker spins for SPIN_NS after a job (the next product usually follows within
 * microseconds), then sleeps on a condition variable, so it never competes for long with
 * the wasm worker pool that runs the elementwise kernels between products.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/*
 * 200 us: most products follow each other (or a short elementwise kernel) within that;
 * measured on seed-small (2 cores): 50 us 54.0 ms/step, 200 us 51.4, 1 ms 59 (the spin
 * then steals the wasm workers' core).
 */
#define SPIN_NS 200000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

typedef struct {
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int seq;  /* bumped by the caller for each job */
  atomic_int done; /* set to seq by the worker when the job is finished */
  atomic_int quit;
  atomic_int park; /* set by pool_park: stop spinning and sleep now; cleared by the next job */
  pool_fn fn;
  void *ctx;
  int part, nparts;
} worker_t;

static worker_t workers[POOL_MAX];
/*
 * Held for a whole job (and while resizing or shutting down). The addon is normally called
 * from one thread; if two threads (two Node environments) call at once, the second runs
 * its job alone on its own thread instead of racing for the workers.
 */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static int started = 0; /* workers running (threads beyond the caller) */
static int size = 1;    /* threads a job uses, caller included */

static void *worker_loop(void *arg) {
  worker_t *w = (worker_t *)arg;
  int seen = 0;
  for (;;) {
    uint64_t t0 = now_ns();
    unsigned spins = 0;
    while (atomic_load_explicit(&w->seq, memory_order_acquire) == seen) {
      if (atomic_load_explicit(&w->park, memory_order_relaxed) || ((++spins & 63) == 0 && now_ns() - t0 > SPIN_NS)) {
        pthread_mutex_lock(&w->mu);
        while (atomic_load(&w->seq) == seen && !atomic_load(&w->quit)) pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        break;
      }
      cpu_relax();
    }
    if (atomic_load(&w->quit)) return NULL;
    seen = atomic_load_explicit(&w->seq, memory_order_acquire);
    w->fn(w->ctx, w->part, w->nparts);
    atomic_store_explicit(&w->done, seen, memory_order_release);
  }
}

int pool_set_size(int n) {
  if (n < 1) n = 1;
  if (n > POOL_MAX) n = POOL_MAX;
  pthread_mutex_lock(&pool_lock);
  while (started < n - 1) {
    worker_t *w = &workers[started];
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_store(&w->seq, 0);
    atomic_store(&w->done, 0);
    atomic_store(&w->quit, 0);
    atomic_store(&w->park, 0);
    if (pthread_create(&w->tid, NULL, worker_loop, w) != 0) break; /* fewer threads, still correct */
    started++;
  }
  size = n - 1 <= started ? n : started + 1;
  int got = size;
  pthread_mutex_unlock(&pool_lock);
  return got;
}

int pool_size(void) { return size; }

void pool_run(int nparts, pool_fn fn, void *ctx) {
  if (pthread_mutex_trylock(&pool_lock) != 0) {
    for (int i = 0; i < nparts; i++) fn(ctx, i, nparts); /* pool busy: same parts, one thread */
    return;
  }
  if (nparts > size) nparts = size;
  for (int i = 1; i < nparts; i++) {
    worker_t *w = &workers[i - 1];
    w->fn = fn;
    w->ctx = ctx;
    w->part = i;
    w->nparts = nparts;
    atomic_store_explicit(&w->park, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->seq, 1, memory_order_release);
    /* The worker re-checks seq under the mutex before sleeping, so this wake-up is never lost. */
    pthread_mutex_lock(&w->mu);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
  fn(ctx, 0, nparts);
  for (int i = 1; i < nparts; i++) {
    worker_t *w = &workers[i - 1];
    int want = atomic_load_explicit(&w->seq, memory_order_relaxed);
    unsigned spins = 0;
    while (atomic_load_explicit(&w->done, memory_order_acquire) != want) {
      /* On an oversubscribed machine the worker may be descheduled: let it run. */
      if (++spins > 4000) sched_yield();
      else cpu_relax();
    }
  }
  pthread_mutex_unlock(&pool_lock);
}

void pool_park(void) {
  /* No lock: a flag store per worker; a worker that misses it just finishes its spin. */
  for (int i = 0; i < started; i++) atomic_store_explicit(&workers[i].park, 1, memory_order_relaxed);
}

void pool_shutdown(void) {
  pthread_mutex_lock(&pool_lock);
  for (int i = 0; i < started; i++) {
    worker_t *w = &workers[i];
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->quit, 1);
    atomic_fetch_add(&w->seq, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->tid, NULL);
  }
  started = 0;
  size = 1;
  pthread_mutex_unlock(&pool_lock);
}
