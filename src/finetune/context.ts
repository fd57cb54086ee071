import fs from 'node:fs';
import path from 'node:path';
import type { BackendChoice } from '../kernels/index.js';
import { GPT } from '../model/gpt.js';
import { BatchDecoder, sampleToken } from '../model/generate.js';
import { createOptimizer, clipGradNorm, type Optimizer } from '../optim/index.js';
import { fixedValBatches, type FixedBatch } from '../data/loader.js';
import { bitsPerByte, readMeta, type DatasetMeta } from '../data/meta.js';
import { readNpyTokens } from '../data/npy.js';
import { WORDS_FILE, type WordsFile } from '../data/prepare.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { openRun, type CheckpointChoice, type OpenedRun } from '../train/inference.js';
import { loadCheckpoint, readManifest, saveCheckpoint } from '../train/checkpoint.js';
import { claimRunFolder, runPaths, type RunClaim } from '../train/run.js';
import { loadConfig } from '../train/config.js';
import { checkMemoryPlan, trainingMemoryPlan } from '../train/memory.js';
import { meanLoss, sampleBatch } from '../train/evaluate.js';
import { SeededRng } from '../train/rng.js';
import { parseWordsDocument, verifyStory, wilsonInterval, wordsPrompt, type WordsPrompt } from '../tasks/words.js';
import { writeRow, type Example } from './sequences.js';

/** What every fine-tuning method shares: where from, where to, how to run. */
export interface FinetuneCommon {
  /** The base run (read only). */
  baseRun: string;
  /** The new run folder (created; with resume, continued). */
  outDir: string;
  resume: boolean;
  checkpoint?: CheckpointChoice;
  backend?: BackendChoice;
  threads?: number;
}

/** Sampling settings of one method (fixed for the whole run). */
export interface SampleOptions {
  temperature: number;
  topK: number;
  /** Tokens per story at most (also bounded by the context). */
  maxTokens: number;
}

/** What sampling and scoring the words task need: an opened run, a batched decoder, its dataset. */
export interface TaskContext {
  run: OpenedRun;
  decoder: BatchDecoder;
  datasetDir: string;
  meta: DatasetMeta;
}

/** An opened base run with what fine-tuning adds: an optimizer, a batched decoder, the data. */
export interface FinetuneContext {
  run: OpenedRun;
  model: GPT;
  /** Rows per training batch (<= model.batchSize). */
  rows: number;
  /** Rows per validation batch: the base run's train.batch_size. */
  evalRows: number;
  decoder: BatchDecoder;
  datasetDir: string;
  meta: DatasetMeta;
  valBatches: FixedBatch[];
  claim: RunClaim;
  close(): Promise<void>;
}

/** The base run's train.batch_size (the default rows per fine-tuning step). */
export function baseBatchSize(runDir: string): number {
  const file = runPaths(runDir).config;
  if (!fs.existsSync(file)) throw new UserError(`${runDir} is not a pocketlm run folder (no config.toml)`);
  return loadConfig({ file }).train.batch_size;
}

/** Rows the batched decoder runs at once (more rows amortise the matrix products; the memory is small). */
export const DECODER_ROWS = 16;

/**
 * Opens a run for the words task alone (pocketlm eval --task words): its weights, a batched
 * decoder and its dataset (which must have been prepared with data.words_fraction > 0).
 */
export async function openTask(runDir: string, o: { checkpoint?: CheckpointChoice; backend?: BackendChoice; threads?: number }): Promise<TaskContext & { words: WordsFile; close(): Promise<void> }> {
  const run = await openRun(runDir, { backend: o.backend, threads: o.threads, batchSize: 1, checkpoint: o.checkpoint ?? 'best' });
  try {
    const datasetDir = run.manifest.dataset.dir;
    if (!datasetDir || !fs.existsSync(path.join(datasetDir, 'meta.json'))) throw new UserError(`the dataset of ${runDir} (${datasetDir || 'none: an imported model'}) is not available; the words task takes its prompts from its validation stories`);
    const meta = readMeta(datasetDir);
    if (meta.tokenizer.hash !== run.manifest.dataset.tokenizer_hash) throw new UserError(`the dataset in ${datasetDir} was prepared again with another tokenizer than ${runDir}'s`);
    const words = readWordsFile(datasetDir, runDir);
    const decoder = new BatchDecoder(run.model, run.backend.kernels, run.backend.arena, DECODER_ROWS, run.config.model.seq_len);
    return { run, decoder, datasetDir, meta, words, close: () => run.close() };
  } catch (e) {
    await run.close();
    throw e;
  }
}

/**
 * Opens the base run with `rows` training rows, claims the output folder (new: refused if it
 * holds run files; resume: must hold a checkpoint), and writes config.toml and tokenizer.json
 * there so `sample` and `eval` can read it. With resume the weights come from the output folder's
 * checkpoint, else from the base run's.
 */
export async function openFinetune(c: FinetuneCommon, rows: number, frozenModels = 0): Promise<FinetuneContext> {
  if (path.resolve(c.baseRun) === path.resolve(c.outDir)) throw new UserError(`--out must be a new folder, not the base run ${c.baseRun} (the base run is never changed)`);
  // The model holds at least the base's batch: validation then uses the very windows (and batches)
  // of the base's training log and of `pocketlm eval`, so the numbers compare exactly.
  const evalRows = baseBatchSize(c.baseRun);
  const cfg = loadConfig({ file: runPaths(c.baseRun).config });
  // planned before anything is allocated: the model with its optimizer, the batched decoder, SPIN's reference
  checkMemoryPlan(trainingMemoryPlan({ ...cfg, train: { ...cfg.train, batch_size: Math.max(rows, evalRows) }, optim: { ...cfg.optim, name: 'adamw' } },
    { backend: c.backend, threads: c.threads, decoderRows: DECODER_ROWS, frozenModels }), { subject: `fine-tuning ${c.baseRun}` });
  const run = await openRun(c.baseRun, { backend: c.backend, threads: c.threads, batchSize: Math.max(rows, evalRows), checkpoint: c.checkpoint ?? 'best' });
  let claim: RunClaim | null = null;
  try {
    claim = claimRunFolder(c.outDir, c.resume);
    const paths = runPaths(c.outDir);
    if (c.resume) {
      const m = loadCheckpoint(c.outDir, run.config.model as unknown as Record<string, number | boolean | string>, { tensors: run.model.tensors, weights: run.model.params });
      if (!m) throw new UserError(`--resume: ${c.outDir} has no checkpoint.json`);
    } else {
      fs.copyFileSync(runPaths(c.baseRun).config, paths.config);
      writeFileAtomicSync(paths.tokenizer, fs.readFileSync(runPaths(c.baseRun).tokenizer));
    }
    const datasetDir = run.manifest.dataset.dir;
    if (!datasetDir || !fs.existsSync(path.join(datasetDir, 'meta.json'))) throw new UserError(`the dataset of ${c.baseRun} (${datasetDir || 'none: an imported model'}) is not available; fine-tuning reads its train and validation stories`);
    const meta = readMeta(datasetDir);
    if (meta.tokenizer.hash !== run.manifest.dataset.tokenizer_hash) throw new UserError(`the dataset in ${datasetDir} was prepared again with another tokenizer than ${c.baseRun}'s`);
    const T = run.config.model.seq_len;
    const valBatches = fixedValBatches(path.join(datasetDir, meta.splits.val.file), { seqLen: T, batchSize: evalRows, count: Math.max(1, run.config.train.eval_batches) });
    const decoder = new BatchDecoder(run.model, run.backend.kernels, run.backend.arena, DECODER_ROWS, T);
    const held = claim;
    return {
      run, model: run.model, rows, evalRows, decoder, datasetDir, meta, valBatches, claim,
      close: async () => { try { await run.close(); } finally { held.release(); } },
    };
  } catch (e) {
    claim?.release();
    await run.close();
    throw e;
  }
}

/** A fresh AdamW over the model (each iteration starts one: an iteration is then a function of its start weights alone). */
export function newOptimizer(ctx: FinetuneContext): Optimizer {
  const { backend, config } = ctx.run;
  return createOptimizer({ ...config.optim, name: 'adamw' }, backend.kernels, backend.arena, ctx.model.params, ctx.model.grads, ctx.model.tensors);
}

/** The documents of a split of the base run's dataset, decoded (a words-format document stays as it is). */
export function splitDocuments(ctx: TaskContext, split: 'train' | 'val'): string[] {
  const ids = readNpyTokens(path.join(ctx.datasetDir, ctx.meta.splits[split].file));
  const eot = ctx.run.tokenizer.eotId;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== eot) continue;
    if (i > start) out.push(ctx.run.tokenizer.decode(ids.subarray(start, i)));
    start = i + 1;
  }
  return out;
}

/** The stories of a split: a words-format document gives its story. */
export function splitStories(ctx: TaskContext, split: 'train' | 'val'): string[] {
  return splitDocuments(ctx, split).map((d) => parseWordsDocument(d)?.story ?? d.trim());
}

/** The words task settings of the base run's dataset (words.json), or a UserError saying how to get them. */
export function readWordsFile(datasetDir: string, runDir: string): WordsFile {
  const file = path.join(datasetDir, WORDS_FILE);
  if (!fs.existsSync(file)) throw new UserError(`${runDir} was not trained with the words task: its dataset ${datasetDir} has no ${WORDS_FILE} (train with --set data.words_fraction=0.5)`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as WordsFile;
}

/** Validation loss (nats/token) and bits per byte on the dataset's validation split (plain stories). */
export function validate(ctx: FinetuneContext): { loss: number; bpb: number } {
  const n = ctx.evalRows * ctx.run.config.model.seq_len;
  const loss = meanLoss(ctx.model, ctx.valBatches, ctx.evalRows, ctx.run.inputs.subarray(0, n), ctx.run.targets.subarray(0, n));
  return { loss, bpb: bitsPerByte(loss, ctx.meta, 'val') };
}

/** A seed for item i of a stream: a 32-bit mix of (seed, stream, i). */
export function seedFor(seed: number, stream: number, i: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = (h + Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The token prompt of a words task: <|endoftext|>, then `Words: ...\nStory:`. */
export function promptTokens(ctx: TaskContext, words: readonly string[]): number[] {
  return [ctx.run.tokenizer.eotId, ...ctx.run.tokenizer.encode(wordsPrompt(words))];
}

/** Continuations of token prompts (one rng seed each), batched; each cut to fit the context. */
export function sampleContinuations(ctx: TaskContext, prompts: readonly number[][], seeds: readonly number[], s: SampleOptions): number[][] {
  const T = ctx.run.config.model.seq_len;
  const out: number[][] = [];
  // group by the room left so each group's maxNew fits every prompt in it
  const byRoom = new Map<number, number[]>();
  prompts.forEach((p, i) => {
    const room = Math.max(1, Math.min(s.maxTokens, T - p.length + 1));
    if (!byRoom.has(room)) byRoom.set(room, []);
    byRoom.get(room)!.push(i);
  });
  for (const [room, idx] of byRoom) {
    const got = sampleBatch(ctx.decoder, sampleToken, idx.map((i) => prompts[i]!), room,
      { temperature: s.temperature, topK: s.topK, topP: 1 }, idx.map((i) => new SeededRng(seeds[i]!).fn()), ctx.run.tokenizer.eotId, ctx.run.config.model.vocab_size);
    idx.forEach((i, j) => { out[i] = got[j]!; });
  }
  return out;
}

export interface WordsScore {
  n: number;
  successes: number;
  rate: number;
  low: number;
  high: number;
  results: { words: string[]; story: string; ok: boolean }[];
}

/** One story per prompt (seed i of `seed`), each checked by the verifier; the rate with its Wilson 95% interval. */
export function scoreWords(ctx: TaskContext, prompts: readonly WordsPrompt[], seed: number, s: SampleOptions, minWords: number): WordsScore {
  const toks = prompts.map((p) => promptTokens(ctx, p.words));
  const seeds = prompts.map((_, i) => seedFor(seed, 0, i));
  const gens = sampleContinuations(ctx, toks, seeds, s);
  const results = prompts.map((p, i) => {
    const story = ctx.run.tokenizer.decode(gens[i]!).trim();
    return { words: p.words, story, ok: verifyStory(p.words, story, { minWords }).ok };
  });
  const successes = results.filter((r) => r.ok).length;
  const ci = wilsonInterval(successes, prompts.length);
  return { n: prompts.length, successes, rate: successes / prompts.length, low: ci.low, high: ci.high, results };
}

/**
 * `steps` optimizer steps of masked fine-tuning over `examples` (rows in a seeded shuffled order,
 * cycling), mean loss over the completion tokens, gradient clipped at train.grad_clip, a fresh
 * AdamW at a constant `lr`. Returns the mean training loss (NaN with no steps).
 */
export function supervisedSteps(ctx: FinetuneContext, examples: readonly Example[], steps: number, lr: number, seed: number): number {
  if (steps === 0 || examples.length === 0) return Number.NaN;
  const opt = newOptimizer(ctx);
  const T = ctx.run.config.model.seq_len;
  const rng = new SeededRng(seed);
  const order: number[] = [];
  let sum = 0;
  for (let s = 0; s < steps; s++) {
    ctx.model.zeroGrad();
    for (let r = 0; r < ctx.rows; r++) {
      if (order.length === 0) order.push(...shuffled(examples.length, rng));
      writeRow(examples[order.pop()!]!, T, r, ctx.run.inputs, ctx.run.targets, ctx.run.tokenizer.eotId);
    }
    const loss = ctx.model.forward(ctx.run.inputs, ctx.run.targets, ctx.rows);
    if (!Number.isFinite(loss)) throw new UserError(`fine-tuning diverged (loss ${loss}); try a lower --lr`);
    ctx.model.backward();
    clipGradNorm(ctx.run.backend.kernels, ctx.model.grads, ctx.run.config.train.grad_clip);
    opt.step(lr);
    sum += loss;
  }
  return sum / steps;
}

export function shuffled(n: number, rng: SeededRng): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The state of a fine-tuning run folder: the method's options (finetune.json) and the iterations done. */
export interface FinetuneState<O> {
  method: 'star' | 'spin';
  base: string;
  options: O;
}

export const STATE_FILE = 'finetune.json';

/**
 * Reads or writes finetune.json: a new run writes its options; a resumed one must be the same
 * method with the same options (named in the error otherwise), so a resume continues the same run.
 */
export function settleState<O extends object>(ctx: FinetuneContext, c: FinetuneCommon, method: 'star' | 'spin', options: O): void {
  const file = path.join(c.outDir, STATE_FILE);
  const state: FinetuneState<O> = { method, base: path.resolve(c.baseRun), options };
  if (!c.resume) {
    writeFileAtomicSync(file, `${JSON.stringify(state, null, 2)}\n`);
    return;
  }
  if (!fs.existsSync(file)) throw new UserError(`--resume: ${c.outDir} has no ${STATE_FILE} (not a star/spin run)`);
  const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as FinetuneState<Record<string, unknown>>;
  if (saved.method !== method) throw new UserError(`--resume: ${c.outDir} is a ${saved.method} run, not ${method}`);
  for (const [k, v] of Object.entries(options)) {
    if (JSON.stringify(saved.options[k]) !== JSON.stringify(v)) throw new UserError(`--resume: ${k} is ${JSON.stringify(saved.options[k])} in ${file} but ${JSON.stringify(v)} now; resume with the same options`);
  }
}

/** The last iteration finished according to the output folder's checkpoint (-1: none yet, not even the base's measurement). */
export function iterationsDone(outDir: string): number {
  return readManifest(outDir)?.finetune?.iteration ?? -1;
}

/** Optimizer steps taken so far according to the output folder's checkpoint. */
export function stepsDone(outDir: string): number {
  return readManifest(outDir)?.step ?? 0;
}

/** Keeps the log lines of iterations up to `done` (-1: none) (a kill between the log line and the checkpoint leaves one more). */
export function truncateIterationLog(file: string, done: number): void {
  if (!fs.existsSync(file)) return;
  const keep = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').filter((l) => {
    try {
      return (JSON.parse(l) as { iteration: number }).iteration <= done;
    } catch {
      return false; // a half-written last line
    }
  });
  writeFileAtomicSync(file, keep.map((l) => `${l}\n`).join(''));
}

export function appendLog(file: string, record: object): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, `${JSON.stringify(record)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Checkpoint of the weights after `iteration` (weights only: each iteration starts a fresh optimizer). */
export function saveIteration(ctx: FinetuneContext, outDir: string, method: 'star' | 'spin', iteration: number, steps: number, tokens: number, seconds: number, val: { loss: number; bpb: number }): void {
  saveCheckpoint(outDir, ctx.run.config.model as unknown as Record<string, number | boolean | string>, { tensors: ctx.model.tensors, weights: ctx.model.params }, {
    step: steps, tokens, elapsed_seconds: seconds, loader: null, rng: null, optimizer: 'adamw', optim_scalars: {},
    dataset: { dir: ctx.datasetDir, tokenizer_hash: ctx.meta.tokenizer.hash },
    val_loss: val.loss, val_bpb: val.bpb,
    finetune: { method, from: path.resolve(ctx.run.runDir), iteration },
  });
}
