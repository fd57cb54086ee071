import fs from 'node:fs';
import type { ModelConfig } from '../model/config.js';
import { planLayout } from '../model/layout.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { loadConfig, type RunConfig } from '../train/config.js';
import { loadCheckpoint, type CheckpointManifest } from '../train/checkpoint.js';
import { chooseCheckpoint, type CheckpointChoice } from '../train/inference.js';
import { runPaths } from '../train/run.js';

/** A run's weights as an exporter needs them: no backend, no arena, just the flat float32 buffer. */
export interface RunWeights {
  runDir: string;
  config: RunConfig;
  model: ModelConfig;
  tokenizer: Tokenizer;
  manifest: CheckpointManifest;
  /** Our flat layout (src/model/layout.ts); the evaluation weights (Schedule-Free's x). */
  params: Float32Array;
  checkpoint: CheckpointChoice;
  /** Set when `best` was asked and the run has none yet: the last checkpoint was used. */
  notice: string | null;
}

/**
 * Reads config.toml, tokenizer.json and the chosen checkpoint of a run (verified like `sample`
 * does: model config, sizes, sha256, tensor names and shapes). The checkpoint's model.safetensors
 * holds the evaluation weights, which for Schedule-Free is the averaged x (the trainer saves
 * after evalParams()), so exports are of x.
 */
export async function readRunWeights(runDir: string, which: CheckpointChoice = 'best'): Promise<RunWeights> {
  const paths = runPaths(runDir);
  if (!fs.existsSync(runDir)) throw new UserError(`run folder ${runDir} does not exist`);
  if (!fs.existsSync(paths.config)) throw new UserError(`${runDir} is not a pocketlm run folder (no config.toml)`);
  const config = loadConfig({ file: paths.config });
  if (!fs.existsSync(paths.tokenizer)) throw new UserError(`${runDir} has no tokenizer.json`);
  const tokenizer = await loadTokenizer(paths.tokenizer);
  const chosen = chooseCheckpoint(runDir, which);
  const layout = planLayout(config.model);
  const params = new Float32Array(layout.numParams);
  const manifest = loadCheckpoint(chosen.dir, config.model as unknown as Record<string, number | boolean | string>, { tensors: layout.tensors, weights: params });
  if (!manifest) throw new UserError(`${runDir} has no checkpoint yet (train it first)`);
  const notice = chosen.notice === null ? null : `${chosen.notice} (step ${manifest.step})`;
  return { runDir, config, model: config.model, tokenizer, manifest, params, checkpoint: chosen.which, notice };
}
