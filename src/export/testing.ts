// Helpers shared by the export tests (imported only by *.test.ts).
import path from 'node:path';
import { tinystoriesSampleDir } from '../util/paths.js';
import { loadConfig, type RunConfig } from '../train/config.js';
import { train } from '../train/trainer.js';

const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');

/** A tiny untied AdamW config (wasm, one thread, 512 ids) trained on the sample's validation file. */
export function tinyExportConfig(o: { seqLen: number; steps: number; set?: string[] }): RunConfig {
  return loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=512', 'model.tie_embeddings=false', 'model.d_model=32', 'model.n_layer=2', 'model.n_head=2', `model.seq_len=${o.seqLen}`, 'model.ffn_hidden=64',
      'train.batch_size=4', 'train.grad_accum=1', 'train.time_seconds=0', `train.steps=${o.steps}`, `train.eval_every=${Math.max(1, Math.floor(o.steps / 2))}`, 'train.eval_batches=2',
      'train.log_every=1', 'train.checkpoint_minutes=0', 'train.sample_tokens=0', 'train.backend="wasm"', 'train.threads=1',
      'optim.warmup_steps=5', `data.paths=[${JSON.stringify(DATA)}]`,
      ...(o.set ?? []),
    ],
  });
}

/**
 * Trains the two runs every export test checks, in `work`: `untied` (AdamW) and `tied`
 * (Schedule-Free, whose checkpoint must hold, and whose export must carry, the evaluation weights x).
 */
export async function trainTiedAndUntied(work: string, o: { seqLen: number; steps: number; set?: string[] }): Promise<{ untied: string; tied: string }> {
  const runs = { untied: path.join(work, 'untied'), tied: path.join(work, 'tied') };
  await train({ config: tinyExportConfig(o), runDir: runs.untied, resume: false }, () => {}, () => false);
  await train({ config: tinyExportConfig({ ...o, set: [...(o.set ?? []), 'model.tie_embeddings=true', 'optim.name="sfadamw"'] }), runDir: runs.tied, resume: false }, () => {}, () => false);
  return runs;
}
