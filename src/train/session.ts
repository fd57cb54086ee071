import fs from 'node:fs';
import path from 'node:path';
import { createBackend, type Backend, type BackendChoice } from '../kernels/index.js';
import { GPT } from '../model/gpt.js';
import { Generator } from '../model/generate.js';
import { createOptimizer, type Optimizer } from '../optim/index.js';
import { prepareDataset, type PrepareProgress } from '../data/prepare.js';
import { TokenLoader, fixedValBatches, type FixedBatch, type LoaderState } from '../data/loader.js';
import type { DatasetMeta } from '../data/meta.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { hasOptimizerState, loadCheckpoint, type CheckpointManifest } from './checkpoint.js';
import { truncateLog } from './log.js';
import { truncateSamples } from './samples.js';
import { claimRunFolder, removeOrphanCheckpoints, runPaths, type RunPaths } from './run.js';
import { SeededRng } from './rng.js';
import { stringifyConfig, type RunConfig } from './config.js';
import { checkMemoryPlan, trainingMemoryPlan } from './memory.js';

export type TrainConfig = RunConfig;

export interface SessionRequest {
  config: TrainConfig;
  runDir: string;
  /** Continue from the run's checkpoint (refused when the folder has none; a new run refuses a folder holding run files). */
  resume: boolean;
  /** Overrides train.backend / train.threads of the config when given (command-line flags). */
  backend?: BackendChoice;
  threads?: number;
}

/** Everything the loop touches, built once before the first step. */
export interface Session {
  config: TrainConfig;
  paths: RunPaths;
  backend: Backend;
  model: GPT;
  optimizer: Optimizer;
  loader: TokenLoader;
  valBatches: FixedBatch[];
  /** Arena views the batches are read into (wasm/native kernels read ids from the arena). */
  inputs: Int32Array;
  targets: Int32Array;
  tokenizer: Tokenizer;
  decoder: Generator;
  rng: SeededRng;
  dataset: { dir: string; meta: DatasetMeta; reused: boolean };
  /** Progress restored from the checkpoint (zeros for a fresh run). */
  step: number;
  tokens: number;
  elapsedSeconds: number;
  resumedFrom: CheckpointManifest | null;
  close(): Promise<void>;
}

/** The prepareDataset options a config's [data] section asks for. */
export function prepareOptionsFor(cfg: TrainConfig) {
  const paths = cfg.data.paths;
  return {
    dataset: paths.length ? undefined : cfg.data.dataset,
    data: paths.length ? paths : undefined,
    val: cfg.data.val_paths.length ? cfg.data.val_paths : undefined,
    vocabSize: cfg.model.vocab_size,
    // "bpe" means: train one on the train split (prepareDataset's default)
    tokenizer: cfg.data.tokenizer === 'bpe' ? undefined : cfg.data.tokenizer,
    maxTrainMb: cfg.data.max_train_mb,
    wordsFraction: cfg.data.words_fraction,
  };
}

function copyTokenizer(from: string, to: string): void {
  writeFileAtomicSync(to, fs.readFileSync(from));
}

/**
 * Claims the run folder (its lock, and the checks that a new run does not start over run files
 * and a resumed one has a checkpoint: run.ts claimRunFolder), then prepares (or reuses) the data,
 * builds backend, model, optimizer and loaders, and either initializes the model or restores the
 * checkpoint. Writes config.toml and tokenizer.json into the run folder. The caller owns
 * `close()`, which also releases the folder.
 */
export async function openSession(req: SessionRequest, onPrepare: (ev: PrepareProgress) => void): Promise<Session> {
  // First of all: data preparation can take minutes, and a refusal should not wait for it.
  const claim = claimRunFolder(req.runDir, req.resume);
  try {
    const s = await openClaimedSession(req, onPrepare);
    return { ...s, close: async () => { try { await s.close(); } finally { claim.release(); } } };
  } catch (e) {
    claim.release();
    // leave no empty folder behind for a run that never started (rmdir refuses a non-empty one)
    if (claim.created) try { fs.rmdirSync(req.runDir); } catch { /* it holds files: keep it */ }
    throw e;
  }
}

async function openClaimedSession(req: SessionRequest, onPrepare: (ev: PrepareProgress) => void): Promise<Session> {
  const cfg = req.config;
  const { train } = cfg;
  // before anything is prepared or allocated: a config that cannot fit is refused in one line
  checkMemoryPlan(trainingMemoryPlan(cfg, { backend: req.backend, threads: req.threads }));
  const paths = runPaths(req.runDir);
  const dataset = await prepareDataset(prepareOptionsFor(cfg), onPrepare);
  if (dataset.meta.vocabSize > cfg.model.vocab_size) {
    throw new UserError(`the tokenizer of ${dataset.dir} has ${dataset.meta.vocabSize} ids but model.vocab_size is ${cfg.model.vocab_size}`);
  }

  const threads = req.threads ?? (train.threads > 0 ? train.threads : undefined);
  const backend = await createBackend({ backend: req.backend ?? train.backend, threads });
  const loaders: TokenLoader[] = [];
  try {
    const { kernels, arena } = backend;
    const B = train.batch_size;
    const T = cfg.model.seq_len;
    const model = new GPT(cfg.model, kernels, arena, B);
    const optimizer = createOptimizer(cfg.optim, kernels, arena, model.params, model.grads, model.tensors);
    const loader = new TokenLoader(path.join(dataset.dir, dataset.meta.splits.train.file), { seqLen: T, batchSize: B, seed: train.seed });
    loaders.push(loader);
    const valBatches = fixedValBatches(path.join(dataset.dir, dataset.meta.splits.val.file), { seqLen: T, batchSize: B, count: Math.max(1, train.eval_batches) });
    const inputs = arena.ints(B * T);
    const targets = arena.ints(B * T);
    const decoder = new Generator(model, kernels, arena, T);
    const rng = new SeededRng(train.seed ^ 0x5a17);

    let resumedFrom: CheckpointManifest | null = null;
    if (req.resume) {
      resumedFrom = loadCheckpoint(req.runDir, cfg.model as unknown as Record<string, number | boolean | string>, {
        tensors: model.tensors, weights: model.params, optimState: optimizer.state(), optimizer: optimizer.name,
      });
    }
    if (req.resume && !resumedFrom) {
      // claimRunFolder saw checkpoint.json: it was removed while the data was being prepared
      throw new UserError(`--resume: ${paths.manifest} disappeared; nothing was changed`);
    }
    if (resumedFrom?.imported && !hasOptimizerState(resumedFrom)) {
      // An imported model (pocketlm import): its weights are loaded; optimizer, loader and RNG
      // start fresh, so training from it is fine-tuning, not an exact continuation.
      if (resumedFrom.dataset.tokenizer_hash !== dataset.meta.tokenizer.hash) {
        throw new UserError(`cannot train ${req.runDir}: its tokenizer differs from the one of ${dataset.dir}; keep data.tokenizer pointing at the run's tokenizer.json`);
      }
      truncateLog(paths.log, resumedFrom.step);
    } else if (resumedFrom) {
      const m = resumedFrom;
      if (m.dataset.tokenizer_hash !== dataset.meta.tokenizer.hash) {
        throw new UserError(`cannot resume ${req.runDir}: it was trained on data tokenized differently (${m.dataset.dir}) than ${dataset.dir}; use the same --data/--dataset`);
      }
      optimizer.loadScalars(m.optim_scalars);
      // Checkpoints are taken with the evaluation weights in place (Schedule-Free's x); back to y.
      optimizer.trainParams();
      loader.restore(m.loader as LoaderState);
      rng.restore(m.rng);
      truncateLog(paths.log, m.step);
      truncateSamples(paths.samples, m.step);
      // The checkpoint it names is verified and restored: other ckpt folders are leftovers of killed saves.
      removeOrphanCheckpoints(req.runDir, m.folder);
    } else {
      model.init(train.seed);
      truncateLog(paths.log, 0);
      truncateSamples(paths.samples, 0);
    }
    // A run that fell back on the bundled TinyStories sample (no network) says so in its config,
    // so --resume reads the same data instead of trying the download again.
    const used = dataset.datasetUsed && !cfg.data.paths.length && dataset.datasetUsed !== cfg.data.dataset ? dataset.datasetUsed : null;
    writeFileAtomicSync(paths.config, stringifyConfig(used ? { ...cfg, data: { ...cfg.data, dataset: used } } : cfg));
    copyTokenizer(path.join(dataset.dir, 'tokenizer.json'), paths.tokenizer);
    const tokenizer = await loadTokenizer(paths.tokenizer);

    return {
      config: cfg, paths, backend, model, optimizer, loader, valBatches, inputs, targets, tokenizer, decoder, rng, dataset,
      step: resumedFrom?.step ?? 0,
      tokens: resumedFrom?.tokens ?? 0,
      elapsedSeconds: resumedFrom?.elapsed_seconds ?? 0,
      resumedFrom,
      close: async () => {
        loader.close();
        await backend.dispose();
      },
    };
  } catch (e) {
    for (const l of loaders) l.close();
    await backend.dispose();
    throw e;
  }
}
