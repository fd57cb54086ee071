import { UserError } from '../util/errors.js';

/** Reads one scalar from a checkpoint's optimizer scalars; a missing or non-finite one is a corrupt checkpoint. */
export function readScalar(s: Record<string, number>, key: string, optimizer: string): number {
  const v = s[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new UserError(`optimizer state for ${optimizer} has no valid scalar "${key}" (got ${JSON.stringify(v)}): the checkpoint is corrupt or from another optimizer`);
  }
  return v;
}

/** The step count from a checkpoint: a non-negative integer. */
export function readStep(s: Record<string, number>, optimizer: string): number {
  const step = readScalar(s, 'step', optimizer);
  if (!Number.isInteger(step) || step < 0) {
    throw new UserError(`optimizer state for ${optimizer} has step ${step}; expected a non-negative integer`);
  }
  return step;
}
