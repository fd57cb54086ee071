import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { UserError } from '../util/errors.js';
import { prepareDataset, DATASET_NAMES, DEFAULT_MAX_TRAIN_MB, type PrepareOptions } from '../data/index.js';
import { BPE_MAX_VOCAB, BPE_MIN_VOCAB } from '../train/config.js';
import { intFlag, MAX_THREADS, numberFlag, optional } from './flags.js';

interface PrepareFlags {
  dataset?: string; data?: string[]; val?: string[]; vocabSize: string; out?: string; tokenizer?: string;
  maxTrainMb: string; threads?: string; valFraction?: string; tokenizerTrainMb?: string; force?: boolean; json?: boolean;
}

const positiveMb = (flag: string) => (v: string): number => numberFlag(flag, v, (n) => n > 0, 'a number > 0');

export function registerPrepare(program: Command): void {
  program
    .command('prepare')
    .description('turn text into train.npy / val.npy (+ meta.json, tokenizer.json) for training')
    .option('--dataset <name>', 'tinystories (downloaded; without network the bundled sample), tinystories-sample or moby-dick (bundled, offline)')
    .option('--data <paths...>', 'text files, folders or globs (.txt with <|endoftext|> lines or blank-line paragraphs, .jsonl with "text")')
    .option('--val <paths...>', 'validation files (default: a 2% hash split of the documents, or the TinyStories validation file)')
    .option('--vocab-size <n>', 'vocabulary of the tokenizer to train', '1024')
    .option('--out <dir>', 'output folder (default: under the cache, keyed by inputs and options)')
    .option('--tokenizer <file>', 'use this tokenizer.json (or gpt2) instead of training one')
    .option('--max-train-mb <n>', 'TinyStories: MB of the train file to download', String(DEFAULT_MAX_TRAIN_MB))
    .option('--threads <n>', 'tokenizer worker threads')
    .option('--val-fraction <f>', 'share of documents for validation when no validation file is given (default 0.02; moby-dick 0.05)')
    .option('--tokenizer-train-mb <n>', 'MB of train text the tokenizer learns from', '20')
    .option('--force', 'prepare again even if the output is up to date')
    .option('--json', 'print meta.json instead of a summary')
    .action(async (f: PrepareFlags) => {
      if (f.dataset && !(DATASET_NAMES as readonly string[]).includes(f.dataset)) {
        throw new UserError(`unknown dataset "${f.dataset}" (known: ${DATASET_NAMES.join(', ')})`);
      }
      const opts: PrepareOptions = {
        dataset: f.dataset as PrepareOptions['dataset'],
        data: f.data, val: f.val, out: f.out, tokenizer: f.tokenizer, force: f.force,
        // a given tokenizer decides the vocabulary: --vocab-size is then not used
        vocabSize: f.tokenizer ? Number(f.vocabSize) : intFlag('--vocab-size', f.vocabSize, BPE_MIN_VOCAB, BPE_MAX_VOCAB),
        maxTrainMb: optional(f.maxTrainMb, positiveMb('--max-train-mb')),
        threads: optional(f.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS)),
        valFraction: optional(f.valFraction, (v) => numberFlag('--val-fraction', v, (n) => n > 0 && n < 0.5, 'a number in (0, 0.5)')),
        tokenizerTrainMb: optional(f.tokenizerTrainMb, positiveMb('--tokenizer-train-mb')),
      };
      const bar = phaseProgress();
      let r;
      try {
        r = await prepareDataset(opts, (ev) => bar.update(ev));
      } finally {
        bar.stop();
      }
      if (f.json) { console.log(JSON.stringify({ dir: r.dir, reused: r.reused, meta: r.meta }, null, 2)); return; }
      const m = r.meta;
      console.log(`${r.reused ? 'up to date' : 'prepared'}: ${r.dir}`);
      console.log(`source:    ${m.source}`);
      console.log(`tokenizer: vocab ${m.vocabSize}, ${m.tokenizer.origin}, sha256 ${m.tokenizer.hash.slice(0, 16)}`);
      for (const s of ['train', 'val'] as const) {
        const x = m.splits[s];
        console.log(`${s.padEnd(5)}      ${x.documents.toLocaleString('en-US')} documents, ${x.tokens.toLocaleString('en-US')} tokens, ${x.bytes.toLocaleString('en-US')} bytes (${(x.bytes / x.tokens).toFixed(2)} bytes/token)`);
      }
      console.log(`validation: ${m.valRule}`);
    });
}

// ---------------------------------------------------------------- progress display

/** Progress events from the data layer ({ phase, done, total }, or a notice line for the user). */
interface PhaseEvent { phase: string; done: number; total: number; notice?: string }

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

/**
 * Draws data-layer progress on stderr: a cli-progress bar per phase on a terminal (bytes,
 * rate and ETA for downloads; counts otherwise), one line per phase when not a terminal.
 */
function phaseProgress(stream: NodeJS.WriteStream = process.stderr): { update(ev: PhaseEvent): void; stop(): void } {
  let bar: cliProgress.SingleBar | null = null;
  let phase = '';
  let t0 = 0;
  const isBytes = (p: string) => p.startsWith('download');
  const stop = (): void => {
    bar?.stop();
    bar = null;
  };
  return {
    update(ev: PhaseEvent): void {
      if (ev.notice) {
        stop();
        phase = '';
        stream.write(`note: ${ev.notice}\n`);
        return;
      }
      if (ev.phase !== phase) {
        stop();
        phase = ev.phase;
        t0 = Date.now();
        if (!stream.isTTY) { stream.write(`${ev.phase}...\n`); return; }
        const fmt = isBytes(ev.phase)
          ? `${ev.phase} |{bar}| {percentage}% {doneText}/{totalText} {rate} ETA {eta_formatted}`
          : ev.total > 0 ? `${ev.phase} |{bar}| {percentage}% {value}/{total} ETA {eta_formatted}` : `${ev.phase}: {value}`;
        bar = new cliProgress.SingleBar({ format: fmt, stream, hideCursor: true, clearOnComplete: false, etaBuffer: 50 }, cliProgress.Presets.shades_classic);
        bar.start(Math.max(ev.total, 1), ev.done, { doneText: mb(ev.done), totalText: mb(ev.total), rate: '' });
      }
      if (!bar) return;
      if (ev.total > 0 && bar.getTotal() !== ev.total) bar.setTotal(ev.total);
      const secs = (Date.now() - t0) / 1000;
      bar.update(ev.done, { doneText: mb(ev.done), totalText: mb(ev.total), rate: secs > 0.5 ? `${mb(ev.done / secs)}/s` : '' });
    },
    stop,
  };
}
