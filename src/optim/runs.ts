import type { FloatArray } from '../kernels/types.js';
import type { ParamTensor } from './types.js';

/** A contiguous range of the parameter buffer whose tensors share one decay flag. */
export interface DecayRun {
  offset: number;
  size: number;
  decay: boolean;
}

/**
 * Merges the model's tensors into the fewest contiguous runs with the same decay flag,
 * so an update is a handful of kernel calls instead of one per tensor. Gaps between
 * tensors (alignment padding) split runs: padding is never touched.
 */
export function decayRuns(tensors: readonly ParamTensor[], length: number): DecayRun[] {
  const sorted = [...tensors].filter((t) => t.size > 0).sort((a, b) => a.offset - b.offset);
  const runs: DecayRun[] = [];
  let end = 0;
  for (const t of sorted) {
    if (!Number.isInteger(t.offset) || !Number.isInteger(t.size) || t.offset < 0 || t.offset + t.size > length) {
      throw new RangeError(`optim: tensor "${t.name}" [${t.offset}, ${t.offset + t.size}) lies outside the parameter buffer of ${length}`);
    }
    if (t.offset < end) throw new RangeError(`optim: tensor "${t.name}" overlaps the previous tensor`);
    const last = runs[runs.length - 1];
    if (last && last.decay === t.decay && last.offset + last.size === t.offset) last.size += t.size;
    else runs.push({ offset: t.offset, size: t.size, decay: t.decay });
    end = t.offset + t.size;
  }
  return runs;
}

/** The run's window into each buffer, made once so no view is created per step. */
export function runViews(buf: FloatArray, runs: readonly DecayRun[]): FloatArray[] {
  return runs.map((r) => buf.subarray(r.offset, r.offset + r.size));
}
