import fs from 'node:fs';
import path from 'node:path';
import { createBackend, type Backend, type BackendChoice } from '../kernels/index.js';
import { GPT } from '../model/gpt.js';
import { Generator as KvDecoder, sampleToken } from '../model/generate.js';
import { fixedValBatches, type FixedBatch } from '../data/loader.js';
import { bitsPerByte, readMeta } from '../data/meta.js';
import { expandPaths, fileSource } from '../data/sources.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { loadConfig, type RunConfig } from './config.js';
import { bestCheckpointDir, loadCheckpoint, readBestManifest, readManifest, type CheckpointManifest } from './checkpoint.js';
import { checkMemoryPlan, inferenceMemoryPlan } from './memory.js';
import { meanLoss, sampleTokens, type SampleSettings } from './evaluate.js';
import { runPaths } from './run.js';
import { SeededRng } from './rng.js';

/** Which weights of a run to use: the best evaluation's (<run>/best/) or the last checkpoint's. */
export type CheckpointChoice = 'best' | 'last';
export const CHECKPOINT_CHOICES: readonly CheckpointChoice[] = ['best', 'last'];

/** Reads a --checkpoint value (`flag` names it in the error). */
export function parseCheckpointChoice(flag: string, value: string): CheckpointChoice {
  const v = value.trim();
  if (!(CHECKPOINT_CHOICES as readonly string[]).includes(v)) throw new UserError(`${flag} must be ${CHECKPOINT_CHOICES.join(' or ')}, got "${value}"`);
  return v as CheckpointChoice;
}

export interface ChosenCheckpoint {
  /** The folder whose checkpoint.json to load: the run folder or its best/. */
  dir: string;
  which: CheckpointChoice;
  /** Set when the choice fell back (best asked, none yet): one line for the user. */
  notice: string | null;
}

/**
 * Where the weights asked for are. `best` falls back to the last checkpoint when the run has no
 * best yet (no evaluation finished, or a run from before best/ existed), saying so in `notice`.
 * Shared by sample, eval and export.
 */
export function chooseCheckpoint(runDir: string, want: CheckpointChoice): ChosenCheckpoint {
  if (want === 'best') {
    if (readBestManifest(runDir)) return { dir: bestCheckpointDir(runDir), which: 'best', notice: null };
    // An imported model has only its one checkpoint: nothing to say.
    if (readManifest(runDir)?.imported) return { dir: runDir, which: 'last', notice: null };
    // A star/spin run keeps the weights of its last iteration (its log has every iteration's scores).
    if (readManifest(runDir)?.finetune) return { dir: runDir, which: 'last', notice: null };
    return { dir: runDir, which: 'last', notice: `${runDir} has no best checkpoint yet (no evaluation has finished); using the last checkpoint` };
  }
  return { dir: runDir, which: 'last', notice: null };
}

/** A trained run opened for sampling or evaluation: its config, tokenizer and checkpoint weights. */
export interface OpenedRun {
  runDir: string;
  config: RunConfig;
  backend: Backend;
  model: GPT;
  tokenizer: Tokenizer;
  manifest: CheckpointManifest;
  /** Which checkpoint the weights come from, and the fallback notice when it is not the one asked for. */
  checkpoint: CheckpointChoice;
  notice: string | null;
  /** Arena views for batches of ids (wasm/native kernels read only arena memory). */
  inputs: Int32Array;
  targets: Int32Array;
  close(): Promise<void>;
}

/**
 * Opens `runDir` with only what is inside it (config.toml, tokenizer.json, the checkpoint): the
 * weights are the evaluation weights (Schedule-Free's x) of the best checkpoint, or of the last
 * with `checkpoint: 'last'`. `batchSize` rows are planned (default: the run's train.batch_size).
 */
export async function openRun(
  runDir: string,
  opts: { backend?: BackendChoice; threads?: number; batchSize?: number; checkpoint?: CheckpointChoice },
): Promise<OpenedRun> {
  const paths = runPaths(runDir);
  if (!fs.existsSync(paths.config)) throw new UserError(`${runDir} is not a pocketlm run folder (no config.toml)`);
  const config = loadConfig({ file: paths.config });
  if (!fs.existsSync(paths.tokenizer)) throw new UserError(`${runDir} has no tokenizer.json`);
  const tokenizer = await loadTokenizer(paths.tokenizer);
  const batchSize = opts.batchSize ?? config.train.batch_size;
  checkMemoryPlan(inferenceMemoryPlan(config, { batchSize, backend: opts.backend, threads: opts.threads }), { subject: `the run in ${runDir}` });
  const chosen = chooseCheckpoint(runDir, opts.checkpoint ?? 'best');
  const backend = await createBackend({ backend: opts.backend ?? 'auto', threads: opts.threads });
  try {
    const model = new GPT(config.model, backend.kernels, backend.arena, batchSize);
    const manifest = loadCheckpoint(chosen.dir, config.model as unknown as Record<string, number | boolean | string>, { tensors: model.tensors, weights: model.params });
    if (!manifest) throw new UserError(`${runDir} has no checkpoint yet (train it first)`);
    const notice = chosen.notice === null ? null : `${chosen.notice} (step ${manifest.step})`;
    const n = batchSize * config.model.seq_len;
    const inputs = backend.arena.ints(n);
    const targets = backend.arena.ints(n);
    return {
      runDir, config, backend, model, tokenizer, manifest, checkpoint: chosen.which, notice, inputs, targets,
      close: () => backend.dispose(),
    };
  } catch (e) {
    await backend.dispose();
    throw e;
  }
}

export interface SampleRequest extends SampleSettings {
  prompt: string;
  maxTokens: number;
  seed: number;
  /** Stop at <|endoftext|> (the end of a story). */
  stopAtEnd: boolean;
}

/**
 * Generates text after the prompt with the KV cache, yielding it piece by piece as tokens are
 * produced (a multi-byte character split across tokens comes out once it is complete).
 * The prompt follows an <|endoftext|>, as every document did in training.
 */
export function* generateText(run: OpenedRun, req: SampleRequest): Generator<string, void, void> {
  const tok = run.tokenizer;
  const decoder = new KvDecoder(run.model, run.backend.kernels, run.backend.arena, run.config.model.seq_len);
  const prompt = [tok.eotId, ...tok.encode(req.prompt)];
  const rng = new SeededRng(req.seed);
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  for (const id of sampleTokens(decoder, sampleToken, prompt, req.maxTokens, req, rng.fn(), req.stopAtEnd ? tok.eotId : null)) {
    const text = utf8.decode(tok.decodeBytes([id]), { stream: true });
    if (text) yield text;
  }
  const rest = utf8.decode();
  if (rest) yield rest;
}

export interface EvalResult {
  loss: number;
  bpb: number;
  /** Windows of seq_len tokens evaluated. */
  windows: number;
  source: string;
}

/** `count` windows of T+1 tokens spread evenly over `ids` (all non-overlapping windows when count >= their number). */
function windowsOf(ids: Uint32Array, T: number, B: number, count: number): FixedBatch[] {
  const available = Math.floor((ids.length - 1) / T);
  if (available < 1) throw new UserError(`the evaluation text has ${ids.length} tokens, fewer than seq_len + 1 = ${T + 1}`);
  const n = Math.min(available, count * B);
  const starts = Array.from({ length: n }, (_, j) => (n === available ? j * T : Math.floor((j * (ids.length - T - 1)) / Math.max(1, n - 1))));
  const out: FixedBatch[] = [];
  for (let i = 0; i < n; i += B) {
    const rows = Math.min(B, n - i);
    const b = { inputs: new Int32Array(rows * T), targets: new Int32Array(rows * T) };
    for (let r = 0; r < rows; r++) {
      const s = starts[i + r]!;
      for (let t = 0; t < T; t++) {
        b.inputs[r * T + t] = ids[s + t]!;
        b.targets[r * T + t] = ids[s + t + 1]!;
      }
    }
    out.push(b);
  }
  return out;
}

/** Mean loss per token over batches whose last one may hold fewer rows. */
function lossOver(run: OpenedRun, batches: readonly FixedBatch[]): number {
  const T = run.config.model.seq_len;
  let sum = 0;
  let rows = 0;
  for (const b of batches) {
    const B = b.inputs.length / T;
    sum += meanLoss(run.model, [b], B, run.inputs.subarray(0, B * T), run.targets.subarray(0, B * T)) * B;
    rows += B;
  }
  return sum / rows;
}

/**
 * Validation loss and bits per byte. Without `data`: the run's own validation split (the same
 * fixed windows as the training log's evaluations, `batches` of them, default train.eval_batches).
 * With `data`: those text files, tokenized with the run's tokenizer, documents each followed by
 * <|endoftext|> as in training (up to 4x the tokens the windows need); bits per byte over the
 * UTF-8 bytes of the documents tokenized.
 */
export function evaluateRun(run: OpenedRun, opts: { data?: string[]; batches?: number }): EvalResult {
  const T = run.config.model.seq_len;
  const B = run.model.batchSize;
  const count = opts.batches ?? run.config.train.eval_batches;
  if (opts.data?.length) {
    const tok = run.tokenizer;
    const ids: number[] = [];
    let bytes = 0;
    const files = expandPaths(opts.data);
    // Tokenizing a 200 MB file to score a few hundred windows would be wasteful: stop once there
    // are 4x the tokens the windows need (bits per byte then use the tokenized part's own ratio).
    const enough = 4 * count * B * T + 1;
    tokenize: for (const f of files) {
      for (const doc of fileSource(f).docs()) {
        for (const id of tok.encode(doc)) ids.push(id);
        ids.push(tok.eotId);
        bytes += Buffer.byteLength(doc, 'utf8');
        if (ids.length >= enough) break tokenize;
      }
    }
    if (bytes === 0) throw new UserError(`no text found in ${opts.data.join(', ')}`);
    const batches = windowsOf(Uint32Array.from(ids), T, B, count);
    const loss = lossOver(run, batches);
    const windows = batches.reduce((a, b) => a + b.inputs.length / T, 0);
    return { loss, bpb: (loss * ids.length) / (bytes * Math.LN2), windows, source: files.length === 1 ? files[0]! : `${files.length} files` };
  }
  const dir = run.manifest.dataset.dir;
  if (dir === '') throw new UserError(`${run.runDir} has no dataset of its own (an imported model); evaluate on files with --data FILE`);
  if (!fs.existsSync(path.join(dir, 'meta.json'))) {
    throw new UserError(`the run's dataset ${dir} is gone; evaluate on files with --data FILE`);
  }
  const meta = readMeta(dir);
  if (meta.tokenizer.hash !== run.manifest.dataset.tokenizer_hash) {
    throw new UserError(`the dataset in ${dir} was prepared again with another tokenizer; evaluate on files with --data FILE`);
  }
  const batches = fixedValBatches(path.join(dir, meta.splits.val.file), { seqLen: T, batchSize: B, count });
  const loss = lossOver(run, batches);
  return { loss, bpb: bitsPerByte(loss, meta, 'val'), windows: batches.length * B, source: `${dir} (validation split)` };
}
