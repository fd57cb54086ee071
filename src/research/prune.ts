/**
 * Median pruning (as Optuna's MedianPruner): a trial whose validation score at a rung is worse
 * than the median of the earlier trials' scores at the same rung is stopped there, since a
 * trial that trails half of the others part-way rarely ends up the best, and its remaining
 * budget is better spent on the next candidate. Only once enough earlier trials reached the
 * rung: the median of one or two trials is too noisy to stop anything on.
 */

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * True when `rungValue` (bits per byte at rung `rung`, lower is better) is above the median of
 * the earlier trials' values at that rung, and at least `minTrials` earlier trials reached it.
 * `earlier` holds, per earlier trial (finished or pruned), its bits per byte at rungs 0, 1, ...
 */
export function shouldPrune(rungValue: number, rung: number, earlier: readonly (readonly number[])[], minTrials = 3): boolean {
  const atRung = earlier.filter((t) => t.length > rung && Number.isFinite(t[rung])).map((t) => t[rung]!);
  if (atRung.length < minTrials) return false;
  // A NaN or infinite score (a diverging trial) is worse than any median.
  if (!Number.isFinite(rungValue)) return true;
  return rungValue > median(atRung);
}

/**
 * The steps of `rungs` evaluation points spread evenly inside a trial of `totalSteps` steps:
 * rung r at round((r + 1) / (rungs + 1) x totalSteps), keeping only distinct steps strictly
 * between 0 and totalSteps (a short trial has fewer rungs).
 */
export function rungSteps(totalSteps: number, rungs: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rungs; r++) {
    const s = Math.round(((r + 1) / (rungs + 1)) * totalSteps);
    if (s > 0 && s < totalSteps && !out.includes(s)) out.push(s);
  }
  return out;
}
