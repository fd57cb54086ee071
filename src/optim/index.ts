import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { AdamW } from './adamw.js';
import { Lion } from './lion.js';
import { Muon } from './muon.js';
import { ScheduleFreeAdamW } from './schedule-free.js';
import type { OptimConfig, Optimizer, ParamTensor } from './types.js';

export type { OptimConfig, Optimizer, OptimizerName, ParamTensor, ScheduleName } from './types.js';
export { MUON_DEFAULTS } from './types.js';
export { clipGradNorm } from './clip.js';
export { AdamW } from './adamw.js';
export { Lion } from './lion.js';
export { Muon, muonPlan, type MuonBlock, type MuonPlan } from './muon.js';
export { ScheduleFreeAdamW } from './schedule-free.js';

/**
 * Builds the optimizer named by cfg.name over the model's flat params/grads. State buffers
 * come from the arena once, here. Weight decay applies only to tensors with decay=true.
 * Muon orthogonalises the hidden matrices' updates and uses AdamW for the rest.
 */
export function createOptimizer(
  cfg: OptimConfig, kernels: Kernels, arena: Arena, params: FloatArray, grads: FloatArray, tensors: readonly ParamTensor[],
): Optimizer {
  if (grads.length !== params.length) throw new RangeError(`optim: grads (${grads.length}) and params (${params.length}) differ in length`);
  switch (cfg.name) {
    case 'adamw':
      return new AdamW(cfg, kernels, arena, params, grads, tensors);
    case 'lion':
      return new Lion(cfg, kernels, arena, params, grads, tensors);
    case 'sfadamw':
      return new ScheduleFreeAdamW(cfg, kernels, arena, params, grads, tensors);
    case 'muon':
      return new Muon(cfg, kernels, arena, params, grads, tensors);
    default: {
      const never: never = cfg.name;
      throw new Error(`optim: unknown optimizer ${String(never)}`);
    }
  }
}
