/**
 * A seeded PRNG whose whole state is one JSON-friendly number, so a checkpoint can save it and
 * a resumed run draws the very same numbers (sampling at evaluations uses it). splitmix32.
 */
export class SeededRng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  }

  /** The generator as a plain function, the form the sampler takes. */
  fn(): () => number {
    return () => this.next();
  }

  state(): number {
    return this.s;
  }

  restore(state: unknown): void {
    if (typeof state !== 'number' || !Number.isInteger(state) || state < 0 || state > 0xffffffff) {
      throw new TypeError(`rng: bad state ${JSON.stringify(state)}`);
    }
    this.s = state;
  }
}
