import { createBackend, type BackendChoice } from '../kernels/index.js';
import type { Arena } from '../kernels/arena.js';
import type { Kernels } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import { flopsPerToken } from './flops.js';
import { GPT } from './gpt.js';
import { profileKernels, type ProfileEntry } from './profile.js';
import { mulberry32 } from './rng.js';

export interface ModelBenchOptions {
  config: ModelConfig;
  batchSize: number;
  gradAccum: number;
  backend: BackendChoice;
  threads?: number;
  /** Timed optimizer steps (median taken); at least 10. */
  steps?: number;
  /** Untimed steps first (JIT, page faults, thread spin-up). */
  warmup?: number;
  /** Peak GFLOP/s for MFU; measured with a quick gemm on the same backend when omitted. */
  peakGflops?: number;
  /** Also run a few profiled steps and report time per kernel category. */
  profile?: boolean;
  seed?: number;
  /**
   * Builds the optimizer to time (the caller's, e.g. createOptimizer of the run config: this
   * layer does not know the optimizers). Omitted: a plain AdamW update with its own m/v state.
   */
  optimizer?: BenchOptimizerFactory;
}

/** What runModelBench needs of an optimizer: an update with a given learning rate. */
export type BenchOptimizerFactory = (
  kernels: Kernels, arena: Arena, params: GPT['params'], grads: GPT['grads'], tensors: GPT['tensors'],
) => { step(lr: number): void };

export interface ModelBenchResult {
  tokens_per_second: number;
  /** Median over timed steps, milliseconds. */
  step_ms: number;
  /** Per optimizer step (summed over the gradAccum micro-batches), medians. */
  forward_ms: number;
  backward_ms: number;
  optimizer_ms: number;
  /** Achieved model GFLOP/s: flops_per_token * tokens_per_second / 1e9. */
  gflops: number;
  /** gflops / peak_gflops. */
  mfu: number;
  peak_gflops: number;
  params: number;
  backend: string;
  threads: number;
  /** process.resourceUsage().maxRSS: the peak of the whole process so far. */
  peak_rss_mb: number;
  tokens_per_step: number;
  flops_per_token: number;
  /** Per-kernel time in one average optimizer step (when opts.profile). */
  profile?: ProfileEntry[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The backend's matrix-product peak on a square-ish model-like shape (512 x 768 x 512 nn),
 * best of several runs: what MFU is measured against when no peak is given.
 */
export function measurePeakGflops(k: Kernels, arena: Arena, minMs = 150): number {
  const mark = arena.mark();
  try {
    const M = 512, N = 768, K = 512;
    const A = arena.floats(M * K), B = arena.floats(K * N), C = arena.floats(M * N);
    for (let i = 0; i < A.length; i++) A[i] = ((i * 7919) % 997) / 997 - 0.5;
    for (let i = 0; i < B.length; i++) B[i] = ((i * 104729) % 991) / 991 - 0.5;
    const run = (): void => k.gemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N);
    run();
    let best = Infinity;
    const start = performance.now();
    do {
      const t0 = performance.now();
      run();
      best = Math.min(best, performance.now() - t0);
    } while (performance.now() - start < minMs);
    return (2 * M * N * K) / (best * 1e6);
  } finally {
    arena.release(mark);
  }
}

/** One AdamW update over the whole parameter buffer with its own m/v state: the default bench optimizer. */
function plainAdamW(k: Kernels, arena: Arena, params: GPT['params'], grads: GPT['grads'], n: number): { step(lr: number): void } {
  const m = arena.floats(n);
  const v = arena.floats(n);
  let t = 0;
  return {
    step(lr: number): void {
      t++;
      k.adamwUpdate(params, grads, m, v, n, lr, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** t, 1 - 0.95 ** t);
    },
  };
}

/**
 * Training throughput of a config on a backend: forward + backward (x gradAccum) + one optimizer
 * update (opts.optimizer, else plain AdamW), on random tokens. Warm-up steps are excluded; times
 * are medians.
 */
export async function runModelBench(opts: ModelBenchOptions): Promise<ModelBenchResult> {
  const steps = Math.max(10, opts.steps ?? 10);
  const warmup = Math.max(0, opts.warmup ?? 2);
  const B = opts.batchSize;
  const accum = opts.gradAccum;
  if (!Number.isInteger(accum) || accum < 1) throw new UserError(`bench: grad_accum must be a positive integer (got ${accum})`);
  const backend = await createBackend({ backend: opts.backend, threads: opts.threads });
  try {
    const { arena } = backend;
    const peak = opts.peakGflops ?? measurePeakGflops(backend.kernels, arena);
    const prof = profileKernels(backend.kernels);
    const k = opts.profile ? prof.kernels : backend.kernels;
    const model = new GPT(opts.config, k, arena, B);
    model.init(opts.seed ?? 1337);
    const n = model.numParams;
    const update = opts.optimizer ? opts.optimizer(k, arena, model.params, model.grads, model.tensors) : plainAdamW(k, arena, model.params, model.grads, n);
    const T = opts.config.seq_len;
    const V = opts.config.vocab_size;
    const inputs = arena.ints(B * T);
    const targets = arena.ints(B * T);
    const rng = mulberry32(opts.seed ?? 1337);
    for (let i = 0; i < B * T; i++) {
      inputs[i] = Math.floor(rng() * V);
      targets[i] = Math.floor(rng() * V);
    }
    let t = 0;
    const oneStep = (): { f: number; b: number; o: number; total: number } => {
      const t0 = performance.now();
      let f = 0, b = 0;
      model.zeroGrad();
      for (let a = 0; a < accum; a++) {
        const s0 = performance.now();
        model.setDropoutKey(opts.seed ?? 1337, t * accum + a); // training forwards: dropout on when model.dropout > 0
        model.forward(inputs, targets, B);
        const s1 = performance.now();
        model.backward(1 / accum);
        b += performance.now() - s1;
        f += s1 - s0;
      }
      const o0 = performance.now();
      t++;
      update.step(1e-4);
      const end = performance.now();
      return { f, b, o: end - o0, total: end - t0 };
    };
    for (let i = 0; i < warmup; i++) oneStep();
    const fs: number[] = [], bs: number[] = [], os: number[] = [], ts: number[] = [];
    for (let i = 0; i < steps; i++) {
      const r = oneStep();
      fs.push(r.f);
      bs.push(r.b);
      os.push(r.o);
      ts.push(r.total);
    }
    let profile: ProfileEntry[] | undefined;
    if (opts.profile) {
      const pSteps = 3;
      prof.setEnabled(true);
      for (let i = 0; i < pSteps; i++) oneStep();
      prof.setEnabled(false);
      profile = prof.report().map((e) => ({ name: e.name, calls: e.calls / pSteps, ms: e.ms / pSteps }));
    }
    const tokensPerStep = B * T * accum;
    const stepMs = median(ts);
    const tps = tokensPerStep / (stepMs / 1000);
    const fpt = flopsPerToken(opts.config);
    const gflops = (fpt * tps) / 1e9;
    return {
      tokens_per_second: tps,
      step_ms: stepMs,
      forward_ms: median(fs),
      backward_ms: median(bs),
      optimizer_ms: median(os),
      gflops,
      mfu: gflops / peak,
      peak_gflops: peak,
      params: n,
      backend: backend.info.name,
      threads: backend.info.threads,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      tokens_per_step: tokensPerStep,
      flops_per_token: fpt,
      ...(profile ? { profile } : {}),
    };
  } finally {
    await backend.dispose();
  }
}
