import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { decayRuns, runViews, type DecayRun } from './runs.js';
import { readStep } from './scalars.js';
import type { OptimConfig, Optimizer, ParamTensor } from './types.js';

/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay applied only to tensors
 * flagged `decay` (no decay on norms and embeddings). State: m and v, allocated once.
 */
export class AdamW implements Optimizer {
  readonly name = 'adamw' as const;
  stepCount = 0;
  private readonly m: FloatArray;
  private readonly v: FloatArray;
  private readonly runs: DecayRun[];
  private readonly pv: FloatArray[];
  private readonly gv: FloatArray[];
  private readonly mv: FloatArray[];
  private readonly vv: FloatArray[];

  constructor(
    private readonly cfg: OptimConfig,
    private readonly kernels: Kernels,
    arena: Arena,
    params: FloatArray,
    grads: FloatArray,
    tensors: readonly ParamTensor[],
  ) {
    this.m = arena.floats(params.length);
    this.v = arena.floats(params.length);
    this.runs = decayRuns(tensors, params.length);
    this.pv = runViews(params, this.runs);
    this.gv = runViews(grads, this.runs);
    this.mv = runViews(this.m, this.runs);
    this.vv = runViews(this.v, this.runs);
  }

  step(lr: number): void {
    const { beta1: b1, beta2: b2, eps, weight_decay } = this.cfg;
    const t = this.stepCount + 1;
    const bc1 = 1 - Math.pow(b1, t);
    const bc2 = 1 - Math.pow(b2, t);
    for (let i = 0; i < this.runs.length; i++) {
      const wd = this.runs[i].decay ? weight_decay : 0;
      this.kernels.adamwUpdate(this.pv[i], this.gv[i], this.mv[i], this.vv[i], this.runs[i].size, lr, b1, b2, eps, wd, bc1, bc2);
    }
    this.stepCount = t;
  }

  state(): Record<string, FloatArray> {
    return { m: this.m, v: this.v };
  }

  scalars(): Record<string, number> {
    return { step: this.stepCount };
  }

  loadScalars(s: Record<string, number>): void {
    this.stepCount = readStep(s, this.name);
  }

  evalParams(): void {}
  trainParams(): void {}
}
