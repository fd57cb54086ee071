import type { FloatArray } from '../kernels/types.js';
import type { Session } from './session.js';

/**
 * What divergence recovery keeps: a running average of the training loss to recognise a spike,
 * and an in-memory copy of the last good training state to go back to.
 */

/** Recent steps the average covers (an exponential average with time constant ~50 steps). */
const AVERAGE_BETA = 0.98;
/** Steps averaged before a spike can be called: a handful of losses is no average yet. */
const AVERAGE_MIN_STEPS = 20;
/**
 * The average a spike is measured against is at least this many nats: a run memorising a small
 * file goes down to a few hundredths of a nat, where a batch at 3x the average is mere noise.
 */
const AVERAGE_FLOOR = 1;

export interface LossAverageState {
  ema: number;
  count: number;
}

/**
 * Bias-corrected exponential average of the training loss. Its state goes into the checkpoint,
 * so a resumed run calls the same spikes as one never interrupted.
 */
export class LossAverage {
  private ema = 0;
  private count = 0;

  observe(loss: number): void {
    this.ema = AVERAGE_BETA * this.ema + (1 - AVERAGE_BETA) * loss;
    this.count++;
  }

  /** The average, or null while fewer than AVERAGE_MIN_STEPS losses were seen. */
  value(): number | null {
    if (this.count < AVERAGE_MIN_STEPS) return null;
    return this.ema / (1 - Math.pow(AVERAGE_BETA, this.count));
  }

  /** The clause describing `loss` as a spike past `factor` times the average, or null (factor 0: never). */
  spike(loss: number, factor: number): string | null {
    const avg = this.value();
    if (factor <= 0 || avg === null || !(loss > factor * Math.max(avg, AVERAGE_FLOOR))) return null;
    return `the loss (${loss.toFixed(3)}) is more than ${factor}x its recent average (${avg.toFixed(3)})`;
  }

  state(): LossAverageState {
    return { ema: this.ema, count: this.count };
  }

  restore(s: LossAverageState | undefined): void {
    this.ema = s?.ema ?? 0;
    this.count = s?.count ?? 0;
  }
}

/**
 * A copy of the training state at a good moment: weights (the training weights), optimizer
 * buffers and scalars, step and token counts, the trainer's RNG and the loss average. The data
 * loader is deliberately not part of it: after going back, the run continues with the batches
 * after the ones the bad step consumed, so the offending batch is skipped. Buffers are allocated
 * once (outside the kernel arena) and overwritten at each refresh.
 */
export class TrainSnapshot {
  private readonly weights: FloatArray;
  private readonly optim: [FloatArray, FloatArray][];
  private optimScalars: Record<string, number> = {};
  private rng = 0;
  private average: LossAverageState = { ema: 0, count: 0 };
  step = 0;
  tokens = 0;

  constructor(private readonly s: Session) {
    this.weights = s.model.params.slice();
    this.optim = Object.values(s.optimizer.state()).map((buf) => [buf, buf.slice()]);
  }

  /** Copies the current state in (the optimizer must hold its training weights: trainParams). */
  take(average: LossAverage): void {
    const s = this.s;
    this.weights.set(s.model.params);
    for (const [live, copy] of this.optim) copy.set(live);
    this.optimScalars = { ...s.optimizer.scalars() };
    this.rng = s.rng.state();
    this.average = average.state();
    this.step = s.step;
    this.tokens = s.tokens;
  }

  /** Puts the copied state back into the session and the average. */
  restore(average: LossAverage): void {
    const s = this.s;
    s.model.params.set(this.weights);
    for (const [live, copy] of this.optim) live.set(copy);
    s.optimizer.loadScalars(this.optimScalars);
    s.rng.restore(this.rng);
    average.restore(this.average);
    s.step = this.step;
    s.tokens = this.tokens;
  }
}
