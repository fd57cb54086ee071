import type { OptimConfig } from '../optim/types.js';

/**
 * Learning-rate schedules. `step` is always the number of optimizer steps already taken
 * (0 for the first update), so warmup gives lr * 1/warmup_steps on the first update and
 * reaches the peak lr on update number warmup_steps (step = warmup_steps - 1).
 *
 * Which one the trainer uses: call `lrForRun`. The learning rate is always a pure function of
 * the step and of numbers saved in the checkpoint, never of the clock, so a resumed run gets
 * the very same learning rates (the bit-exact resume tests need this):
 *   - a run bounded by a step count only (time_seconds = 0): `lrAt(step, steps)`;
 *   - a run bounded by time: until its speed is measured, warmup then the peak lr; then the
 *     trainer turns the time left into a step budget (`stepBudget`, saved in the checkpoint)
 *     and the decay runs from that step to the end of the budget.
 * Schedule-Free AdamW (name = 'sfadamw') always gets warmup then constant: its iterate
 * averaging replaces the decay, and `schedule`/`min_lr` are ignored for it.
 */

type ScheduleConfig = Pick<OptimConfig, 'name' | 'lr' | 'min_lr' | 'warmup_steps' | 'schedule'>;

/** Fraction of the warmup done at this step, in (0, 1]. */
export function warmupFactor(step: number, warmupSteps: number): number {
  if (warmupSteps <= 0 || step >= warmupSteps) return 1;
  return (Math.max(0, step) + 1) / warmupSteps;
}

/** lr for a decay progress p in [0, 1] (0: peak lr, 1: min_lr). */
export function decayedLr(p: number, cfg: ScheduleConfig): number {
  if (cfg.name === 'sfadamw' || cfg.schedule === 'constant') return cfg.lr;
  const q = Math.min(1, Math.max(0, p));
  if (cfg.schedule === 'linear') return cfg.lr + (cfg.min_lr - cfg.lr) * q;
  return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + Math.cos(Math.PI * q));
}

/**
 * Linear warmup over warmup_steps, then cosine or linear decay from lr to min_lr reached
 * at totalSteps (or constant). totalSteps <= 0 means unknown: constant after warmup.
 */
export function lrAt(step: number, totalSteps: number, cfg: ScheduleConfig): number {
  return lrDecayingFrom(step, cfg.warmup_steps, totalSteps, cfg);
}

/**
 * Warmup over warmup_steps, the peak lr until `decayStart`, then the decay reaching min_lr at
 * totalSteps (totalSteps <= 0: unknown, the peak lr). lrAt is the case decayStart = warmup_steps.
 */
export function lrDecayingFrom(step: number, decayStart: number, totalSteps: number, cfg: ScheduleConfig): number {
  const w = cfg.warmup_steps;
  if (step < w) return cfg.lr * warmupFactor(step, w);
  if (totalSteps <= 0) return decayedLr(0, cfg);
  const start = Math.max(w, decayStart);
  return decayedLr((step - start) / Math.max(1, totalSteps - start), cfg);
}

/**
 * A time budget turned into steps, once the step speed was measured (saved in the checkpoint
 * manifest as `step_budget`): the run stops after `steps` steps and decays its learning rate
 * from `at_step` to there.
 */
export interface StepBudget {
  /** The budget it was computed for (a resume with another train.time_seconds recomputes it). */
  time_seconds: number;
  /** Steps and training seconds done when it was computed. */
  at_step: number;
  at_elapsed: number;
  /** Measured seconds per step (evaluations included when one fell in the measurement). */
  seconds_per_step: number;
  steps: number;
}

/** The step budget for `timeSeconds`, with `atStep` steps done in `atElapsed` seconds at `secondsPerStep`. */
export function stepBudget(timeSeconds: number, atStep: number, atElapsed: number, secondsPerStep: number): StepBudget {
  const left = Math.max(0, timeSeconds - atElapsed);
  const steps = atStep + (secondsPerStep > 0 ? Math.floor(left / secondsPerStep) : 0);
  return { time_seconds: timeSeconds, at_step: atStep, at_elapsed: atElapsed, seconds_per_step: secondsPerStep, steps };
}

/** Where the run ends, in steps: train.steps, the step budget, or the smaller; 0 when not known yet. */
export function totalSteps(train: { steps: number; time_seconds: number }, budget: StepBudget | null): number {
  if (train.time_seconds <= 0) return train.steps;
  if (!budget) return 0;
  return train.steps > 0 ? Math.min(train.steps, budget.steps) : budget.steps;
}

/** The learning rate for the next update of a run (see the top of this file for the rule). */
export function lrForRun(
  step: number, train: { steps: number; time_seconds: number }, optim: ScheduleConfig, budget: StepBudget | null,
): number {
  if (train.time_seconds <= 0) return lrAt(step, train.steps, optim);
  if (!budget) return lrAt(step, 0, optim);
  return lrDecayingFrom(step, budget.at_step, totalSteps(train, budget), optim);
}
