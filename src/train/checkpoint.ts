import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FloatArray } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { decodeSafetensors, encodeSafetensors, toFloat32, type StFile } from '../export/safetensors.js';
import { checkpointFolderName, isCheckpointFolderName, removeOrphanCheckpoints, runPaths } from './run.js';
import type { StepBudget } from './schedule.js';

/** Where one named parameter lives in the flat buffer (the model's ParamTensor has these fields). */
export interface TensorSlot {
  name: string;
  offset: number;
  size: number;
  shape: readonly number[];
}

export type ModelConfigLike = Readonly<Record<string, number | boolean | string>>;

/** Everything besides the big buffers that a resumed run needs to continue exactly. */
export interface CheckpointState {
  step: number;
  tokens: number;
  elapsed_seconds: number;
  /** The data loader's state (JSON). */
  loader: unknown;
  /** The trainer's own RNG state (JSON). */
  rng: unknown;
  optimizer: string;
  optim_scalars: Record<string, number>;
  /** Identifies the prepared dataset (folder and tokenizer hash), to refuse resuming on other data. */
  dataset: { dir: string; tokenizer_hash: string };
  /** Learning-rate multiplier left by rollbacks (absent: 1) and the rollbacks so far (absent: 0). */
  lr_scale?: number;
  rollbacks?: number;
  /** The spike detector's running average of the training loss (absent: not started). */
  loss_average?: { ema: number; count: number };
  /** A time budget turned into steps (absent: not measured yet, or no time budget). */
  step_budget?: StepBudget;
  /** Validation loss and bits per byte of these weights (the best checkpoint has them). */
  val_loss?: number;
  val_bpb?: number;
  /**
   * Set by `pocketlm import`: the weights came from another format (weights only, step 0, no
   * loader or RNG state). `train --resume` then starts with fresh optimizer state instead of
   * refusing (hasOptimizerState).
   */
  imported?: { format: 'hf' | 'gguf'; from: string };
  /**
   * Set by `pocketlm star` / `pocketlm spin`: the weights after `iteration` iterations of that
   * method from the run `from` (weights only: each iteration starts a fresh optimizer).
   */
  finetune?: { method: 'star' | 'spin'; from: string; iteration: number };
}

export interface CheckpointManifest extends CheckpointState {
  format: 'pocketlm-checkpoint';
  version: 1;
  /** Folder (relative to the run) holding the safetensors files. */
  folder: string;
  files: Record<string, { bytes: number; sha256: string }>;
  model: ModelConfigLike;
  created: string;
}

export interface CheckpointBuffers {
  tensors: readonly TensorSlot[];
  /** Weights to export: the evaluation weights (Schedule-Free's x), else the training weights. */
  weights: FloatArray;
  /** Named optimizer state buffers, each laid out like the parameters; absent: weights only (the best checkpoint). */
  optimState?: Readonly<Record<string, FloatArray>>;
  /** Training weights when they differ from `weights` (Schedule-Free's y); saved with the optimizer state. */
  trainWeights?: FloatArray;
}

/** File writer used by saveCheckpoint; tests swap it to simulate a crash mid-write. */
export type WriteFile = (target: string, bytes: Uint8Array | string) => void;

const MODEL_FILE = 'model.safetensors';
const OPTIM_FILE = 'optim.safetensors';
const TRAIN_WEIGHTS = '__train_weights__';

function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

export function allFinite(x: FloatArray): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}

/** Encodes the weights as named tensors (the model's names and shapes): what `sample` and other tools read. */
export function encodeWeights(tensors: readonly TensorSlot[], weights: FloatArray, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(
    tensors.map((t) => ({ name: t.name, shape: t.shape, data: weights.subarray(t.offset, t.offset + t.size) })),
    metadata,
  );
}

/**
 * Saves a checkpoint into `runDir`: a fresh ckpt-<step> folder, then the manifest (the commit
 * point), then removal of older folders. Refuses (throws, writing nothing) when a buffer holds
 * NaN or Inf, so a diverged run can never replace a good checkpoint.
 */
export function saveCheckpoint(
  runDir: string,
  model: ModelConfigLike,
  bufs: CheckpointBuffers,
  state: CheckpointState,
  writeFile: WriteFile = writeFileAtomicSync,
): CheckpointManifest {
  const optimState = bufs.optimState ?? {};
  const named: [string, FloatArray][] = [['weights', bufs.weights], ...Object.entries(optimState)];
  if (bufs.trainWeights) named.push(['training weights', bufs.trainWeights]);
  for (const [what, buf] of named) {
    if (!allFinite(buf)) throw new Error(`refusing to checkpoint step ${state.step}: ${what} contain NaN or Inf`);
  }
  const paths = runPaths(runDir);
  const folder = checkpointFolderName(state.step);
  const folderPath = path.join(runDir, folder);
  // A folder of this name can only be the leftover of a save that crashed before its commit.
  fs.rmSync(folderPath, { recursive: true, force: true });
  fs.mkdirSync(folderPath, { recursive: true });

  const modelBytes = encodeWeights(bufs.tensors, bufs.weights, { format: 'pt', step: String(state.step) });
  writeFile(path.join(folderPath, MODEL_FILE), modelBytes);
  const files: CheckpointManifest['files'] = { [MODEL_FILE]: { bytes: modelBytes.byteLength, sha256: sha256(modelBytes) } };
  if (bufs.optimState) {
    const optimTensors = Object.entries(optimState).map(([k, v]) => ({ name: k, shape: [v.length], data: v }));
    if (bufs.trainWeights) optimTensors.push({ name: TRAIN_WEIGHTS, shape: [bufs.trainWeights.length], data: bufs.trainWeights });
    const optimBytes = encodeSafetensors(optimTensors, { optimizer: state.optimizer, step: String(state.step) });
    writeFile(path.join(folderPath, OPTIM_FILE), optimBytes);
    files[OPTIM_FILE] = { bytes: optimBytes.byteLength, sha256: sha256(optimBytes) };
  }
  const manifest: CheckpointManifest = {
    format: 'pocketlm-checkpoint',
    version: 1,
    ...state,
    folder,
    files,
    model: { ...model },
    created: new Date().toISOString(),
  };
  writeFile(paths.manifest, JSON.stringify(manifest, null, 2) + '\n');
  removeOrphanCheckpoints(runDir, folder);
  return manifest;
}

/** Reads and checks checkpoint.json; null when the run has no checkpoint yet. */
export function readManifest(runDir: string): CheckpointManifest | null {
  const file = runPaths(runDir).manifest;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let m: CheckpointManifest;
  try {
    m = JSON.parse(text) as CheckpointManifest;
  } catch {
    throw new UserError(`${file} is corrupt (not valid JSON)`);
  }
  if (m?.format !== 'pocketlm-checkpoint' || m.version !== 1) throw new UserError(`${file} is not a pocketlm checkpoint manifest (format/version)`);
  if (!Number.isInteger(m.step) || typeof m.folder !== 'string' || !isCheckpointFolderName(m.folder) || typeof m.files !== 'object' || typeof m.model !== 'object') {
    throw new UserError(`${file} is corrupt (missing or bad fields)`);
  }
  return m;
}

/** One line naming the first difference between two model configs, or null when they agree. */
export function modelConfigDifference(saved: ModelConfigLike, wanted: ModelConfigLike): string | null {
  const keys = [...new Set([...Object.keys(wanted), ...Object.keys(saved)])].sort();
  for (const k of keys) {
    if (saved[k] !== wanted[k]) return `model.${k} is ${JSON.stringify(saved[k])} in the checkpoint but ${JSON.stringify(wanted[k])} in the config`;
  }
  return null;
}

function readVerified(runDir: string, m: CheckpointManifest, name: string): StFile {
  const file = path.join(runDir, m.folder, name);
  const want = m.files[name];
  if (!want) throw new UserError(`${runPaths(runDir).manifest} does not list ${name}`);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`checkpoint file ${file} is missing`);
    throw e;
  }
  if (bytes.byteLength !== want.bytes) throw new UserError(`checkpoint file ${file} has ${bytes.byteLength} bytes, expected ${want.bytes} (truncated or replaced)`);
  if (sha256(bytes) !== want.sha256) throw new UserError(`checkpoint file ${file} is corrupt (sha256 does not match the manifest)`);
  return decodeSafetensors(bytes, file);
}

/**
 * Copies named weights into the flat buffer, checking every tensor is present with the
 * model's shape. Used for checkpoints and for any safetensors file with our tensor names.
 */
export function loadWeightsInto(file: StFile, source: string, tensors: readonly TensorSlot[], weights: FloatArray): void {
  const expected = new Set(tensors.map((t) => t.name));
  for (const name of file.tensors.keys()) {
    if (!expected.has(name)) throw new UserError(`${source} holds tensor "${name}", which this model does not have (different model config?)`);
  }
  for (const t of tensors) {
    const got = file.tensors.get(t.name);
    if (!got) throw new UserError(`${source} lacks tensor "${t.name}" (different model config?)`);
    if (got.dtype === 'I32' || got.dtype === 'U8') throw new UserError(`${source}: tensor "${t.name}" has dtype ${got.dtype}, expected a float type (F32, F16, BF16, F64)`);
    if (got.shape.length !== t.shape.length || got.shape.some((d, i) => d !== t.shape[i])) {
      throw new UserError(`${source}: tensor "${t.name}" has shape [${got.shape.join(', ')}], the model expects [${t.shape.join(', ')}]`);
    }
    weights.set(toFloat32(got), t.offset);
  }
}

/** Whether a checkpoint carries optimizer state (a run's own checkpoints do; best/ and imports do not). */
export function hasOptimizerState(m: CheckpointManifest): boolean {
  return m.files[OPTIM_FILE] !== undefined;
}

/**
 * Loads the latest checkpoint of `runDir` into the given buffers after checking the model
 * config, every file's size and hash, and every tensor's name and shape. With `optimState`
 * given (resume), the optimizer buffers and the training weights are restored too, except for an
 * imported checkpoint (manifest `imported`, weights only), whose optimizer state stays fresh.
 * Returns null when the run has no checkpoint.
 */
export function loadCheckpoint(
  runDir: string,
  model: ModelConfigLike,
  target: { tensors: readonly TensorSlot[]; weights: FloatArray; optimState?: Readonly<Record<string, FloatArray>>; optimizer?: string },
): CheckpointManifest | null {
  const m = readManifest(runDir);
  if (!m) return null;
  const diff = modelConfigDifference(m.model, model);
  if (diff) throw new UserError(`checkpoint in ${runDir} does not match: ${diff}`);
  const weights = readVerified(runDir, m, MODEL_FILE);
  loadWeightsInto(weights, path.join(runDir, m.folder, MODEL_FILE), target.tensors, target.weights);
  if (target.optimState && !hasOptimizerState(m) && m.imported) {
    // An imported model: training continues from these weights with fresh optimizer state.
    return m;
  }
  if (target.optimState) {
    if (target.optimizer !== undefined && m.optimizer !== target.optimizer) {
      throw new UserError(`checkpoint in ${runDir} was trained with optimizer "${m.optimizer}" but the config says "${target.optimizer}"`);
    }
    const source = path.join(runDir, m.folder, OPTIM_FILE);
    if (!m.files[OPTIM_FILE]) throw new UserError(`the checkpoint in ${runDir} holds weights only (no optimizer state): training cannot continue from it`);
    const optim = readVerified(runDir, m, OPTIM_FILE);
    for (const [k, buf] of Object.entries(target.optimState)) {
      const got = optim.tensors.get(k);
      if (!got || got.data.length !== buf.length) throw new UserError(`${source} lacks optimizer state "${k}" of ${buf.length} values`);
      buf.set(got.data as Float32Array);
    }
    // Schedule-Free trains on y but exports x: y is kept beside the optimizer state.
    const tw = optim.tensors.get(TRAIN_WEIGHTS);
    if (tw) {
      if (tw.data.length !== target.weights.length) throw new UserError(`${source}: training weights have ${tw.data.length} values, expected ${target.weights.length}`);
      target.weights.set(tw.data as Float32Array);
    }
  }
  return m;
}

/**
 * The best checkpoint of a run: `<run>/best/`, laid out like the run's own checkpoint
 * (`best/checkpoint.json` naming a complete `best/ckpt-NNNNNN/`, the manifest replaced last,
 * so a crash keeps the previous best), with the weights only and the validation loss and bits
 * per byte in the manifest. The trainer writes it at each evaluation that lowers the
 * validation loss, and only then.
 */
export function bestCheckpointDir(runDir: string): string {
  return path.join(runDir, 'best');
}

/** Saves the evaluation weights as the run's best; `state` carries their val_loss and val_bpb. */
export function saveBestCheckpoint(
  runDir: string,
  model: ModelConfigLike,
  bufs: { tensors: readonly TensorSlot[]; weights: FloatArray },
  state: CheckpointState & { val_loss: number; val_bpb: number },
  writeFile: WriteFile = writeFileAtomicSync,
): CheckpointManifest {
  return saveCheckpoint(bestCheckpointDir(runDir), model, { tensors: bufs.tensors, weights: bufs.weights }, state, writeFile);
}

/** The best checkpoint's manifest, or null when no evaluation has written one. */
export function readBestManifest(runDir: string): CheckpointManifest | null {
  return readManifest(bestCheckpointDir(runDir));
}
