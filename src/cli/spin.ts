import type { Command } from 'commander';
import { BACKENDS } from '../train/config.js';
import { parseCheckpointChoice } from '../train/inference.js';
import { runSpin, type SpinRecord } from '../finetune/spin.js';
import { choiceFlag, intFlag, MAX_THREADS, numberFlag as num, optional } from './flags.js';

interface SpinFlags {
  run: string; out: string; iterations: string; pairs: string; batchPairs: string; steps: string; lambda: string; lr: string;
  promptWords: string; evalPairs: string; temperature: string; topK: string; maxTokens: string; seed: string;
  control?: boolean; resume?: boolean; backend: string; threads?: string; checkpoint: string;
}

const f4 = (x: number | null) => (x === null ? '-' : x.toFixed(4));

export function spinLine(r: SpinRecord): string {
  const train = r.iteration === 0 ? 'base' : r.method === 'spin-control'
    ? `${r.steps} supervised steps on the real continuations`
    : `${r.steps} steps, loss ${f4(r.train_loss)}, margin ${f4(r.train_margin)}`;
  const held = r.val_margin === null ? '' : ` | held-out margin ${f4(r.val_margin)} (> 0 for ${(100 * r.val_margin_positive!).toFixed(0)}%)`;
  return `iteration ${r.iteration}: ${train}${held} | log p(real) - log p(synthetic) ${r.val_logp_gap.toFixed(2)} | val ${r.val_bpb.toFixed(4)} bits/byte | ${r.seconds.toFixed(0)}s`;
}

export function registerSpin(program: Command): void {
  program
    .command('spin')
    .description('SPIN: real vs self-generated continuations of training stories, against the frozen previous iterate; a new run folder')
    .requiredOption('--run <dir>', 'base run folder (never changed)')
    .requiredOption('--out <dir>', 'new run folder for the fine-tuned model, its log.jsonl and checkpoints')
    .option('--iterations <n>', 'iterations', '2')
    .option('--pairs <n>', 'training pairs (training stories)', '128')
    .option('--batch-pairs <n>', 'pairs per step (twice as many rows)', '4')
    .option('--steps <n>', 'optimizer steps per iteration', '50')
    .option('--lambda <l>', 'the loss\'s lambda (scale of the log-ratio difference)', '0.1')
    .option('--lr <lr>', 'AdamW learning rate (constant; a fresh optimizer each iteration)', '3e-4')
    .option('--prompt-words <n>', 'opening words of a story that make the prompt', '8')
    .option('--eval-pairs <n>', 'held-out pairs (validation stories) for the margin', '64')
    .option('--temperature <t>', 'sampling temperature of the synthetic continuations', '1')
    .option('--top-k <k>', 'keep the k most likely tokens (0 = all)', '0')
    .option('--max-tokens <n>', 'tokens per continuation at most', '200')
    .option('--seed <s>', 'seed of every sample and batch order', '1')
    .option('--control', 'the control: continued supervised training on the real continuations, same steps and rows')
    .option('--resume', 'continue the run in --out after its last finished iteration')
    .option('--backend <name>', 'auto | wasm | native | js', 'auto')
    .option('--threads <n>', 'kernel threads (default: one per core)')
    .option('--checkpoint <which>', 'base run weights: best or last', 'best')
    .action(async (f: SpinFlags) => {
      const whole = (flag: string, v: string, min: number) => intFlag(flag, v, min);
      const opts = {
        iterations: whole('--iterations', f.iterations, 1),
        pairs: whole('--pairs', f.pairs, 1),
        batchPairs: whole('--batch-pairs', f.batchPairs, 1),
        steps: whole('--steps', f.steps, 1),
        lambda: num('--lambda', f.lambda, (n) => n > 0, 'a number > 0'),
        lr: num('--lr', f.lr, (n) => n > 0 && n < 1, 'a number in (0, 1)'),
        promptWords: whole('--prompt-words', f.promptWords, 1),
        evalPairs: whole('--eval-pairs', f.evalPairs, 1),
        temperature: num('--temperature', f.temperature, (n) => n > 0, 'a number > 0'),
        topK: whole('--top-k', f.topK, 0),
        maxTokens: whole('--max-tokens', f.maxTokens, 1),
        seed: intFlag('--seed', f.seed, 0, 2 ** 32 - 1),
        control: f.control === true,
      };
      const backend = choiceFlag('--backend', f.backend, BACKENDS);
      const threads = optional(f.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS));
      const checkpoint = parseCheckpointChoice('--checkpoint', f.checkpoint);
      await runSpin({ baseRun: f.run, outDir: f.out, resume: f.resume === true, backend, threads, checkpoint }, opts, (e) => {
        if (e.type === 'start') {
          console.log(`${opts.control ? 'SPIN control' : 'SPIN'}: ${e.pairs} training pairs, ${e.evalPairs} held-out pairs${e.resumedAt !== null ? `; resuming after iteration ${e.resumedAt}` : ''}`);
          return;
        }
        console.log(spinLine(e.record));
      });
    });
}
