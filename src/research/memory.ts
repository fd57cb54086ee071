import type { BackendChoice } from '../kernels/index.js';
import type { RunConfig } from '../train/config.js';
import { inferenceMemoryPlan, trainingMemoryPlan } from '../train/memory.js';

// The memory a research trial takes: what the study checks a candidate against (--max-memory-mb)
// and what the resource guard waits for before starting one.

/**
 * What a trial process needs besides the arena: Node itself, the compiled wasm, worker threads,
 * the JS heap of the tokenizer, loaders and scoring. Measured on Linux x64 with Node 20: a trial
 * whose plan is 8 MB peaks at about 132 MB. study.test.ts checks the estimate against the
 * measured peak of a small trial and of one whose arena dominates.
 */
export const TRIAL_PROCESS_BASELINE_MB = 160;

/**
 * Estimated peak memory of a trial process (MB): the training memory plan, the one-row scoring
 * arena (opened while the training arena may not be collected yet) and the process baseline.
 */
export function estimateTrialMemoryMb(cfg: RunConfig, threads: number, backend: string): number {
  const opts = { backend: backend as BackendChoice, threads: threads > 0 ? threads : undefined };
  const bytes = trainingMemoryPlan(cfg, opts).bytes + inferenceMemoryPlan(cfg, { ...opts, batchSize: 1 }).bytes;
  return bytes / 2 ** 20 + TRIAL_PROCESS_BASELINE_MB;
}

