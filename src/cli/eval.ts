import type { Command } from 'commander';
import { openRun, parseCheckpointChoice, evaluateRun } from '../train/inference.js';
import { BACKENDS } from '../train/config.js';
import { choiceFlag, intFlag, MAX_THREADS, optional } from './flags.js';
import { evaluateWordsTask } from '../finetune/star.js';

interface EvalFlags {
  run: string;
  data?: string[];
  batches?: string;
  json?: boolean;
  backend: string;
  threads?: string;
  checkpoint: string;
  task?: string;
  prompts: string;
  seed: string;
  show: string;
  words?: string;
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
    .option('--task <name>', 'words: the success rate on held-out words-task prompts (a run trained with data.words_fraction)')
    .option('--prompts <n>', '--task words: held-out prompts (one story each)', '200')
    .option('--seed <s>', '--task words: seed of the stories', '1')
    .option('--words <n>', '--task words: required words per prompt (default: as many as the training documents had)')
    .option('--show <n>', '--task words: prompts and stories to print', '0')
    .action(async (f: EvalFlags) => {
      if (f.task !== undefined) {
        choiceFlag('--task', f.task, ['words'] as const);
        const r = await evaluateWordsTask(f.run, {
          prompts: intFlag('--prompts', f.prompts, 1), words: optional(f.words, (v) => intFlag('--words', v, 1)), seed: intFlag('--seed', f.seed, 0, 2 ** 32 - 1),
          checkpoint: parseCheckpointChoice('--checkpoint', f.checkpoint), backend: choiceFlag('--backend', f.backend, BACKENDS),
          threads: optional(f.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS)),
        });
        if (r.notice) console.error(`note: ${r.notice}`);
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        if (f.json) {
          console.log(JSON.stringify({ run: f.run, task: 'words', checkpoint: r.checkpoint, step: r.step, prompts: r.n, successes: r.successes, rate: r.rate, ci95: [r.low, r.high] }));
        } else {
          console.log(`run ${f.run}, ${r.checkpoint} checkpoint at step ${r.step}, words task on ${r.n} held-out prompts (validation stories)`);
          console.log(`success ${r.successes}/${r.n} = ${pct(r.rate)} (95% CI ${pct(r.low)} to ${pct(r.high)}, Wilson)`);
          for (const x of r.results.slice(0, intFlag('--show', f.show, 0))) console.log(`[${x.ok ? 'ok' : 'no'}] Words: ${x.words.join(', ')}\n  ${x.story.replace(/\n/g, ' ')}`);
        }
        return;
      }
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
