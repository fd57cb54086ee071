import type { Command } from 'commander';
import { openRun, parseCheckpointChoice, generateText } from '../train/inference.js';
import { BACKENDS } from '../train/config.js';
import { choiceFlag, intFlag, MAX_THREADS, numberFlag as num, optional } from './flags.js';

interface SampleFlags {
  run: string;
  prompt: string;
  maxTokens: string;
  temperature: string;
  topK: string;
  topP: string;
  seed: string;
  all?: boolean;
  backend: string;
  threads?: string;
  checkpoint: string;
}

export function registerSample(program: Command): void {
  program
    .command('sample')
    .description('generate text from a trained run, streamed as it is produced')
    .requiredOption('--run <dir>', 'run folder (holds config.toml, tokenizer.json and the checkpoint)')
    .option('--prompt <text>', 'text to continue', '')
    .option('--max-tokens <n>', 'tokens to generate at most', '200')
    .option('--temperature <t>', '0 = greedy', '0.8')
    .option('--top-k <k>', 'keep the k most likely tokens (0 = all)', '40')
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', '1')
    .option('--seed <s>', 'random seed', '1')
    .option('--all', 'keep going past <|endoftext|> (the end of a story)')
    .option('--backend <name>', 'auto | wasm | native | js', 'auto')
    .option('--threads <n>', 'kernel threads (default: one per core)')
    .option('--checkpoint <which>', 'best (the lowest validation loss; the last when there is none yet) or last', 'best')
    .action(async (f: SampleFlags) => {
      const req = {
        prompt: f.prompt,
        maxTokens: num('--max-tokens', f.maxTokens, (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1'),
        temperature: num('--temperature', f.temperature, (n) => n >= 0, 'a number >= 0'),
        topK: num('--top-k', f.topK, (n) => Number.isInteger(n) && n >= 0, 'a whole number >= 0'),
        topP: num('--top-p', f.topP, (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
        seed: num('--seed', f.seed, (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'a whole number in [0, 2^32)'),
        stopAtEnd: !f.all,
      };
      const backend = choiceFlag('--backend', f.backend, BACKENDS);
      const threads = optional(f.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS));
      const checkpoint = parseCheckpointChoice('--checkpoint', f.checkpoint);
      const run = await openRun(f.run, { backend, threads, batchSize: 1, checkpoint });
      try {
        if (run.notice) console.error(`note: ${run.notice}`);
        process.stdout.write(req.prompt);
        for (const piece of generateText(run, req)) process.stdout.write(piece);
        process.stdout.write('\n');
      } finally {
        await run.close();
      }
    });
}
