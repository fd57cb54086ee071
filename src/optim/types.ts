import type { FloatArray } from '../kernels/types.js';

export type OptimizerName = 'adamw' | 'lion' | 'sfadamw' | 'muon';
export type ScheduleName = 'cosine' | 'linear' | 'constant';

/**
 * The `[optim]` section of the run config (src/train/config.ts validates it; the keys are
 * the TOML keys). Declared here so the optimizers stay usable without the trainer.
 */
export interface OptimConfig {
  name: OptimizerName;
  /** Peak learning rate (after warmup). */
  lr: number;
  /** Learning rate at the end of a cosine/linear decay. Ignored by `constant` and by sfadamw. */
  min_lr: number;
  warmup_steps: number;
  schedule: ScheduleName;
  /** AdamW: first-moment decay. Lion: interpolation for the update sign. sfadamw: y interpolation between z and x. */
  beta1: number;
  /** AdamW / sfadamw: second-moment decay. Lion: momentum decay. */
  beta2: number;
  /** AdamW / sfadamw denominator guard (unused by Lion). */
  eps: number;
  /** Decoupled weight decay, applied only to tensors with `decay: true`. */
  weight_decay: number;
  /**
   * Muon only (the other optimizers ignore these three): the hidden matrices' peak learning
   * rate (the schedule scales it by lr_t / lr, like the AdamW group's), the Nesterov momentum,
   * and the Newton-Schulz steps. Optional here so code that builds an OptimConfig for another
   * optimizer need not name them; the config schema always fills them (MUON_DEFAULTS).
   */
  muon_lr?: number;
  muon_momentum?: number;
  ns_steps?: number;
}

/**
 * Defaults of the Muon keys, the values of modded-nanoGPT's Muon (Jordan et al. 2024) for its
 * update scale sqrt(max(1, fan_out / fan_in)): lr 0.02, momentum 0.95, 5 Newton-Schulz steps.
 */
export const MUON_DEFAULTS = { muon_lr: 0.02, muon_momentum: 0.95, ns_steps: 5 } as const;

/**
 * One parameter tensor as the model lays it out in the flat buffer (the model's
 * ParamTensor fits this). `decay` is false for norm weights and embeddings.
 */
export interface ParamTensor {
  name: string;
  offset: number;
  size: number;
  shape: number[];
  decay: boolean;
}

export interface Optimizer {
  readonly name: OptimizerName;
  /** Updates taken so far (the bias corrections use stepCount + 1 for the next one). */
  stepCount: number;
  /** One update of params from grads, with this step's learning rate (from the schedule). */
  step(lr: number): void;
  /**
   * The live state buffers by name, same layout and length as params. Checkpointing writes
   * them out; restoring writes into these same arrays. Keys never change for an optimizer.
   */
  state(): Record<string, FloatArray>;
  /** Scalar state for checkpoints (always includes `step`). */
  scalars(): Record<string, number>;
  /** Restores what scalars() returned (sets stepCount too). Throws UserError on a missing key. */
  loadScalars(s: Record<string, number>): void;
  /** Schedule-Free: params hold x (the averaged sequence) for eval, sampling, export. Others: no-op. */
  evalParams(): void;
  /** Schedule-Free: params hold y again, bit for bit, for training. Others: no-op. */
  trainParams(): void;
}
