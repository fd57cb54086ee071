/**
 * Small seeded PRNGs for deterministic init and sampling. No global state: each caller owns
 * its generator object.
 */

export { mulberry32 } from '../util/rng.js';

/** Standard normal samples by Box-Muller over a uniform source (the spare value is kept). */
export function normalSampler(uniform: () => number): () => number {
  let spare = 0;
  let hasSpare = false;
  return () => {
    if (hasSpare) {
      hasSpare = false;
      return spare;
    }
    let u = 0;
    while (u === 0) u = uniform(); // log(0) guard
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    hasSpare = true;
    return r * Math.cos(2 * Math.PI * v);
  };
}
