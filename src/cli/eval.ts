import type { Command } from 'commander';
import { openRun, parseCheckpointChoice, evaluateRun } from '../train/inference.js';
import { BACKENDS } from '../train/config.js';
import { choiceFlag, intFlag, MAX_THREADS, optional } from './flags.js';

interface EvalFlags {
  run: string;
  data?: string[];
  batches?: string;
  json?: boolean;
  backend: string;
  threads?: string;
  checkpoint: string;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('validation loss and bits per byte of a trained run')
    .requiredOption('--run <dir>', 'run folder')
    .option('--data <paths...>', 'evaluate on these text files instead of the run\'s validation split')
    .option('--batches <n>', 'batches of windows to evaluate (default: train.eval_batches, the windows of the training log)')
    .option('--json', 'print one JSON object')
    .option('--backend <name>', 'auto | wasm | native | js', 'auto')
    .option('--threads <n>', 'kernel threads (default: one per core)')
    .option('--checkpoint <which>', 'best (the lowest validation loss; the last when there is none yet) or last', 'best')
    .action(async (f: EvalFlags) => {
      const batches = optional(f.batches, (v) => intFlag('--batches', v, 1));
      const backend = choiceFlag('--backend', f.backend, BACKENDS);
      const threads = optional(f.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS));
      const checkpoint = parseCheckpointChoice('--checkpoint', f.checkpoint);
      const run = await openRun(f.run, { backend, threads, checkpoint });
      try {
        if (run.notice) console.error(`note: ${run.notice}`);
        const r = evaluateRun(run, { data: f.data, batches });
        if (f.json) {
          console.log(JSON.stringify({ run: f.run, checkpoint: run.checkpoint, step: run.manifest.step, source: r.source, windows: r.windows, val_loss: r.loss, val_bpb: r.bpb }));
        } else {
          console.log(`run ${f.run}, ${run.checkpoint} checkpoint at step ${run.manifest.step}, ${r.windows} windows of ${run.config.model.seq_len} tokens from ${r.source}`);
          console.log(`val loss ${r.loss.toFixed(4)} nats/token, ${r.bpb.toFixed(4)} bits/byte`);
        }
      } finally {
        await run.close();
      }
    });
}
