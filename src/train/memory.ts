import os from 'node:os';
import { ARENA_ALIGN, DEFAULT_ARENA_BASE, WASM32_MAX_BYTES } from '../kernels/arena.js';
import { defaultThreads, type BackendChoice } from '../kernels/index.js';
import { CTRL_BYTES } from '../kernels/wasm/ops.js';
import { PROGRAM_BYTES } from '../kernels/wasm/program.js';
import { activationFloats } from '../model/activations.js';
import type { ModelConfig } from '../model/config.js';
import { mixerFor } from '../model/mixers/index.js';
import { countParams, planLayout } from '../model/layout.js';
import type { OptimizerName, ParamTensor } from '../optim/types.js';
import { muonStateFloats } from '../optim/muon.js';
import { UserError } from '../util/errors.js';
import type { RunConfig } from './config.js';

/**
 * The memory plan: how many bytes of the arena (one wasm32 memory, at most 4 GiB) a model and
 * what is built around it will take, computed from the config alone before anything is
 * allocated, so that a config that cannot fit is refused in one line instead of failing
 * half-way through building it. Every buffer lives in the arena (src/kernels/arena.ts) and is
 * allocated once at start-up, so the figure is the whole of it: the tests compare it with
 * `arena.bytesUsed()` after building a training session and an opened run.
 *
 * The parts, in float32 (4 bytes), P parameters, N = B*T rows:
 *   parameters   P, plus the RoPE tables 2 * T * head_dim / 2
 *   gradients    P
 *   optimizer    OPTIMIZER_STATE[name] (buffers of P)
 *   activations  the activation plan (src/model/activations.ts, `activationFloats`) plus the
 *                model's own copies of the input and target ids (2N int32)
 *   KV cache     the one-token decoder (src/model/generate.ts): K and V [T, C] per layer, plus
 *                its per-token vectors
 *   batches      the caller's input and target ids (2N int32)
 *   kernel scratch  the wasm kernels' gemm packing scratch per thread, command blocks
 */

/**
 * Float32 state buffers each optimizer allocates from the arena, as lengths in floats for a
 * model of `numParams` parameters (one entry per allocation). A new optimizer adds its line
 * here; the tests build every optimizer in OPTIMIZERS and compare with this table.
 */
export const OPTIMIZER_STATE: Record<OptimizerName, (numParams: number, tensors: readonly ParamTensor[]) => number[]> = {
  adamw: (p) => [p, p], // m, v
  lion: (p) => [p], // m
  sfadamw: (p) => [p, p, p, p], // z, x, v, and y while the params hold x
  muon: (p, tensors) => muonStateFloats(tensors, p), // m, v, Newton-Schulz scratch sized by the largest matrix
};

/**
 * Bytes one gemm call's packing scratch takes in the wasm kernels (assembly/gemm.ts,
 * GEMM_SCRATCH_BYTES: packed B block KC x NC, packed A block MC x KC, one MR x NR edge tile).
 */
export const WASM_GEMM_SCRATCH_BYTES = (384 * 2048 + 96 * 384 + 6 * 8) * 4;

export type MemoryPartName = 'parameters' | 'gradients' | 'optimizer state' | 'activations' | 'KV cache' | 'batches' | 'kernel scratch' | 'frozen reference';

export interface MemoryPart {
  name: MemoryPartName;
  bytes: number;
}

export interface MemoryPlan {
  /** Every part, in the order above (zero-byte parts included). */
  parts: MemoryPart[];
  /** Arena bytes in all (what `arena.bytesUsed()` will be once everything is built). */
  bytes: number;
  /** What to lower when the plan does not fit, by part (config keys the user can change). */
  lower: Partial<Record<MemoryPartName, string>>;
}

/** What a caller builds on one arena. */
export interface MemoryRequest {
  model: ModelConfig;
  /** Rows the model's activation plan holds (train.batch_size; 1 for sampling). */
  batchSize: number;
  /** The optimizer whose state is allocated, or null (sampling, evaluation). */
  optimizer: OptimizerName | null;
  /** A KV-cache decoder over seq_len positions is built (training samples; `pocketlm sample`). */
  decoder: boolean;
  /** Sequences that decoder runs at once (batched sampling: star, spin, eval --task words); default 1. */
  decoderRows?: number;
  /** Frozen forward-only copies of the model with the same rows (SPIN's reference): parameters and activations, no gradients. */
  frozenModels?: number;
  /** Threads of the wasm kernels (each reserves gemm scratch); 0 for the js backend, which reserves none. */
  kernelThreads: number;
}

/** Bytes of one arena allocation of `n` 4-byte elements (every allocation starts aligned). */
function alloc(n: number): number {
  return Math.ceil((4 * n) / ARENA_ALIGN) * ARENA_ALIGN;
}

/** Bytes the wasm kernels reserve at start-up (src/kernels/wasm/kernels.ts#createWasmKernelsImpl). */
export function kernelScratchBytes(threads: number): number {
  if (threads <= 0) return 0;
  // gemm scratch per thread, the workers' command blocks, the chunk counter, the team's program block
  return threads * alloc(WASM_GEMM_SCRATCH_BYTES / 4) + alloc((threads * CTRL_BYTES) / 4) + alloc(16) + alloc(PROGRAM_BYTES / 4);
}

/** The arena bytes of everything `req` builds (a pure function of its fields). */
export function planMemory(req: MemoryRequest): MemoryPlan {
  const m = req.model;
  const B = req.batchSize;
  const T = m.seq_len;
  const C = m.d_model;
  const P = countParams(m);
  const N = B * T;
  const mixer = mixerFor(m);
  const rope = mixer.modelAllocs(m).reduce((sum, n) => sum + alloc(n), 0); // attention: the RoPE tables
  const optimizer = req.optimizer ? OPTIMIZER_STATE[req.optimizer](P, planLayout(m).tensors).reduce((s, n) => s + alloc(n), 0) : 0;
  // The activation plan makes ~11 allocations per layer: their alignment padding (< 64 bytes
  // each) is left out of the count.
  const activations = 4 * activationFloats(m, B) + 2 * alloc(N);
  let kv = 0;
  if (req.decoder) {
    const F = m.ffn_hidden, R = req.decoderRows ?? 1;
    // x, ln, rstd, y, h, s, tokens, logits (BatchDecoder), then the mixer's state (attention: the KV cache)
    kv = 3 * alloc(R * C) + alloc(R) + alloc(2 * R * F) + alloc(R * F) + alloc(R) + alloc(R * m.vocab_size)
      + mixer.decoderAllocs(m, R, T).reduce((sum, n) => sum + alloc(n), 0);
  }
  const frozen = (req.frozenModels ?? 0) * (alloc(P) + rope + activations);
  const parts: MemoryPart[] = [
    { name: 'parameters', bytes: alloc(P) + rope },
    { name: 'gradients', bytes: alloc(P) },
    { name: 'optimizer state', bytes: optimizer },
    { name: 'activations', bytes: activations },
    { name: 'KV cache', bytes: kv },
    { name: 'frozen reference', bytes: frozen },
    { name: 'batches', bytes: 2 * alloc(N) },
    { name: 'kernel scratch', bytes: kernelScratchBytes(req.kernelThreads) },
  ];
  const model = 'model.d_model, model.n_layer or model.vocab_size';
  return {
    parts,
    bytes: parts.reduce((s, p) => s + p.bytes, 0),
    lower: {
      parameters: model, gradients: model, 'optimizer state': model,
      activations: 'train.batch_size or model.seq_len', batches: 'train.batch_size or model.seq_len',
      'KV cache': 'model.seq_len or model.n_layer', 'kernel scratch': 'train.threads',
      'frozen reference': '--batch-pairs',
    },
  };
}

/** Kernel threads a backend choice runs (as createBackend resolves them): js reserves no scratch. */
export function kernelThreadsFor(backend: BackendChoice, threads: number | undefined): number {
  return backend === 'js' ? 0 : Math.max(1, threads ?? defaultThreads());
}

/**
 * What a training session builds (src/train/session.ts): the model at train.batch_size, the
 * optimizer, the decoder for samples and the batch buffers. `backend` / `threads` override the
 * config's as the train command's flags do; threads default to one per core.
 */
export function trainingMemoryPlan(
  cfg: RunConfig, opts: { backend?: BackendChoice; threads?: number; decoderRows?: number; frozenModels?: number } = {},
): MemoryPlan {
  const threads = opts.threads ?? (cfg.train.threads > 0 ? cfg.train.threads : undefined);
  return planMemory({
    model: cfg.model, batchSize: cfg.train.batch_size, optimizer: cfg.optim.name, decoder: true,
    decoderRows: opts.decoderRows, frozenModels: opts.frozenModels,
    kernelThreads: kernelThreadsFor(opts.backend ?? cfg.train.backend, threads),
  });
}

/**
 * What `sample` / `eval` build from a run folder (src/train/inference.ts): the model at
 * `batchSize` rows, its batch buffers, and the decoder `sample` adds (counted for eval too:
 * L * 2 * T * C floats, a small share of the activations).
 */
export function inferenceMemoryPlan(cfg: RunConfig, opts: { batchSize: number; backend?: BackendChoice; threads?: number }): MemoryPlan {
  const plan = planMemory({
    model: cfg.model, batchSize: opts.batchSize, optimizer: null, decoder: true,
    kernelThreads: kernelThreadsFor(opts.backend ?? 'auto', opts.threads),
  });
  // A trained model's shape is what it is: only the rows evaluated at once can be lowered.
  const rows = opts.batchSize > 1 ? "train.batch_size in the run's config.toml" : undefined;
  return { ...plan, lower: { activations: rows, batches: rows } };
}

/** The limits a plan is checked against. */
export interface MemoryLimits {
  /** Arena bytes the wasm32 memory can hold (4 GiB less the modules' own data below the arena). */
  arenaBytes: number;
  /** Memory this process can still get: free memory (MemAvailable), or what the cgroup limit leaves. */
  availableBytes: number;
  /** The machine's (or the cgroup's) memory in all. */
  totalBytes: number;
}

/** The limits of this machine now. */
export function machineMemoryLimits(): MemoryLimits {
  let available = os.freemem();
  let total = os.totalmem();
  // In a container the cgroup limit may be far below what the host has free.
  const constrained = process.constrainedMemory?.() ?? 0;
  if (constrained > 0 && constrained < total) {
    total = constrained;
    available = Math.min(available, Math.max(0, constrained - process.memoryUsage.rss()));
  }
  return { arenaBytes: WASM32_MAX_BYTES - DEFAULT_ARENA_BASE, availableBytes: available, totalBytes: total };
}

/** "5.3 GiB", "12.4 MiB", "512 KiB" (and TiB for the absurd plans a typo makes). */
export function formatBytes(n: number): string {
  if (n >= 2 ** 40) return `${(n / 2 ** 40).toFixed(1)} TiB`;
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${Math.ceil(n / 2 ** 10)} KiB`;
}

/**
 * Throws a one-line UserError when `plan` does not fit the arena or the memory this machine
 * has available (whichever is tighter), naming the figure, its three largest parts, the limit and
 * what to lower. `subject` starts the message ("this config", "the run in DIR").
 */
export function checkMemoryPlan(plan: MemoryPlan, opts: { subject?: string; limits?: MemoryLimits } = {}): void {
  const limits = opts.limits ?? machineMemoryLimits();
  const arenaTighter = limits.arenaBytes <= limits.availableBytes;
  const limit = Math.min(limits.arenaBytes, limits.availableBytes);
  if (plan.bytes <= limit) return;
  const parts = plan.parts.filter((p) => p.bytes > 0).sort((a, b) => b.bytes - a.bytes);
  const shown = parts.slice(0, 3).map((p) => `${p.name} ${formatBytes(p.bytes)}`).join(', ');
  const where = arenaTighter
    ? `the wasm32 arena holds at most ${formatBytes(limits.arenaBytes)}`
    : `this machine has ${formatBytes(limits.availableBytes)} of memory available (of ${formatBytes(limits.totalBytes)})`;
  const hint = plan.lower[parts[0]!.name];
  throw new UserError(`${opts.subject ?? 'this config'} needs ${formatBytes(plan.bytes)} of memory (${shown}) but ${where}${hint ? `; lower ${hint}` : ''}`);
}
