import type { BackendInfo } from '../kernels/index.js';
import { clipGradNorm } from '../optim/index.js';
import { bitsPerByte } from '../data/meta.js';
import { computeBaselines, type Baselines } from '../data/baselines.js';
import type { PrepareProgress } from '../data/prepare.js';
import { sampleToken } from '../model/generate.js';
import { UserError } from '../util/errors.js';
import { allFinite, saveCheckpoint, type CheckpointManifest } from './checkpoint.js';
import { meanLoss, sampleTokens } from './evaluate.js';
import { LogWriter, type LogRecord } from './log.js';
import { lrForRun } from './schedule.js';
import { openSession, type Session, type SessionRequest } from './session.js';

export type { TrainConfig, SessionRequest } from './session.js';

export type StopReason = 'steps' | 'time' | 'signal';

/** What the trainer reports while it runs; the CLI turns these into a progress line and text. */
export type TrainEvent =
  | { type: 'prepare'; progress: PrepareProgress }
  | {
      type: 'start'; runDir: string; backend: BackendInfo; params: number; datasetDir: string; datasetReused: boolean;
      trainTokens: number; valTokens: number; tokensPerStep: number; resumedFromStep: number | null;
    }
  | { type: 'step'; record: LogRecord; etaSeconds: number | null }
  | { type: 'eval'; record: LogRecord }
  | { type: 'samples'; step: number; samples: string[] }
  | { type: 'checkpoint'; step: number; dir: string };

export interface TrainResult {
  runDir: string;
  step: number;
  tokens: number;
  elapsedSeconds: number;
  stopReason: StopReason;
  /** Final validation loss and bits per byte (null when stopped by a signal before evaluating). */
  valLoss: number | null;
  valBpb: number | null;
  /** n-gram baselines on the same validation split (null when stopped by a signal). */
  baselines: Baselines | null;
}

/** A NaN or Inf loss or gradient: the run stops, the last good checkpoint is kept as it is. */
export class DivergedError extends UserError {
  constructor(step: number, what: string, runDir: string, lastGood: number | null) {
    super(
      `training diverged at step ${step}: ${what} is not finite; ` +
        (lastGood === null ? 'no checkpoint was written' : `the last good checkpoint (step ${lastGood}) in ${runDir} is kept`) +
        '; try a lower optim.lr or train.grad_clip > 0',
    );
    this.name = 'DivergedError';
  }
}

interface StepStats {
  loss: number;
  gradNorm: number;
  lr: number;
}

/**
 * One optimizer step: grad_accum micro-batches (forward, backward scaled by 1/grad_accum),
 * clip by global norm, update. Throws DivergedError before the update when anything is not finite,
 * so the weights never take a NaN step.
 */
function trainStep(s: Session, lr: number, lastGood: number | null): StepStats {
  const { model, loader, inputs, targets, config } = s;
  const accum = config.train.grad_accum;
  const stepNo = s.step + 1;
  model.zeroGrad();
  let sum = 0;
  for (let m = 0; m < accum; m++) {
    loader.nextBatch(inputs, targets);
    model.setDropoutKey(config.train.seed, s.step * accum + m); // masks depend on the step alone: resume is exact
    const loss = model.forward(inputs, targets, config.train.batch_size);
    if (!Number.isFinite(loss)) throw new DivergedError(stepNo, `the loss (${loss})`, s.paths.dir, lastGood);
    sum += loss;
    model.backward(1 / accum);
  }
  const gradNorm = clipGradNorm(s.backend.kernels, model.grads, config.train.grad_clip);
  if (!Number.isFinite(gradNorm)) throw new DivergedError(stepNo, `the gradient norm (${gradNorm})`, s.paths.dir, lastGood);
  s.optimizer.step(lr);
  return { loss: sum / accum, gradNorm, lr };
}

/** Validation loss on the fixed batches, with the evaluation weights (Schedule-Free's x). */
function validate(s: Session): { loss: number; bpb: number } {
  s.optimizer.evalParams();
  try {
    const loss = meanLoss(s.model, s.valBatches, s.config.train.batch_size, s.inputs, s.targets);
    return { loss, bpb: bitsPerByte(loss, s.dataset.meta, 'val') };
  } finally {
    s.optimizer.trainParams();
  }
}

/** A few short samples starting from <|endoftext|> (a story start), with the evaluation weights. */
function sampleLines(s: Session, count: number): string[] {
  const { sample_tokens: tokens, sample_temperature: temperature } = s.config.train;
  if (tokens <= 0) return [];
  const eot = s.tokenizer.eotId;
  const out: string[] = [];
  s.optimizer.evalParams();
  try {
    for (let i = 0; i < count; i++) {
      const ids = [...sampleTokens(s.decoder, sampleToken, [eot], tokens, { temperature, topK: 40, topP: 1 }, s.rng.fn(), eot)];
      out.push(s.tokenizer.decode(ids));
    }
  } finally {
    s.optimizer.trainParams();
  }
  return out;
}

function checkpoint(s: Session, elapsedSeconds: number, lastGood: number | null): CheckpointManifest {
  // A step can overflow the weights without a NaN loss yet: never let that reach the disk.
  if (!allFinite(s.model.params)) throw new DivergedError(s.step, 'a weight', s.paths.dir, lastGood);
  s.optimizer.evalParams();
  try {
    return saveCheckpoint(
      s.paths.dir,
      s.config.model as unknown as Record<string, number | boolean | string>,
      { tensors: s.model.tensors, weights: s.model.params, optimState: s.optimizer.state() },
      {
        step: s.step,
        tokens: s.tokens,
        elapsed_seconds: elapsedSeconds,
        loader: s.loader.state(),
        rng: s.rng.state(),
        optimizer: s.optimizer.name,
        optim_scalars: s.optimizer.scalars(),
        dataset: { dir: s.dataset.dir, tokenizer_hash: s.dataset.meta.tokenizer.hash },
      },
    );
  } finally {
    s.optimizer.trainParams();
  }
}

/** Lets pending signal handlers run between steps (the step itself is synchronous). */
const yieldToEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Trains until train.steps or train.time_seconds (whichever comes first) or until `shouldStop()`
 * turns true (SIGINT/SIGTERM: the current step finishes, a checkpoint is saved). Reads like a
 * recipe: batch, forward, backward, clip, step, log, eval, checkpoint.
 */
export async function train(req: SessionRequest, onEvent: (ev: TrainEvent) => void, shouldStop: () => boolean): Promise<TrainResult> {
  const s = await openSession(req, (progress) => onEvent({ type: 'prepare', progress }));
  const log = new LogWriter(s.paths.log);
  try {
    const { train: tc } = s.config;
    const tokensPerStep = tc.batch_size * tc.grad_accum * s.config.model.seq_len;
    const checkpointEvery = tc.checkpoint_every;
    onEvent({
      type: 'start', runDir: s.paths.dir, backend: s.backend.info, params: s.model.numParams,
      datasetDir: s.dataset.dir, datasetReused: s.dataset.reused,
      trainTokens: s.dataset.meta.splits.train.tokens, valTokens: s.dataset.meta.splits.val.tokens,
      tokensPerStep, resumedFromStep: s.resumedFrom?.step ?? null,
    });

    const startWall = performance.now();
    const elapsed = (): number => s.elapsedSeconds + (performance.now() - startWall) / 1000;
    let lastGood: number | null = s.resumedFrom?.step ?? null;
    let lastCheckpointWall = performance.now();
    let avgStepSeconds = 0;
    let lastVal: { loss: number; bpb: number } | null = null;
    let stopReason: StopReason | null = null;

    const timeUp = (): boolean => tc.time_seconds > 0 && elapsed() >= tc.time_seconds;
    const stepsDone = (): boolean => tc.steps > 0 && s.step >= tc.steps;
    if (stepsDone()) stopReason = 'steps';
    else if (timeUp()) stopReason = 'time';

    while (stopReason === null) {
      const t0 = performance.now();
      const lr = lrForRun(s.step, elapsed(), tc, s.config.optim);
      const st = trainStep(s, lr, lastGood);
      s.step += 1;
      s.tokens += tokensPerStep;
      const stepSeconds = (performance.now() - t0) / 1000;
      avgStepSeconds = avgStepSeconds === 0 ? stepSeconds : 0.9 * avgStepSeconds + 0.1 * stepSeconds;

      if (stepsDone()) stopReason = 'steps';
      else if (timeUp()) stopReason = 'time';
      const record: LogRecord = {
        step: s.step, loss: st.loss, lr: st.lr, grad_norm: st.gradNorm, tokens: s.tokens,
        tokens_per_second: tokensPerStep / stepSeconds, elapsed: elapsed(),
      };
      const evalNow = (tc.eval_every > 0 && s.step % tc.eval_every === 0) || stopReason !== null;
      if (evalNow) {
        lastVal = validate(s);
        record.val_loss = lastVal.loss;
        record.val_bpb = lastVal.bpb;
      }
      if (evalNow || stopReason !== null || s.step % tc.log_every === 0) log.append(record);
      onEvent({ type: 'step', record, etaSeconds: eta(s.step, elapsed(), avgStepSeconds, tc) });
      if (evalNow) onEvent({ type: 'eval', record });
      const samplesNow = tc.sample_every > 0 ? s.step % tc.sample_every === 0 : evalNow;
      if (samplesNow && tc.sample_tokens > 0) onEvent({ type: 'samples', step: s.step, samples: sampleLines(s, 2) });

      await yieldToEvents();
      if (stopReason === null && shouldStop()) stopReason = 'signal';
      const due =
        stopReason !== null ||
        (checkpointEvery > 0 && s.step % checkpointEvery === 0) ||
        (tc.checkpoint_minutes > 0 && performance.now() - lastCheckpointWall >= tc.checkpoint_minutes * 60_000);
      if (due) {
        checkpoint(s, elapsed(), lastGood);
        lastGood = s.step;
        lastCheckpointWall = performance.now();
        onEvent({ type: 'checkpoint', step: s.step, dir: s.paths.dir });
      }
    }

    // A run resumed after it had already finished evaluates once so the report has numbers.
    if (stopReason !== 'signal' && lastVal === null) lastVal = validate(s);
    const baselines = stopReason === 'signal' ? null : await computeBaselines(s.dataset.dir);
    return {
      runDir: s.paths.dir, step: s.step, tokens: s.tokens, elapsedSeconds: elapsed(), stopReason,
      valLoss: stopReason === 'signal' ? null : lastVal!.loss,
      valBpb: stopReason === 'signal' ? null : lastVal!.bpb,
      baselines,
    };
  } finally {
    log.close();
    await s.close();
  }
}

/** Seconds left: by steps (average step time), by the time budget, or the smaller of both. */
function eta(step: number, elapsed: number, avgStepSeconds: number, tc: { steps: number; time_seconds: number }): number | null {
  let left: number | null = null;
  if (tc.steps > 0) left = Math.max(0, tc.steps - step) * avgStepSeconds;
  if (tc.time_seconds > 0) {
    const byTime = Math.max(0, tc.time_seconds - elapsed);
    left = left === null ? byTime : Math.min(left, byTime);
  }
  return left;
}
