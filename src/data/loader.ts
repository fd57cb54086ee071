import fs from 'node:fs';
import { UserError } from '../util/errors.js';
import { bytesPerToken, readNpyInfo, type NpyInfo } from './npy.js';

/**
 * Batches of token windows read straight from a .npy file with positional reads into one
 * reused buffer: memory stays constant whatever the file size, nothing is allocated per batch.
 *
 * - 'random': each window starts at a uniformly random offset (xoshiro128** seeded by `seed`).
 * - 'epoch': the non-overlapping windows [i*T, i*T+T] visited in a seeded random order,
 *   a fresh order each epoch; the order is a keyed Feistel permutation, so it needs no table.
 *
 * state() is plain JSON; after restore(state()) the batch sequence continues identically.
 */
export type LoaderMode = 'random' | 'epoch';

export interface LoaderOptions { seqLen: number; batchSize: number; seed: number; mode?: LoaderMode }

export interface LoaderState {
  mode: LoaderMode;
  seed: number;
  seqLen: number;
  numTokens: number;
  rng: [number, number, number, number];
  epoch: number;
  index: number; // next window within the epoch
}

export class TokenLoader {
  readonly numTokens: number;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly mode: LoaderMode;
  private readonly seed: number;
  private fd: number | null;
  private readonly info: NpyInfo;
  private readonly buf: Buffer;
  private readonly rng: Uint32Array;
  private epoch = 0;
  private index = 0;
  private readonly numWindows: number;
  private readonly path: string;

  constructor(npyPath: string, opts: LoaderOptions) {
    const { seqLen, batchSize, seed } = opts;
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new UserError(`seq_len must be a positive integer, got ${seqLen}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch_size must be a positive integer, got ${batchSize}`);
    this.path = npyPath;
    try {
      this.fd = fs.openSync(npyPath, 'r');
    } catch {
      throw new UserError(`cannot read token file ${npyPath}; run \`pocketlm prepare\` first`);
    }
    try {
      this.info = readNpyInfo(this.fd, npyPath);
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
    this.numTokens = this.info.length;
    if (this.numTokens < seqLen + 1) {
      fs.closeSync(this.fd);
      throw new UserError(`${npyPath} holds ${this.numTokens} tokens, fewer than seq_len + 1 = ${seqLen + 1}: use more data or a shorter seq_len`);
    }
    this.seqLen = seqLen;
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.mode = opts.mode ?? 'random';
    this.numWindows = Math.floor((this.numTokens - 1) / seqLen);
    this.buf = Buffer.alloc((seqLen + 1) * bytesPerToken(this.info.dtype));
    this.rng = seedRng(this.seed);
  }

  /** Fills inputs and targets (batchSize*seqLen each); targets are inputs shifted by one token. */
  nextBatch(inputs: Int32Array, targets: Int32Array): void {
    const T = this.seqLen;
    const n = this.batchSize * T;
    if (inputs.length < n || targets.length < n) throw new Error(`nextBatch needs arrays of ${n} ids, got ${inputs.length} and ${targets.length}`);
    for (let b = 0; b < this.batchSize; b++) {
      this.readWindow(this.nextStart(), inputs, targets, b * T);
    }
  }

  state(): LoaderState {
    const r = this.rng;
    return { mode: this.mode, seed: this.seed, seqLen: this.seqLen, numTokens: this.numTokens, rng: [r[0]!, r[1]!, r[2]!, r[3]!], epoch: this.epoch, index: this.index };
  }

  restore(s: LoaderState): void {
    if (s.mode !== this.mode || s.seqLen !== this.seqLen || s.numTokens !== this.numTokens || (s.seed >>> 0) !== this.seed) {
      throw new UserError(`loader state does not match this data (saved: ${s.mode}, seq_len ${s.seqLen}, ${s.numTokens} tokens, seed ${s.seed}; now: ${this.mode}, seq_len ${this.seqLen}, ${this.numTokens} tokens, seed ${this.seed})`);
    }
    this.rng.set(s.rng);
    this.epoch = s.epoch;
    this.index = s.index;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private nextStart(): number {
    if (this.mode === 'random') {
      const span = this.numTokens - this.seqLen; // valid starts: 0 .. numTokens - seqLen - 1
      return Math.floor(rngFloat(this.rng) * span);
    }
    if (this.index >= this.numWindows) { this.epoch++; this.index = 0; }
    const w = permute(this.index++, this.numWindows, this.seed, this.epoch);
    return w * this.seqLen;
  }

  /** Reads tokens [start, start+T] into inputs[off..off+T) and targets[off..off+T) (no allocation). */
  readWindow(start: number, inputs: Int32Array, targets: Int32Array, off: number): void {
    if (this.fd === null) throw new Error(`TokenLoader for ${this.path} is closed`);
    const T = this.seqLen;
    const bpt = bytesPerToken(this.info.dtype);
    const want = (T + 1) * bpt;
    let got = 0;
    while (got < want) {
      const n = fs.readSync(this.fd, this.buf, got, want - got, this.info.dataOffset + start * bpt + got);
      if (n === 0) throw new UserError(`${this.path} ended early: the file is truncated`);
      got += n;
    }
    const buf = this.buf;
    if (bpt === 2) {
      let prev = buf.readUInt16LE(0);
      for (let t = 0; t < T; t++) {
        const next = buf.readUInt16LE(2 * (t + 1));
        inputs[off + t] = prev;
        targets[off + t] = next;
        prev = next;
      }
    } else {
      let prev = buf.readUInt32LE(0);
      for (let t = 0; t < T; t++) {
        const next = buf.readUInt32LE(4 * (t + 1));
        inputs[off + t] = prev;
        targets[off + t] = next;
        prev = next;
      }
    }
  }
}

/**
 * TokenLoader's sampling (the same windows for the same seed and state) over ids held in
 * memory: what the browser trains from, having no token files.
 */
export class MemoryTokenLoader {
  readonly numTokens: number;
  readonly mode: LoaderMode;
  private readonly seed: number;
  private readonly rng: Uint32Array;
  private epoch = 0;
  private index = 0;
  private readonly numWindows: number;

  constructor(private readonly tokens: Uint16Array | Uint32Array | Int32Array, readonly seqLen: number, readonly batchSize: number, seed: number, mode: LoaderMode = 'random') {
    this.numTokens = tokens.length;
    if (this.numTokens < seqLen + 1) throw new UserError(`the text holds ${this.numTokens} tokens, fewer than seq_len + 1 = ${seqLen + 1}: use more text`);
    this.seed = seed >>> 0;
    this.mode = mode;
    this.numWindows = Math.floor((this.numTokens - 1) / seqLen);
    this.rng = seedRng(this.seed);
  }

  nextBatch(inputs: Int32Array, targets: Int32Array): void {
    const T = this.seqLen;
    for (let b = 0; b < this.batchSize; b++) {
      const start = this.mode === 'random'
        ? Math.floor(rngFloat(this.rng) * (this.numTokens - T))
        : this.nextWindow() * T;
      for (let t = 0; t < T; t++) {
        inputs[b * T + t] = this.tokens[start + t]!;
        targets[b * T + t] = this.tokens[start + t + 1]!;
      }
    }
  }

  private nextWindow(): number {
    if (this.index >= this.numWindows) { this.epoch++; this.index = 0; }
    return permute(this.index++, this.numWindows, this.seed, this.epoch);
  }

  state(): LoaderState {
    const r = this.rng;
    return { mode: this.mode, seed: this.seed, seqLen: this.seqLen, numTokens: this.numTokens, rng: [r[0]!, r[1]!, r[2]!, r[3]!], epoch: this.epoch, index: this.index };
  }

  restore(s: LoaderState): void {
    if (s.mode !== this.mode || s.seqLen !== this.seqLen || s.numTokens !== this.numTokens || (s.seed >>> 0) !== this.seed) {
      throw new UserError(`loader state does not match this data (saved: ${s.mode}, seq_len ${s.seqLen}, ${s.numTokens} tokens; now: ${this.mode}, seq_len ${this.seqLen}, ${this.numTokens} tokens)`);
    }
    this.rng.set(s.rng);
    this.epoch = s.epoch;
    this.index = s.index;
  }

  /** `count` batches of windows spread evenly over the ids, as fixedValBatches takes them from a file. */
  fixedBatches(count: number): FixedBatch[] {
    const T = this.seqLen;
    const windows = count * this.batchSize;
    const lastStart = this.numTokens - T - 1;
    const out: FixedBatch[] = [];
    for (let c = 0; c < count; c++) {
      const batch = { inputs: new Int32Array(this.batchSize * T), targets: new Int32Array(this.batchSize * T) };
      for (let b = 0; b < this.batchSize; b++) {
        const j = c * this.batchSize + b;
        const start = windows > 1 ? Math.floor((j * lastStart) / (windows - 1)) : 0;
        for (let t = 0; t < T; t++) {
          batch.inputs[b * T + t] = this.tokens[start + t]!;
          batch.targets[b * T + t] = this.tokens[start + t + 1]!;
        }
      }
      out.push(batch);
    }
    return out;
  }
}

export interface FixedBatch { inputs: Int32Array; targets: Int32Array }

/**
 * The same `count` validation batches every time: count*batchSize windows spread evenly
 * over the file, so evaluations at different steps (or of different models) compare.
 */
export function fixedValBatches(npyPath: string, o: { seqLen: number; batchSize: number; count: number }): FixedBatch[] {
  const loader = new TokenLoader(npyPath, { seqLen: o.seqLen, batchSize: o.batchSize, seed: 0 });
  try {
    const windows = o.count * o.batchSize;
    const lastStart = loader.numTokens - o.seqLen - 1;
    const T = o.seqLen;
    const out: FixedBatch[] = [];
    for (let c = 0; c < o.count; c++) {
      const batch = { inputs: new Int32Array(o.batchSize * T), targets: new Int32Array(o.batchSize * T) };
      for (let b = 0; b < o.batchSize; b++) {
        const j = c * o.batchSize + b;
        const start = windows > 1 ? Math.floor((j * lastStart) / (windows - 1)) : 0;
        loader.readWindow(start, batch.inputs, batch.targets, b * T);
      }
      out.push(batch);
    }
    return out;
  } finally {
    loader.close();
  }
}

// ---------------------------------------------------------------- seeded randomness

/** xoshiro128** state from a 32-bit seed via splitmix32 (never all zero). */
function seedRng(seed: number): Uint32Array {
  const s = new Uint32Array(4);
  let x = seed >>> 0;
  for (let i = 0; i < 4; i++) {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    s[i] = (z ^ (z >>> 16)) >>> 0;
  }
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  return s;
}

function rngNext(s: Uint32Array): number {
  const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
  const t = (s[1]! << 9) >>> 0;
  s[2]! ^= s[0]!;
  s[3]! ^= s[1]!;
  s[1]! ^= s[2]!;
  s[0]! ^= s[3]!;
  s[2]! ^= t;
  s[3] = rotl(s[3]!, 11);
  return r;
}

/** Uniform in [0, 1) with 53 random bits. */
function rngFloat(s: Uint32Array): number {
  const hi = rngNext(s) >>> 5;
  const lo = rngNext(s) >>> 6;
  return (hi * 67108864 + lo) / 9007199254740992;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * A bijection of [0, n) keyed by (seed, epoch): a 4-round Feistel network on the smallest
 * even-bit power-of-two domain >= n, cycle-walking until the value falls below n.
 */
export function permute(i: number, n: number, seed: number, epoch: number): number {
  if (n <= 1) return 0;
  let bits = Math.ceil(Math.log2(n));
  if (bits % 2) bits++;
  if (bits < 2) bits = 2;
  const half = bits / 2;
  const mask = 2 ** half - 1;
  const key = mix32((seed >>> 0) ^ mix32((epoch + 0x632be5ab) >>> 0));
  let x = i;
  do {
    let l = Math.floor(x / 2 ** half);
    let r = x % 2 ** half;
    for (let round = 0; round < 4; round++) {
      const f = mix32((r + Math.imul(round + 1, 0x9e3779b9) + key) >>> 0) & mask;
      const nl = r;
      r = (l ^ f) & mask;
      l = nl;
    }
    x = l * 2 ** half + r;
  } while (x >= n);
  return x;
}
