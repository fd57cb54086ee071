import type { Command } from 'commander';
import { BACKENDS } from '../train/config.js';
import { parseCheckpointChoice } from '../train/inference.js';
import { runStar, type StarRecord } from '../finetune/star.js';
import { choiceFlag, intFlag, MAX_THREADS, numberFlag as num, optional } from './flags.js';

interface StarFlags {
  run: string; out: string; iterations: string; samples: string; pool: string; steps: string; batch?: string; lr: string;
  prompts: string; temperature: string; topK: string; maxTokens: string; seed: string; control?: boolean; resume?: boolean;
  backend: string; threads?: string; checkpoint: string; examples: string; words?: string; minWords: string;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function starLine(r: StarRecord): string {
  const train = r.iteration === 0 ? 'base' : r.method === 'star-control'
    ? `${r.steps} steps on real stories, loss ${r.train_loss?.toFixed(4) ?? '-'}`
    : `kept ${r.kept}/${r.sampled} samples (${r.prompts_solved} prompts), ${r.steps} steps, loss ${r.train_loss?.toFixed(4) ?? '-'}`;
  return `iteration ${r.iteration}: ${train} | held-out ${r.heldout_successes}/${r.heldout_n} = ${pct(r.heldout_rate)} [${pct(r.heldout_low)}, ${pct(r.heldout_high)}] | val ${r.val_bpb.toFixed(4)} bits/byte | ${r.seconds.toFixed(0)}s`;
}

export function registerStar(program: Command): void {
  program
    .command('star')
    .description('STaR on the words task: sample stories for training prompts, keep those the verifier accepts, fine-tune on them; a new run folder')
    .requiredOption('--run <dir>', 'base run folder (trained with data.words_fraction > 0; never changed)')
    .requiredOption('--out <dir>', 'new run folder for the fine-tuned model, its log.jsonl and checkpoints')
    .option('--iterations <n>', 'iterations', '3')
    .option('--samples <k>', 'samples per training prompt', '4')
    .option('--pool <n>', 'training prompts (from training stories)', '128')
    .option('--steps <n>', 'fine-tuning steps per iteration', '50')
    .option('--batch <n>', 'rows per fine-tuning step (default: the run\'s train.batch_size)')
    .option('--lr <lr>', 'AdamW learning rate (constant; a fresh optimizer each iteration)', '3e-4')
    .option('--prompts <n>', 'held-out prompts (from validation stories)', '200')
    .option('--temperature <t>', 'sampling temperature', '0.8')
    .option('--top-k <k>', 'keep the k most likely tokens (0 = all)', '40')
    .option('--max-tokens <n>', 'tokens per story at most', '200')
    .option('--seed <s>', 'seed of every sample and batch order', '1')
    .option('--min-words <n>', 'a story must have at least this many words to succeed', '20')
    .option('--words <n>', 'required words per prompt (default: as many as the training documents had)')
    .option('--control', 'the control: fine-tune on the pool\'s real stories instead, the same number of steps')
    .option('--resume', 'continue the run in --out after its last finished iteration')
    .option('--examples <n>', 'held-out prompts and stories to print after each iteration', '0')
    .option('--backend <name>', 'auto | wasm | native | js', 'auto')
    .option('--threads <n>', 'kernel threads (default: one per core)')
    .option('--checkpoint <which>', 'base run weights: best or last', 'best')
    .action(async (f: StarFlags) => {
      const whole = (flag: string, v: string, min: number) => intFlag(flag, v, min);
      const opts = {
        iterations: whole('--iterations', f.iterations, 1),
        samples: whole('--samples', f.samples, 1),
        pool: whole('--pool', f.pool, 1),
        steps: whole('--steps', f.steps, 1),
        batch: 0,
        lr: num('--lr', f.lr, (n) => n > 0 && n < 1, 'a number in (0, 1)'),
        prompts: whole('--prompts', f.prompts, 1),
        temperature: num('--temperature', f.temperature, (n) => n > 0, 'a number > 0'),
        topK: whole('--top-k', f.topK, 0),
        maxTokens: whole('--max-tokens', f.maxTokens, 1),
        seed: intFlag('--seed', f.seed, 0, 2 ** 32 - 1),
        control: f.control === true,
        words: optional(f.words, (v) => whole('--words', v, 1)) ?? 0,
        minWords: whole('--min-words', f.minWords, 0),
      };
      const examples = whole('--examples', f.examples, 0);
      const backend = choiceFlag('--backend', f.backend, BACKENDS);
      const threads = optional(f.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS));
      const checkpoint = parseCheckpointChoice('--checkpoint', f.checkpoint);
      opts.batch = f.batch !== undefined ? whole('--batch', f.batch, 1) : 0;
      await runStar({ baseRun: f.run, outDir: f.out, resume: f.resume === true, backend, threads, checkpoint }, opts, (e) => {
        if (e.type === 'start') {
          console.log(`${opts.control ? 'STaR control' : 'STaR'}: ${e.pool} training prompts, ${e.heldOut} held-out prompts${e.resumedAt !== null ? `; resuming after iteration ${e.resumedAt}` : ''}`);
          return;
        }
        console.log(starLine(e.record));
        for (const x of e.examples.slice(0, examples)) console.log(`  [${x.ok ? 'ok' : 'no'}] Words: ${x.words.join(', ')}\n    ${x.story.replace(/\n/g, ' ')}`);
      });
    });
}
