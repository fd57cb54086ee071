import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import { decayRuns, runViews, type DecayRun } from './runs.js';
import { readScalar, readStep } from './scalars.js';
import type { OptimConfig, Optimizer, ParamTensor } from './types.js';

/**
 * Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled", Algorithm 1 with
 * Adam's second moment), three sequences over the same parameter layout:
 *   y: where the gradient is taken (the model's params buffer during training),
 *   z: the base sequence (plain AdamW-without-momentum steps, decay evaluated at y),
 *   x: the running weighted average of z, with weights c_{t+1} = lr_t^2 / sum_{i<=t} lr_i^2,
 *   y = (1 - beta1) z + beta1 x.
 * x is what to evaluate, sample from and export: evalParams() puts it in params.
 * The lr it is given should be warmup-then-constant (no decay: the averaging replaces it).
 *
 * State: z, x, v, and y: a place for y while params hold x (evalParams copies y there, and
 * trainParams copies it back, so y returns bit for bit). Checkpoint in eval mode: the
 * weights are then x, and state() has z, x, v and y; the mode itself is the scalar
 * `eval_mode`, so after loading a checkpoint, trainParams() restores y.
 */
export class ScheduleFreeAdamW implements Optimizer {
  readonly name = 'sfadamw' as const;
  stepCount = 0;
  private lrSquaredSum = 0;
  private inEval = false;
  private readonly z: FloatArray;
  private readonly x: FloatArray;
  private readonly v: FloatArray;
  private readonly ySaved: FloatArray;
  private readonly runs: DecayRun[];
  private readonly yv: FloatArray[];
  private readonly gv: FloatArray[];
  private readonly zv: FloatArray[];
  private readonly xv: FloatArray[];
  private readonly vv: FloatArray[];

  constructor(
    private readonly cfg: OptimConfig,
    private readonly kernels: Kernels,
    arena: Arena,
    private readonly params: FloatArray,
    grads: FloatArray,
    tensors: readonly ParamTensor[],
  ) {
    const n = params.length;
    this.z = arena.floats(n);
    this.x = arena.floats(n);
    this.v = arena.floats(n);
    this.ySaved = arena.floats(n);
    this.runs = decayRuns(tensors, n);
    this.yv = runViews(params, this.runs);
    this.gv = runViews(grads, this.runs);
    this.zv = runViews(this.z, this.runs);
    this.xv = runViews(this.x, this.runs);
    this.vv = runViews(this.v, this.runs);
  }

  step(lr: number): void {
    if (this.inEval) throw new Error('sfadamw: step() while params hold x; call trainParams() first');
    if (this.stepCount === 0) {
      // z_1 = x_1 = y_1 = the initial parameters. Done here, not in the constructor,
      // because the model is usually initialized after the optimizer is created.
      this.z.set(this.params);
      this.x.set(this.params);
    }
    const { beta1: b1, beta2: b2, eps, weight_decay } = this.cfg;
    const t = this.stepCount + 1;
    const bc2 = 1 - Math.pow(b2, t);
    this.lrSquaredSum += lr * lr;
    // With every lr so far 0 there is nothing to average yet; ck = 1 keeps x = z.
    const ck = this.lrSquaredSum > 0 ? (lr * lr) / this.lrSquaredSum : 1;
    for (let i = 0; i < this.runs.length; i++) {
      const wd = this.runs[i].decay ? weight_decay : 0;
      this.kernels.scheduleFreeAdamwUpdate(
        this.yv[i], this.gv[i], this.zv[i], this.xv[i], this.vv[i], this.runs[i].size,
        lr, b1, b2, eps, wd, ck, bc2,
      );
    }
    this.stepCount = t;
  }

  state(): Record<string, FloatArray> {
    return { z: this.z, x: this.x, v: this.v, y: this.ySaved };
  }

  scalars(): Record<string, number> {
    return { step: this.stepCount, lr_squared_sum: this.lrSquaredSum, eval_mode: this.inEval ? 1 : 0 };
  }

  loadScalars(s: Record<string, number>): void {
    const step = readStep(s, this.name);
    const sum = readScalar(s, 'lr_squared_sum', this.name);
    const mode = readScalar(s, 'eval_mode', this.name);
    if (sum < 0 || (mode !== 0 && mode !== 1)) {
      throw new UserError(`optimizer state for sfadamw is invalid (lr_squared_sum ${sum}, eval_mode ${mode})`);
    }
    this.stepCount = step;
    this.lrSquaredSum = sum;
    this.inEval = mode === 1;
  }

  evalParams(): void {
    // Before the first step x = y = the initial params: nothing to swap.
    if (this.inEval || this.stepCount === 0) return;
    this.ySaved.set(this.params);
    this.params.set(this.x);
    this.inEval = true;
  }

  trainParams(): void {
    if (!this.inEval) return;
    this.params.set(this.ySaved);
    this.inEval = false;
  }
}
