import type { FloatArray } from '../types.js';

function targetOf(targets: Int32Array, i: number, V: number): number {
  const t = targets[i];
  if (!(t >= 0 && t < V)) throw new RangeError(`crossEntropy: target ${t} at row ${i} is outside [0, ${V})`);
  return t;
}

/** logsumexp of logits[row .. row+V), shifted by the max so exp never overflows. */
function logSumExp(logits: FloatArray, row: number, V: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[row + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[row + v] - max);
  return max + Math.log(sum);
}

/** losses[i] = logsumexp(logits[i, :]) - logits[i, targets[i]]. Writes losses; logits untouched. */
export function crossEntropyForward(losses: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number): void {
  for (let i = 0; i < N; i++) {
    const row = i * V;
    const t = targetOf(targets, i, V);
    losses[i] = logSumExp(logits, row, V) - logits[row + t];
  }
}

/**
 * Writes losses as crossEntropyForward and dlogits = dscale * (softmax - onehot(target)).
 * In place ok: each row's loss is computed from logits before any of that row is written,
 * and the write to dlogits[v] only needs logits[v].
 */
export function crossEntropyForwardBackward(
  dlogits: FloatArray, losses: FloatArray, logits: FloatArray, targets: Int32Array,
  N: number, V: number, dscale: number,
): void {
  for (let i = 0; i < N; i++) {
    const row = i * V;
    const t = targetOf(targets, i, V);
    const lse = logSumExp(logits, row, V);
    losses[i] = lse - logits[row + t];
    for (let v = 0; v < V; v++) {
      const p = Math.exp(logits[row + v] - lse);
      dlogits[row + v] = dscale * (v === t ? p - 1 : p);
    }
  }
}
