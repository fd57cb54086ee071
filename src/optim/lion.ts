import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { decayRuns, runViews, type DecayRun } from './runs.js';
import { readStep } from './scalars.js';
import type { OptimConfig, Optimizer, ParamTensor } from './types.js';

/**
 * Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the update is
 * the sign of an interpolation of momentum and gradient, so every coordinate moves by
 * exactly lr (plus decay). It wants an lr ~3-10x smaller than AdamW's and a weight decay
 * ~3-10x larger (the decay is multiplied by lr). beta1 interpolates, beta2 is the momentum
 * decay (paper defaults 0.9 / 0.99). State: m only.
 */
export class Lion implements Optimizer {
  readonly name = 'lion' as const;
  stepCount = 0;
  private readonly m: FloatArray;
  private readonly runs: DecayRun[];
  private readonly pv: FloatArray[];
  private readonly gv: FloatArray[];
  private readonly mv: FloatArray[];

  constructor(
    private readonly cfg: OptimConfig,
    private readonly kernels: Kernels,
    arena: Arena,
    params: FloatArray,
    grads: FloatArray,
    tensors: readonly ParamTensor[],
  ) {
    this.m = arena.floats(params.length);
    this.runs = decayRuns(tensors, params.length);
    this.pv = runViews(params, this.runs);
    this.gv = runViews(grads, this.runs);
    this.mv = runViews(this.m, this.runs);
  }

  step(lr: number): void {
    const { beta1: b1, beta2: b2, weight_decay } = this.cfg;
    for (let i = 0; i < this.runs.length; i++) {
      const wd = this.runs[i].decay ? weight_decay : 0;
      this.kernels.lionUpdate(this.pv[i], this.gv[i], this.mv[i], this.runs[i].size, lr, b1, b2, wd);
    }
    this.stepCount++;
  }

  state(): Record<string, FloatArray> {
    return { m: this.m };
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
