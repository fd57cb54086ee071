import type { OptimConfig } from '../optim/types.js';

/**
 * Learning-rate schedules. `step` is always the number of optimizer steps already taken
 * (0 for the first update), so warmup gives lr * 1/warmup_steps on the first update and
 * reaches the peak lr on update number warmup_steps (step = warmup_steps - 1).
 *
 * Which one the trainer uses: call `lrForRun`, which picks
 *   - `lrAt(step, steps)` when the run is bounded by a step count only (time_seconds = 0):
 *     the classic schedule, and a pure function of the step, so a resumed run gets the
 *     very same learning rates (bit-exact resume tests need this);
 *   - `lrAtFraction(step, progress)` when a wall-clock budget is set: the total number of
 *     steps is unknown, so the decay follows the fraction of the budget used
 *     (`budgetProgress`: the larger of elapsed/time_seconds and step/steps).
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
  const w = cfg.warmup_steps;
  if (step < w) return cfg.lr * warmupFactor(step, w);
  if (totalSteps <= 0) return decayedLr(0, cfg);
  return decayedLr((step - w) / Math.max(1, totalSteps - w), cfg);
}

/**
 * For a time budget: warmup by steps, decay by the fraction of the budget elapsed
 * (progress in [0, 1]). The two multiply, so the curve is continuous whatever the speed;
 * warmup is a few percent of any real budget, so the decay it overlaps is negligible.
 */
export function lrAtFraction(step: number, progress: number, cfg: ScheduleConfig): number {
  return warmupFactor(step, cfg.warmup_steps) * decayedLr(progress, cfg);
}

/** Fraction of the run's budget used: the larger of the step and time fractions (0 if unlimited). */
export function budgetProgress(step: number, elapsedSeconds: number, train: { steps: number; time_seconds: number }): number {
  let p = 0;
  if (train.steps > 0) p = Math.max(p, step / train.steps);
  if (train.time_seconds > 0) p = Math.max(p, elapsedSeconds / train.time_seconds);
  return Math.min(1, Math.max(0, p));
}

/** The learning rate for the next update of a run (see the top of this file for the rule). */
export function lrForRun(
  step: number, elapsedSeconds: number, train: { steps: number; time_seconds: number }, optim: ScheduleConfig,
): number {
  if (train.time_seconds <= 0) return lrAt(step, train.steps, optim);
  return lrAtFraction(step, budgetProgress(step, elapsedSeconds, train), optim);
}
