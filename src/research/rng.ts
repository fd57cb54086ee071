/**
 * The study's random generator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator,
 * 128 bits of state as four 32-bit words). Every random choice of a study (strategy, keys,
 * values, seeds) comes from one of these, passed in: its state is four integers that the
 * journal records before each trial, so `--resume` continues the exact same sequence.
 * Only 32-bit integer operations (adds, shifts, xors, each result taken `>>> 0`), so the
 * sequence is the same on every platform and Node version.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** A generator seeded from one 32-bit integer (any number: it is taken modulo 2^32). */
  constructor(seed = 0) {
    // splitmix32 spreads the seed over the four words, so nearby seeds give unrelated streams.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = 1; // sfc32's counter
    // The first outputs of a freshly seeded sfc32 are still correlated with the seed.
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** A generator continuing from a saved `state()`. */
  static from(state: readonly number[]): Rng {
    if (state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new Error(`Rng.from: expected four 32-bit unsigned integers, got ${JSON.stringify(state)}`);
    }
    const r = new Rng(0);
    [r.a, r.b, r.c, r.d] = state as [number, number, number, number];
    return r;
  }

  /** The generator's state: four 32-bit unsigned integers (JSON-safe). */
  state(): number[] {
    return [this.a, this.b, this.c, this.d];
  }

  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    this.d = (this.d + 1) >>> 0;
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.a = (this.b ^ (this.b >>> 9)) >>> 0;
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** A uniform integer from lo to hi, both included. */
  int(lo: number, hi: number): number {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) throw new Error(`Rng.int: bad range ${lo}..${hi}`);
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(arr: readonly T[]): T {
    if (arr.length === 0) throw new Error('Rng.pick: empty array');
    return arr[Math.floor(this.next() * arr.length)]!;
  }

  /** An index chosen with probability proportional to its weight (weights >= 0, some > 0). */
  weighted(weights: readonly number[]): number {
    const total = weights.reduce((s, w) => s + w, 0);
    if (!(total > 0) || weights.some((w) => !(w >= 0))) throw new Error(`Rng.weighted: bad weights ${JSON.stringify(weights)}`);
    let u = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i]!;
      if (u < 0) return i;
    }
    // u can reach the end only by rounding: the last index with positive weight.
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
    return weights.length - 1;
  }

  /** A standard normal draw (Box-Muller; uses two uniforms). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log(u) is finite
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}
