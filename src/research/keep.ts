import type { NoiseEstimate } from './types.js';

/**
 * The keep rule: a candidate replaces the best only when it beats it by more than the noise of
 * a seed change.
 *
 * The noise is measured once, at the start of a study, by training the base config on
 * several seeds (estimateNoise): its sample standard deviation `sd` is how much the score of
 * one config moves from seed to seed at the trial budget. A candidate is scored on one seed
 * first; only when that run beats the best by more than the margin is it run again on a second
 * seed (firstRunVerdict), and it is kept only when the mean of the two runs beats the best by
 * more than the margin (keepDecision).
 *
 * Why margin = 2 x sd: the best is itself a mean of (at least) two runs, so the difference of
 * the candidate's 2-run mean and the best's has variance sd^2/2 + sd^2/2 = sd^2, i.e. a
 * standard deviation of about sd. Requiring the difference to exceed 2 sd is a one-sided
 * 2-sigma test: a candidate no better than the best passes it about 2% of the time (1.6% in
 * simulation, since its first run must pass too). `sd` itself is estimated from few seeds, and
 * an estimate that comes out low lets noise through: simulated with the sd estimated from 2,
 * 3, 4 or 6 seeds (the best their mean), a pure seed change is kept 11%, 5.6%, 3.7% or 2.0% of
 * the time, while a real improvement of 3 sd is kept about 76% of the time in every case
 * (keep.test.ts). So a study should measure the noise on at least 4 seeds.
 *
 * Why a floor of MARGIN_FLOOR: `sd` comes from a handful of runs, and a few runs can agree by
 * luck (two seeds landing 0.0003 apart). With a near-zero margin, every candidate that happens
 * to score a hair below the best would count as significant, and the study would walk on
 * noise for the rest of its run. 0.002 bits/byte is below any improvement worth keeping at
 * these model sizes and above the rounding of the scores.
 */
export const MARGIN_FLOOR = 0.002;
/** The margin in standard deviations of the base's seed-to-seed noise. */
export const MARGIN_SDS = 2;

function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** The noise of the base config from its scores on >= 2 seeds (sample sd, margin = max(2 sd, floor)). */
export function estimateNoise(bpb: readonly number[], seeds: readonly number[]): NoiseEstimate {
  if (bpb.length < 2) throw new Error(`estimateNoise: needs the scores of at least 2 seeds, got ${bpb.length}`);
  if (seeds.length !== bpb.length) throw new Error(`estimateNoise: ${bpb.length} scores but ${seeds.length} seeds`);
  if (!bpb.every(Number.isFinite)) throw new Error(`estimateNoise: scores must be finite, got ${JSON.stringify(bpb)}`);
  const m = mean(bpb);
  const sd = Math.sqrt(bpb.reduce((s, x) => s + (x - m) ** 2, 0) / (bpb.length - 1));
  return { bpb: [...bpb], seeds: [...seeds], mean: m, sd, margin: Math.max(MARGIN_SDS * sd, MARGIN_FLOOR) };
}

/** After a candidate's first run: worth a confirmation run only when it beats the best by more than the margin. */
export function firstRunVerdict(candidateBpb: number, bestBpb: number, noise: NoiseEstimate): 'confirm' | 'discard' {
  return candidateBpb < bestBpb - noise.margin ? 'confirm' : 'discard';
}

export interface KeepDecision {
  kept: boolean;
  /** The mean of the candidate's runs. */
  candidateBpb: number;
  /** "mean 1.2345 of 2 seeds vs best 1.2500 - margin 0.0040 = 1.2460: kept" */
  reason: string;
}

/** Keeps the candidate only when the mean of its runs (its first run and the confirmation) beats the best by more than the margin. */
export function keepDecision(runs: readonly number[], bestBpb: number, noise: NoiseEstimate): KeepDecision {
  if (runs.length === 0) throw new Error('keepDecision: no runs');
  const m = mean(runs);
  const bar = bestBpb - noise.margin;
  const kept = m < bar;
  const f = (x: number) => x.toFixed(4);
  return {
    kept,
    candidateBpb: m,
    reason: `mean ${f(m)} of ${runs.length} seed${runs.length === 1 ? '' : 's'} vs best ${f(bestBpb)} - margin ${f(noise.margin)} = ${f(bar)}: ${kept ? 'kept' : 'not below it, discarded'}`,
  };
}
