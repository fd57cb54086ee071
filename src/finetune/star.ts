import { promptsFromStories, verifyStory, type WordsPrompt } from '../tasks/words.js';
import { runPaths } from '../train/run.js';
import type { CheckpointChoice } from '../train/inference.js';
import type { BackendChoice } from '../kernels/index.js';
import {
  appendLog, baseBatchSize, openTask, iterationsDone, stepsDone, openFinetune, promptTokens, readWordsFile, sampleContinuations, saveIteration, scoreWords, seedFor,
  settleState, splitStories, supervisedSteps, truncateIterationLog, validate, type FinetuneCommon, type SampleOptions, type WordsScore,
} from './context.js';
import type { Example } from './sequences.js';

/**
 * STaR (Zelikman et al. 2022) on the words task: each iteration samples `samples` stories for each
 * prompt of a training pool (prompts from training stories), keeps those the verifier accepts,
 * fine-tunes the current model on them for `steps` steps with the loss on the story tokens only
 * (the prompt masked), then measures the held-out success rate (prompts from validation stories,
 * one sample each, the same seeds every iteration) and the validation bits per byte on plain
 * stories. `control` runs the same loop but fine-tunes on the pool's real stories (the human
 * ones the words came from) for the same number of steps: the honest baseline.
 *
 * Every random choice is a function of (seed, iteration), and each iteration starts a fresh
 * optimizer from the weights of the previous one, so a run resumed after a kill (from the
 * checkpoint written after each iteration) logs what an uninterrupted one does.
 */
export interface StarOptions {
  iterations: number;
  /** Samples per pool prompt. */
  samples: number;
  /** Training prompts in the pool. */
  pool: number;
  /** Optimizer steps per iteration. */
  steps: number;
  /** Rows per fine-tuning batch (0: the base run's train.batch_size). */
  batch: number;
  lr: number;
  /** Held-out prompts (from validation stories). */
  prompts: number;
  temperature: number;
  topK: number;
  maxTokens: number;
  seed: number;
  control: boolean;
  /** Required words per prompt (0: the dataset's words.json count, what the base saw in training). */
  words: number;
  /** The verifier's "enough words" (default WORDS_MIN_WORDS). */
  minWords?: number;
}

export interface StarRecord {
  iteration: number;
  method: 'star' | 'star-control';
  /** Pool samples drawn / accepted by the verifier (0 / 0 at iteration 0 and in the control). */
  sampled: number;
  kept: number;
  /** Distinct pool prompts with at least one accepted sample. */
  prompts_solved: number;
  steps: number;
  train_loss: number | null;
  heldout_n: number;
  heldout_successes: number;
  heldout_rate: number;
  heldout_low: number;
  heldout_high: number;
  val_loss: number;
  val_bpb: number;
  seconds: number;
}

export type StarEvent =
  | { type: 'start'; /** The last iteration finished before this resume, or null for a new run. */ resumedAt: number | null; pool: number; heldOut: number }
  | { type: 'record'; record: StarRecord; examples: WordsScore['results'] };

/** Held-out prompts: the first `n` validation stories with enough content words. */
export function heldOutPrompts(stories: readonly string[], vocabulary: readonly string[], count: number, n: number): WordsPrompt[] {
  return promptsFromStories(stories, new Set(vocabulary), count, n, 'held-out');
}

/** Fixed sampling of the held-out evaluation (`pocketlm eval --task words` and STaR's defaults). */
export const WORDS_EVAL_SAMPLING: SampleOptions = { temperature: 0.8, topK: 40, maxTokens: 200 };
/** A successful story has at least this many words. */
export const WORDS_MIN_WORDS = 20;

/**
 * `pocketlm eval --task words`: one story for each of the first `prompts` held-out prompts
 * (validation stories), seeds from `seed`, the fixed sampling above; the success rate and its
 * Wilson 95% interval.
 */
export async function evaluateWordsTask(
  runDir: string, o: { prompts: number; seed: number; words?: number; checkpoint?: CheckpointChoice; backend?: BackendChoice; threads?: number },
): Promise<WordsScore & { notice: string | null; checkpoint: CheckpointChoice; step: number }> {
  const t = await openTask(runDir, o);
  try {
    const held = heldOutPrompts(splitStories(t, 'val'), t.words.vocabulary, o.words || t.words.count, o.prompts);
    const score = scoreWords(t, held, o.seed, WORDS_EVAL_SAMPLING, WORDS_MIN_WORDS);
    return { ...score, notice: t.run.notice, checkpoint: t.run.checkpoint, step: t.run.manifest.step };
  } finally {
    await t.close();
  }
}

export async function runStar(c: FinetuneCommon, o: StarOptions, onEvent: (e: StarEvent) => void): Promise<StarRecord[]> {
  const ctx = await openFinetune(c, o.batch > 0 ? o.batch : baseBatchSize(c.baseRun));
  try {
    settleState(ctx, c, 'star', o);
    const words = readWordsFile(ctx.datasetDir, c.baseRun);
    const vocab = new Set(words.vocabulary);
    const minWords = o.minWords ?? WORDS_MIN_WORDS;
    const T = ctx.run.config.model.seq_len;
    const sampleOpts: SampleOptions = { temperature: o.temperature, topK: o.topK, maxTokens: o.maxTokens };
    const count = o.words || words.count;
    const held = heldOutPrompts(splitStories(ctx, 'val'), words.vocabulary, count, o.prompts);
    const pool = promptsFromStories(splitStories(ctx, 'train'), vocab, count, o.pool, 'star-pool');
    const log = runPaths(c.outDir).log;
    const done = c.resume ? iterationsDone(c.outDir) : -1;
    truncateIterationLog(log, done);
    onEvent({ type: 'start', resumedAt: done < 0 ? null : done, pool: pool.length, heldOut: held.length });
    const records: StarRecord[] = [];
    const t0 = Date.now();
    let totalSteps = c.resume ? stepsDone(c.outDir) : 0;
    const measure = (iteration: number, sampled: number, kept: number, solved: number, steps: number, trainLoss: number): StarRecord => {
      const score = scoreWords(ctx, held, o.seed, sampleOpts, minWords);
      const val = validate(ctx);
      const record: StarRecord = {
        iteration, method: o.control ? 'star-control' : 'star', sampled, kept, prompts_solved: solved, steps,
        train_loss: Number.isFinite(trainLoss) ? trainLoss : null,
        heldout_n: score.n, heldout_successes: score.successes, heldout_rate: score.rate, heldout_low: score.low, heldout_high: score.high,
        val_loss: val.loss, val_bpb: val.bpb, seconds: (Date.now() - t0) / 1000,
      };
      appendLog(log, record);
      saveIteration(ctx, c.outDir, 'star', iteration, totalSteps, totalSteps * o.batch * T, record.seconds, val);
      records.push(record);
      onEvent({ type: 'record', record, examples: score.results });
      return record;
    };
    if (done < 0) measure(0, 0, 0, 0, 0, Number.NaN);
    for (let it = Math.max(1, done + 1); it <= o.iterations; it++) {
      let examples: Example[];
      let sampled = 0;
      let solved = 0;
      if (o.control) {
        examples = pool.map((p) => ({ prompt: promptTokens(ctx, p.words), completion: [...ctx.run.tokenizer.encode(` ${p.story}`), ctx.run.tokenizer.eotId] }));
      } else {
        const prompts: number[][] = [];
        const seeds: number[] = [];
        const owner: number[] = [];
        pool.forEach((p, i) => {
          const toks = promptTokens(ctx, p.words);
          for (let j = 0; j < o.samples; j++) {
            prompts.push(toks);
            seeds.push(seedFor(o.seed, it, i * o.samples + j));
            owner.push(i);
          }
        });
        const gens = sampleContinuations(ctx, prompts, seeds, sampleOpts);
        sampled = gens.length;
        examples = [];
        const solvedSet = new Set<number>();
        gens.forEach((g, k) => {
          const story = ctx.run.tokenizer.decode(g);
          if (!verifyStory(pool[owner[k]!]!.words, story, { minWords }).ok) return;
          solvedSet.add(owner[k]!);
          // the sampled tokens themselves, ended as a story ends (when it did not run out of room)
          const ended = g.length < Math.min(o.maxTokens, T - prompts[k]!.length + 1);
          examples.push({ prompt: prompts[k]!, completion: ended ? [...g, ctx.run.tokenizer.eotId] : g });
        });
        solved = solvedSet.size;
      }
      const steps = examples.length > 0 ? o.steps : 0;
      const trainLoss = supervisedSteps(ctx, examples, steps, o.lr, seedFor(o.seed, 1000 + it, 0));
      totalSteps += steps;
      measure(it, sampled, o.control ? 0 : examples.length, solved, steps, trainLoss);
    }
    return records;
  } finally {
    await ctx.close();
  }
}
