import { GPT } from '../model/gpt.js';
import { UserError } from '../util/errors.js';
import { runPaths } from '../train/run.js';
import { clipGradNorm } from '../optim/index.js';
import { SeededRng } from '../train/rng.js';
import {
  appendLog, iterationsDone, newOptimizer, openFinetune, sampleContinuations, saveIteration, seedFor, settleState,
  shuffled, splitStories, stepsDone, supervisedSteps, truncateIterationLog, validate, type FinetuneCommon, type FinetuneContext, type SampleOptions,
} from './context.js';
import { writeRow, type Example } from './sequences.js';
import { spinTerms } from './spin-loss.js';

/**
 * SPIN (Chen et al. 2024) as published: the prompt is the opening words of a training story, the
 * real continuation the human rest of it, the synthetic one a sample of the previous iterate.
 * Each iteration freezes the current weights as the reference (a forward-only copy: no gradient
 * or optimizer memory), samples the synthetic continuations from it, then takes `steps` steps of
 * the logistic loss of lambda times the difference of log-ratios against that reference
 * (spin-loss.ts): per-sequence signed weights on the summed cross-entropies of the real and the
 * synthetic rows of one forward. `control` runs continued supervised training on the real
 * continuations instead: the same pairs, steps and rows per step (the real continuation of each
 * pair twice), i.e. the same forward/backward compute, without the reference forward and the
 * sampling.
 */
export interface SpinOptions {
  iterations: number;
  /** Training pairs (training stories), the same every iteration. */
  pairs: number;
  /** Pairs per step (2 x this many rows). */
  batchPairs: number;
  steps: number;
  lambda: number;
  lr: number;
  /** Opening words of a story that make the prompt. */
  promptWords: number;
  /** Held-out pairs (validation stories) on which the margin is measured. */
  evalPairs: number;
  temperature: number;
  topK: number;
  maxTokens: number;
  seed: number;
  control: boolean;
}

export interface SpinRecord {
  iteration: number;
  method: 'spin' | 'spin-control';
  steps: number;
  /** Mean SPIN loss over the iteration's steps (null for the control and iteration 0). */
  train_loss: number | null;
  /** Mean margin t/lambda over the iteration's steps (training pairs). */
  train_margin: number | null;
  /**
   * On held-out pairs (validation stories, synthetic continuations sampled from the iterate the
   * iteration started from, which is also the reference): mean margin of the new weights, and
   * the share of pairs where it is > 0. Null at iteration 0 (the margin of the reference itself is 0).
   */
  val_margin: number | null;
  val_margin_positive: number | null;
  /** Mean log p(real) - log p(synthetic) per pair under the weights after the iteration (nats). */
  val_logp_gap: number;
  val_loss: number;
  val_bpb: number;
  seconds: number;
}

export type SpinEvent = { type: 'start'; /** The last iteration finished before this resume, or null for a new run. */ resumedAt: number | null; pairs: number; evalPairs: number } | { type: 'record'; record: SpinRecord };

interface Pair { prompt: number[]; real: number[]; synthetic: number[] }

/** Prompt (eot + opening words) and real continuation (the rest, then eot) of a story, cut to fit T + 1 tokens. */
function splitStory(ctx: FinetuneContext, story: string, promptWords: number): { prompt: number[]; real: number[] } | null {
  const m = story.trim().match(new RegExp(`^((?:\\S+\\s+){${promptWords}})([\\s\\S]+)$`));
  if (!m) return null;
  const tok = ctx.run.tokenizer;
  const T = ctx.run.config.model.seq_len;
  const prompt = [tok.eotId, ...tok.encode(m[1]!.trimEnd())];
  const real = [...tok.encode(` ${m[2]!.trim()}`), tok.eotId];
  if (prompt.length + 8 > T) return null;
  return { prompt, real: real.slice(0, T + 1 - prompt.length) };
}

function makePairs(ctx: FinetuneContext, stories: readonly string[], n: number, promptWords: number): { prompt: number[]; real: number[] }[] {
  const out: { prompt: number[]; real: number[] }[] = [];
  for (const s of stories) {
    if (out.length >= n) break;
    const p = splitStory(ctx, s, promptWords);
    if (p) out.push(p);
  }
  return out;
}

/** Synthetic continuations from the current weights, as long as the real one at most. */
function synthesize(ctx: FinetuneContext, pairs: { prompt: number[]; real: number[] }[], seed: number, stream: number, s: SampleOptions): Pair[] {
  const T = ctx.run.config.model.seq_len;
  const eot = ctx.run.tokenizer.eotId;
  const out: Pair[] = [];
  // one batched call; each continuation is then cut to its pair's budget (the tokens up to it are
  // the ones a call with that budget draws: the same rng, the same order)
  const gens = sampleContinuations(ctx, pairs.map((p) => p.prompt), pairs.map((_, i) => seedFor(seed, stream, i)), s);
  pairs.forEach((p, i) => {
    const budget = Math.min(p.real.length, T + 1 - p.prompt.length);
    const g = gens[i]!.slice(0, budget);
    out.push({ ...p, synthetic: g.length < budget ? [...g, eot] : g });
  });
  return out;
}

/** Summed log-probabilities of the completions of `rows` examples under `model` (one forward). */
function logProbs(ctx: FinetuneContext, model: GPT, rows: readonly Example[]): Float64Array {
  const T = ctx.run.config.model.seq_len;
  for (let r = 0; r < rows.length; r++) writeRow(rows[r]!, T, r, ctx.run.inputs, ctx.run.targets, ctx.run.tokenizer.eotId);
  model.forward(ctx.run.inputs, ctx.run.targets, rows.length, { reduction: 'sum' });
  return model.sequenceLogProbs();
}

/** Mean margin (and share > 0) of the current weights against `ref` on pairs, in batches of the model's rows. */
function margins(ctx: FinetuneContext, ref: GPT, pairs: readonly Pair[]): { margin: number; positive: number; gap: number } {
  const half = Math.floor(ctx.rows / 2);
  let sum = 0;
  let pos = 0;
  let gap = 0;
  for (let i = 0; i < pairs.length; i += half) {
    const chunk = pairs.slice(i, i + half);
    const rows: Example[] = [...chunk.map((p) => ({ prompt: p.prompt, completion: p.real })), ...chunk.map((p) => ({ prompt: p.prompt, completion: p.synthetic }))];
    const lp = logProbs(ctx, ctx.model, rows);
    const lr = logProbs(ctx, ref, rows);
    for (let j = 0; j < chunk.length; j++) {
      const m = lp[j]! - lr[j]! - (lp[chunk.length + j]! - lr[chunk.length + j]!);
      sum += m;
      if (m > 0) pos++;
      gap += lp[j]! - lp[chunk.length + j]!;
    }
  }
  return { margin: sum / pairs.length, positive: pos / pairs.length, gap: gap / pairs.length };
}

export async function runSpin(c: FinetuneCommon, o: SpinOptions, onEvent: (e: SpinEvent) => void): Promise<SpinRecord[]> {
  const rows = 2 * o.batchPairs;
  if (o.batchPairs < 1) throw new UserError(`--batch-pairs must be at least 1, got ${o.batchPairs}`);
  const ctx = await openFinetune(c, rows, 1);
  try {
    settleState(ctx, c, 'spin', o);
    const { backend, config } = ctx.run;
    // The reference: a frozen, forward-only copy of the weights the iteration starts from.
    const ref = new GPT(config.model, backend.kernels, backend.arena, rows, { frozen: true });
    const sampleOpts: SampleOptions = { temperature: o.temperature, topK: o.topK, maxTokens: o.maxTokens };
    const trainPairs = makePairs(ctx, splitStories(ctx, 'train'), o.pairs, o.promptWords);
    const evalPairs = makePairs(ctx, splitStories(ctx, 'val'), o.evalPairs, o.promptWords);
    if (trainPairs.length === 0) throw new UserError(`no training story has more than ${o.promptWords} words`);
    const log = runPaths(c.outDir).log;
    const done = c.resume ? iterationsDone(c.outDir) : -1;
    truncateIterationLog(log, done);
    onEvent({ type: 'start', resumedAt: done < 0 ? null : done, pairs: trainPairs.length, evalPairs: evalPairs.length });
    const records: SpinRecord[] = [];
    const t0 = Date.now();
    let totalSteps = c.resume ? stepsDone(c.outDir) : 0;
    const T = config.model.seq_len;
    const finish = (iteration: number, steps: number, trainLoss: number | null, trainMargin: number | null, evalSet: Pair[] | null): void => {
      const mg = evalSet ? margins(ctx, ref, evalSet) : null;
      // the gap under the current weights: on this iteration's held-out pairs, or fresh ones at iteration 0
      const gapPairs = evalSet ?? synthesize(ctx, evalPairs, o.seed, 0, sampleOpts);
      const gap = evalSet ? mg!.gap : (ref.params.set(ctx.model.params), margins(ctx, ref, gapPairs).gap);
      const val = validate(ctx);
      const record: SpinRecord = {
        iteration, method: o.control ? 'spin-control' : 'spin', steps, train_loss: trainLoss, train_margin: trainMargin,
        val_margin: mg ? mg.margin : null, val_margin_positive: mg ? mg.positive : null, val_logp_gap: gap,
        val_loss: val.loss, val_bpb: val.bpb, seconds: (Date.now() - t0) / 1000,
      };
      appendLog(log, record);
      saveIteration(ctx, c.outDir, 'spin', iteration, totalSteps, totalSteps * rows * T, record.seconds, val);
      records.push(record);
      onEvent({ type: 'record', record });
    };
    if (done < 0) finish(0, 0, null, null, null);
    for (let it = Math.max(1, done + 1); it <= o.iterations; it++) {
      ref.params.set(ctx.model.params);
      const evalSet = synthesize(ctx, evalPairs, o.seed, 2 * it, sampleOpts);
      let trainLoss: number | null = null;
      let trainMargin: number | null = null;
      if (o.control) {
        const examples = trainPairs.map((p) => ({ prompt: p.prompt, completion: p.real }));
        supervisedSteps(ctx, [...examples, ...examples], o.steps, o.lr, seedFor(o.seed, 1000 + it, 0));
      } else {
        const pairs = synthesize(ctx, trainPairs, o.seed, 2 * it + 1, sampleOpts);
        const opt = newOptimizer(ctx);
        const rng = new SeededRng(seedFor(o.seed, 1000 + it, 0));
        const order: number[] = [];
        let lossSum = 0;
        let marginSum = 0;
        for (let s = 0; s < o.steps; s++) {
          const batch: Pair[] = [];
          for (let b = 0; b < o.batchPairs; b++) {
            if (order.length === 0) order.push(...shuffled(pairs.length, rng));
            batch.push(pairs[order.pop()!]!);
          }
          const examples: Example[] = [...batch.map((p) => ({ prompt: p.prompt, completion: p.real })), ...batch.map((p) => ({ prompt: p.prompt, completion: p.synthetic }))];
          const refLp = logProbs(ctx, ref, examples);
          ctx.model.zeroGrad();
          const lp = logProbs(ctx, ctx.model, examples);
          const n = batch.length;
          const terms = spinTerms(lp.subarray(0, n), refLp.subarray(0, n), lp.subarray(n), refLp.subarray(n), o.lambda);
          if (!Number.isFinite(terms.loss)) throw new UserError(`SPIN diverged at iteration ${it} (loss ${terms.loss}); try a lower --lr`);
          const weights = new Float64Array(2 * n);
          weights.set(terms.weightsReal, 0);
          weights.set(terms.weightsSynthetic, n);
          ctx.model.backward(1, weights);
          clipGradNorm(backend.kernels, ctx.model.grads, config.train.grad_clip);
          opt.step(o.lr);
          lossSum += terms.loss;
          let m = 0;
          for (const x of terms.margins) m += x;
          marginSum += m / n;
        }
        trainLoss = lossSum / o.steps;
        trainMargin = marginSum / o.steps;
      }
      totalSteps += o.steps;
      finish(it, o.steps, trainLoss, trainMargin, evalSet);
    }
    return records;
  } finally {
    await ctx.close();
  }
}
