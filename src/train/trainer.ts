import type { MixerName } from '../model/config.js';
import type { BackendInfo } from '../kernels/index.js';
import { clipGradNorm } from '../optim/index.js';
import { bitsPerByte } from '../data/meta.js';
import { computeBaselines, type Baselines } from '../data/baselines.js';
import type { PrepareProgress } from '../data/prepare.js';
import { sampleToken } from '../model/generate.js';
import { UserError } from '../util/errors.js';
import {
  allFinite, readBestManifest, saveBestCheckpoint, saveCheckpoint, type CheckpointManifest, type CheckpointState,
  hasOptimizerState,
} from './checkpoint.js';
import { meanLoss, sampleTokens } from './evaluate.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { appendSamples } from './samples.js';
import { LogWriter, type BudgetEvent, type LogRecord, type RollbackEvent } from './log.js';
import { LossAverage, TrainSnapshot } from './recovery.js';
import { lrForRun, stepBudget, type StepBudget } from './schedule.js';
import { openSession, type Session, type SessionRequest } from './session.js';

export type { TrainConfig, SessionRequest } from './session.js';

export type StopReason = 'steps' | 'time' | 'signal';

/**
 * Faults a test can inject into a run (never set by the CLI or a config): each fires once,
 * the first time the run reaches that step, before its forward pass.
 */
export interface TrainFaults {
  /** Every weight becomes NaN, so the loss is NaN: the run must roll back to recover. */
  nanLossAtStep?: number;
  /** Every weight is multiplied by 10: the loss spikes, finite, far above its average. */
  lossSpikeAtStep?: number;
}

export interface TrainRequest extends SessionRequest {
  faults?: TrainFaults;
}

/** What the trainer reports while it runs; the CLI turns these into a progress line and text. */
export type TrainEvent =
  | { type: 'prepare'; progress: PrepareProgress }
  | {
      type: 'start'; runDir: string; backend: BackendInfo; params: number; mixer: MixerName; datasetDir: string; datasetReused: boolean;
      trainTokens: number; valTokens: number; tokensPerStep: number; resumedFromStep: number | null;
      /** Set when the run was made by `pocketlm import`: where its weights came from (training starts with fresh optimizer state). */
      importedFrom: string | null;
    }
  | { type: 'step'; record: LogRecord; etaSeconds: number | null }
  /** `best`: this evaluation lowered the validation loss and was saved as the run's best. */
  | { type: 'eval'; record: LogRecord; best: boolean }
  | { type: 'samples'; step: number; samples: string[] }
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'rollback'; rollback: RollbackEvent; maxRollbacks: number }
  | { type: 'budget'; budget: BudgetEvent };

/** An evaluated state of the run. */
export interface EvalPoint {
  step: number;
  valLoss: number;
  valBpb: number;
}

export interface TrainResult {
  runDir: string;
  step: number;
  tokens: number;
  elapsedSeconds: number;
  stopReason: StopReason;
  /** Final validation loss and bits per byte (null when stopped by a signal before evaluating). */
  valLoss: number | null;
  valBpb: number | null;
  /** The best evaluation of the run, saved in <run>/best/ (null before the first evaluation). */
  best: EvalPoint | null;
  /** What a time budget became in steps (null: no time budget, or stopped before it was measured). */
  stepBudget: StepBudget | null;
  /** Rollbacks after a divergence, and the learning-rate multiplier they left. */
  rollbacks: number;
  lrScale: number;
  /** n-gram baselines on the same validation split (null when stopped by a signal). */
  baselines: Baselines | null;
}

/** A divergence the run could not recover from: it stops, the last good checkpoint is kept as it is. */
export class DivergedError extends UserError {
  constructor(step: number, what: string, runDir: string, lastGood: number | null, rollbacks = 0) {
    super(
      `training diverged at step ${step}: ${what}; ` +
        (rollbacks > 0 ? `gave up after ${rollbacks} rollback${rollbacks === 1 ? '' : 's'} (train.max_rollbacks); ` : '') +
        (lastGood === null ? 'no checkpoint was written' : `the last good checkpoint (step ${lastGood}) in ${runDir} is kept`) +
        '; try a lower optim.lr or train.grad_clip > 0',
    );
    this.name = 'DivergedError';
  }
}

export interface StepStats {
  loss: number;
  gradNorm: number;
  lr: number;
}

/**
 * What one step touches: a Session has it, and so does the browser's trainer (src/web/app),
 * whose tokens live in memory instead of a dataset folder.
 */
export type StepSession = Pick<Session, 'model' | 'inputs' | 'targets' | 'config' | 'step' | 'optimizer'> & {
  loader: Pick<Session['loader'], 'nextBatch'>;
  backend: Pick<Session['backend'], 'kernels'>;
};

/**
 * One optimizer step: grad_accum micro-batches (forward, backward scaled by 1/grad_accum),
 * clip by global norm, update. When the loss or the gradient is not finite, or the loss spikes
 * past spike_factor times its recent average, the update is not applied and the step returns
 * what was wrong instead, so the weights never take a bad step.
 */
export function trainStep(s: StepSession, lr: number, average: LossAverage): StepStats | string {
  const { model, loader, inputs, targets, config } = s;
  const accum = config.train.grad_accum;
  model.zeroGrad();
  let sum = 0;
  for (let m = 0; m < accum; m++) {
    loader.nextBatch(inputs, targets);
    model.setDropoutKey(config.train.seed, s.step * accum + m); // masks depend on the step alone: resume is exact
    const loss = model.forward(inputs, targets, config.train.batch_size);
    if (!Number.isFinite(loss)) return `the loss (${loss}) is not finite`;
    sum += loss;
    model.backward(1 / accum);
  }
  const loss = sum / accum;
  const spike = average.spike(loss, config.train.spike_factor);
  if (spike) return spike;
  const gradNorm = clipGradNorm(s.backend.kernels, model.grads, config.train.grad_clip);
  if (!Number.isFinite(gradNorm)) return `the gradient norm (${gradNorm}) is not finite`;
  s.optimizer.step(lr);
  return { loss, gradNorm, lr };
}

/** What is wrong with the state after an evaluation or before a checkpoint, or null when it is good. */
function unhealthy(s: Session, valLoss: number | null): string | null {
  if (valLoss !== null && !Number.isFinite(valLoss)) return `the validation loss (${valLoss}) is not finite`;
  if (!allFinite(s.model.params)) return 'a weight is not finite';
  for (const [name, buf] of Object.entries(s.optimizer.state())) {
    if (!allFinite(buf)) return `the optimizer state "${name}" is not finite`;
  }
  return null;
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

/** The trainer's own state beyond the session's, saved in each checkpoint so a resume continues exactly. */
interface RunState {
  lrScale: number;
  rollbacks: number;
  average: LossAverage;
  budget: StepBudget | null;
}

function checkpointState(s: Session, elapsedSeconds: number, run: RunState): CheckpointState {
  return {
    step: s.step,
    tokens: s.tokens,
    elapsed_seconds: elapsedSeconds,
    loader: s.loader.state(),
    rng: s.rng.state(),
    optimizer: s.optimizer.name,
    optim_scalars: s.optimizer.scalars(),
    dataset: { dir: s.dataset.dir, tokenizer_hash: s.dataset.meta.tokenizer.hash },
    lr_scale: run.lrScale,
    rollbacks: run.rollbacks,
    loss_average: run.average.state(),
    ...(run.budget ? { step_budget: run.budget } : {}),
  };
}

const modelConfig = (s: Session) => s.config.model as unknown as Record<string, number | boolean | string>;

/** Saves the run's checkpoint; the caller checked the state is finite (unhealthy() is null). */
function checkpoint(s: Session, elapsedSeconds: number, run: RunState): CheckpointManifest {
  s.optimizer.evalParams();
  try {
    // The state after evalParams(): Schedule-Free's scalars record that the weights saved are x.
    const state = checkpointState(s, elapsedSeconds, run);
    return saveCheckpoint(s.paths.dir, modelConfig(s), { tensors: s.model.tensors, weights: s.model.params, optimState: s.optimizer.state() }, state);
  } finally {
    s.optimizer.trainParams();
  }
}

/** Saves the evaluation weights as the run's best (weights only, with their validation numbers). */
function saveBest(s: Session, elapsedSeconds: number, run: RunState, val: { loss: number; bpb: number }): void {
  s.optimizer.evalParams();
  try {
    const state = { ...checkpointState(s, elapsedSeconds, run), val_loss: val.loss, val_bpb: val.bpb };
    saveBestCheckpoint(s.paths.dir, modelConfig(s), { tensors: s.model.tensors, weights: s.model.params }, state);
  } finally {
    s.optimizer.trainParams();
  }
}

/** Lets pending signal handlers run between steps (the step itself is synchronous). */
const yieldToEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A time budget is turned into steps once this fraction of it has passed or at the first
 * evaluation, whichever comes first: early enough to decay the learning rate over almost all
 * of the run, late enough to measure the speed over many steps.
 */
const BUDGET_MEASURE_FRACTION = 0.05;
/**
 * Steps this process must have done before its speed is measured. The speed is taken over the
 * later half of them: the first steps are slower (compilation, cold caches).
 */
const BUDGET_MIN_STEPS = 20;
/** The factor lossSpikeAtStep multiplies the weights by. */
const FAULT_SPIKE_SCALE = 10;

/**
 * Trains until train.steps or train.time_seconds (whichever comes first) or until `shouldStop()`
 * turns true (SIGINT/SIGTERM: the current step finishes, a checkpoint is saved). Reads like a
 * recipe: batch, forward, backward, clip, step, log, eval, checkpoint.
 *
 * A time budget becomes a step budget once the speed is measured (saved in the checkpoint):
 * from then on the run schedules and stops by steps, so a resumed timed run is exact too.
 * A divergence (NaN or Inf loss, gradient or weight, or a loss spike) rolls back to the last
 * good state (the last healthy evaluation or checkpoint, kept in memory), lowers the learning
 * rate by train.rollback_lr_factor and continues past the offending batches; after
 * train.max_rollbacks rollbacks it gives up with a DivergedError.
 */
export async function train(req: TrainRequest, onEvent: (ev: TrainEvent) => void, shouldStop: () => boolean): Promise<TrainResult> {
  const s = await openSession(req, (progress) => onEvent({ type: 'prepare', progress }));
  const log = new LogWriter(s.paths.log);
  try {
    const { train: tc } = s.config;
    const tokensPerStep = tc.batch_size * tc.grad_accum * s.config.model.seq_len;
    const checkpointEvery = tc.checkpoint_every;
    onEvent({
      type: 'start', runDir: s.paths.dir, backend: s.backend.info, params: s.model.numParams, mixer: s.model.mixer.name,
      datasetDir: s.dataset.dir, datasetReused: s.dataset.reused,
      trainTokens: s.dataset.meta.splits.train.tokens, valTokens: s.dataset.meta.splits.val.tokens,
      tokensPerStep, resumedFromStep: s.resumedFrom?.step ?? null,
      importedFrom: s.resumedFrom?.imported && !hasOptimizerState(s.resumedFrom) ? s.resumedFrom.imported.from : null,
    });
    // Computed (or read from the dataset's cache) before the first step and kept in the run
    // folder, so a dashboard in another process can draw them while the run goes on.
    const baselines = await computeBaselines(s.dataset.dir);
    writeFileAtomicSync(s.paths.baselines, JSON.stringify(baselines, null, 2) + '\n');

    const startWall = performance.now();
    const elapsed = (): number => s.elapsedSeconds + (performance.now() - startWall) / 1000;
    const resumed = s.resumedFrom;
    const run: RunState = { lrScale: resumed?.lr_scale ?? 1, rollbacks: resumed?.rollbacks ?? 0, average: new LossAverage(), budget: null };
    run.average.restore(resumed?.loss_average);

    // The best so far, kept across resumes (a fresh start never finds one: run.ts claimRunFolder
    // refuses a folder holding run files, best/ included).
    let best: EvalPoint | null = null;
    if (resumed) {
      const m = readBestManifest(s.paths.dir);
      if (m && typeof m.val_loss === 'number' && typeof m.val_bpb === 'number') best = { step: m.step, valLoss: m.val_loss, valBpb: m.val_bpb };
    }

    const announceBudget = (b: StepBudget): void => {
      const ev: BudgetEvent = { event: 'budget', step: s.step, time_seconds: b.time_seconds, steps: b.steps, seconds_per_step: b.seconds_per_step };
      log.append(ev);
      onEvent({ type: 'budget', budget: ev });
    };
    const saved = resumed?.step_budget;
    if (tc.time_seconds > 0 && saved) {
      // Resumed with another --time: the same measurement, the new budget.
      run.budget = saved.time_seconds === tc.time_seconds ? saved : stepBudget(tc.time_seconds, saved.at_step, saved.at_elapsed, saved.seconds_per_step);
      if (run.budget !== saved) announceBudget(run.budget);
    }

    let lastGood: number | null = resumed?.step ?? null;
    // The state to go back to after a divergence: here, then each healthy evaluation and checkpoint.
    const snapshot = tc.max_rollbacks > 0 ? new TrainSnapshot(s) : null;
    snapshot?.take(run.average);
    const rollBack = (step: number, what: string): void => {
      if (!snapshot || run.rollbacks >= tc.max_rollbacks) throw new DivergedError(step, what, s.paths.dir, lastGood, run.rollbacks);
      snapshot.restore(run.average);
      run.rollbacks += 1;
      run.lrScale *= tc.rollback_lr_factor;
      const ev: RollbackEvent = { event: 'rollback', step, to_step: s.step, reason: what, lr_scale: run.lrScale, rollbacks: run.rollbacks };
      log.append(ev);
      onEvent({ type: 'rollback', rollback: ev, maxRollbacks: tc.max_rollbacks });
    };

    const faults = { ...req.faults };
    const injectFaults = (stepNo: number): void => {
      if (faults.nanLossAtStep === stepNo) {
        s.model.params.fill(NaN);
        delete faults.nanLossAtStep;
      }
      if (faults.lossSpikeAtStep === stepNo) {
        const p = s.model.params;
        for (let i = 0; i < p.length; i++) p[i]! *= FAULT_SPIKE_SCALE;
        delete faults.lossSpikeAtStep;
      }
    };

    let lastCheckpointWall = performance.now();
    let avgStepSeconds = 0;
    /** Elapsed seconds at the end of each step of this process, until the time budget is measured. */
    const stepEnds: number[] = [];
    let lastVal: { loss: number; bpb: number } | null = null;
    let stopReason: StopReason | null = null;

    const stopFor = (): StopReason | null => {
      if (tc.steps > 0 && s.step >= tc.steps) return 'steps';
      if (tc.time_seconds > 0 && (run.budget ? s.step >= run.budget.steps : elapsed() >= tc.time_seconds)) return 'time';
      return null;
    };
    /** Saves best/ when this evaluation has the lowest validation loss yet; true when it did. */
    const keepIfBest = (val: { loss: number; bpb: number }): boolean => {
      if (!Number.isFinite(val.loss) || (best !== null && val.loss >= best.valLoss)) return false;
      saveBest(s, elapsed(), run, val);
      best = { step: s.step, valLoss: val.loss, valBpb: val.bpb };
      return true;
    };
    stopReason = stopFor();

    while (stopReason === null) {
      const t0 = performance.now();
      injectFaults(s.step + 1);
      const lr = lrForRun(s.step, tc, s.config.optim, run.budget) * run.lrScale;
      const st = trainStep(s, lr, run.average);
      if (typeof st === 'string') {
        rollBack(s.step + 1, st);
        continue;
      }
      s.step += 1;
      s.tokens += tokensPerStep;
      if (tc.time_seconds > 0 && !run.budget) stepEnds.push(elapsed());
      if (s.step > s.config.optim.warmup_steps) run.average.observe(st.loss);
      const stepSeconds = (performance.now() - t0) / 1000;
      avgStepSeconds = avgStepSeconds === 0 ? stepSeconds : 0.9 * avgStepSeconds + 0.1 * stepSeconds;

      const periodicEval = tc.eval_every > 0 && s.step % tc.eval_every === 0;
      let val = periodicEval ? validate(s) : null;
      const n = stepEnds.length;
      if (tc.time_seconds > 0 && !run.budget && n >= BUDGET_MIN_STEPS && (periodicEval || elapsed() >= BUDGET_MEASURE_FRACTION * tc.time_seconds)) {
        const now = elapsed(); // after this step's evaluation, if any: its cost counts
        const half = n >> 1;
        run.budget = stepBudget(tc.time_seconds, s.step, now, (now - stepEnds[half - 1]!) / (n - half));
        stepEnds.length = 0;
        announceBudget(run.budget);
      }
      stopReason = stopFor();
      if (stopReason !== null && !val) val = validate(s);
      let improved = false;
      if (val) {
        const bad = unhealthy(s, val.loss);
        if (bad) {
          rollBack(s.step, bad);
          stopReason = null;
          continue;
        }
        lastVal = val;
        improved = keepIfBest(val);
      }

      const record: LogRecord = {
        step: s.step, loss: st.loss, lr: st.lr, grad_norm: st.gradNorm, tokens: s.tokens,
        tokens_per_second: tokensPerStep / stepSeconds, elapsed: elapsed(),
      };
      if (val) {
        record.val_loss = val.loss;
        record.val_bpb = val.bpb;
      }
      if (val || stopReason !== null || s.step % tc.log_every === 0) log.append(record);
      onEvent({ type: 'step', record, etaSeconds: eta(s.step, elapsed(), avgStepSeconds, tc, run.budget) });
      if (val) onEvent({ type: 'eval', record, best: improved });
      const samplesNow = tc.sample_every > 0 ? s.step % tc.sample_every === 0 : val !== null;
      if (samplesNow && tc.sample_tokens > 0) {
        const samples = sampleLines(s, 2);
        appendSamples(s.paths.samples, { step: s.step, elapsed: elapsed(), samples });
        onEvent({ type: 'samples', step: s.step, samples });
      }

      await yieldToEvents();
      if (stopReason === null && shouldStop()) stopReason = 'signal';
      const due =
        stopReason !== null ||
        (checkpointEvery > 0 && s.step % checkpointEvery === 0) ||
        (tc.checkpoint_minutes > 0 && performance.now() - lastCheckpointWall >= tc.checkpoint_minutes * 60_000);
      if (due) {
        // A step can overflow the weights without a NaN loss yet: never let that reach the disk.
        const bad = val ? null : unhealthy(s, null);
        if (bad) {
          rollBack(s.step, bad);
          stopReason = null;
          continue;
        }
        checkpoint(s, elapsed(), run);
        lastGood = s.step;
        lastCheckpointWall = performance.now();
        onEvent({ type: 'checkpoint', step: s.step, dir: s.paths.dir });
      }
      if (snapshot && (val || due)) snapshot.take(run.average);
    }

    // A run resumed after it had already finished evaluates once so the report has numbers.
    if (stopReason !== 'signal' && lastVal === null) {
      lastVal = validate(s);
      keepIfBest(lastVal);
    }
    return {
      runDir: s.paths.dir, step: s.step, tokens: s.tokens, elapsedSeconds: elapsed(), stopReason,
      valLoss: stopReason === 'signal' ? null : lastVal!.loss,
      valBpb: stopReason === 'signal' ? null : lastVal!.bpb,
      best, stepBudget: tc.time_seconds > 0 ? run.budget : null, rollbacks: run.rollbacks, lrScale: run.lrScale,
      baselines: stopReason === 'signal' ? null : baselines,
    };
  } finally {
    log.close();
    await s.close();
  }
}

/** Seconds left: by the steps to go (at the average step time), by the time left before the step budget is known, or the smaller. */
function eta(step: number, elapsed: number, avgStepSeconds: number, tc: { steps: number; time_seconds: number }, budget: StepBudget | null): number | null {
  const left: number[] = [];
  if (tc.steps > 0) left.push((tc.steps - step) * avgStepSeconds);
  if (tc.time_seconds > 0) left.push(budget ? (budget.steps - step) * avgStepSeconds : tc.time_seconds - elapsed);
  return left.length ? Math.max(0, Math.min(...left)) : null;
}
