/* A tiny fork-join thread pool for splitting one BLAS call across cores (see pool.c). */
#ifndef POCKETLM_POOL_H
#define POCKETLM_POOL_H

/* Runs part `part` of `nparts` of a job; every part runs exactly once. */
typedef void (*pool_fn)(void *ctx, int part, int nparts);

/* Threads a job may use, the calling thread included (1..POOL_MAX); returns what it got. */
int pool_set_size(int n);
int pool_size(void);
/* Runs fn(ctx, i, nparts) for i < nparts (nparts <= pool_size()): part 0 on the caller. */
void pool_run(int nparts, pool_fn fn, void *ctx);
/* Idle workers stop spinning and sleep now (until the next job): another pool needs the cores. */
void pool_park(void);
/* Stops and joins the workers (at environment teardown). */
void pool_shutdown(void);

#define POOL_MAX 64

#endif
