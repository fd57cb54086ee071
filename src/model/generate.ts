import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import type { GPT } from './gpt.js';
import { lmHeadForward } from './linear.js';
import type { MixerDecoder } from './mixers/mixer.js';
import { blockFinish, blockNormIn, type BlockPlan } from './block.js';
import type { MlpPlan } from './mlp.js';

/**
 * Decoding of `rows` sequences at once (batched sampling: B prompts through one set of matrix
 * products per token). Each row has its own position, so prompts of different lengths run
 * together; a step feeds one token to every active row.
 *
 * The block around the sequence mixer is the training forward's own code (block.ts: norms,
 * residual adds, the MLP plan with one row per sequence). The mixer keeps its own per-row state
 * (Mixer.decoder): attention a KV cache of capacity = min(maxTokens, seq_len) positions (the
 * model never saw a position >= seq_len, and the RoPE tables stop there), rwkv a fixed-size
 * recurrent state with no capacity limit.
 *
 * A row's results do not depend on the other rows (every product is row by row in the kernels
 * the tests check), so B rows give exactly the tokens of B single-row decoders.
 *
 * Generation is evaluation: this decoder never applies dropout, whatever model.dropout says.
 */
export class BatchDecoder {
  readonly rows: number;
  /** Most tokens a row can hold (Infinity for a recurrent mixer). */
  readonly capacity: number;
  private readonly pos: Int32Array;
  private readonly k: Kernels;
  private readonly model: GPT;
  private readonly C: number;
  private readonly V: number;
  private readonly x: FloatArray;
  private readonly y: FloatArray;
  private readonly tokens: Int32Array;
  private readonly out: FloatArray;
  private readonly mixer: MixerDecoder;
  private readonly blocks: BlockPlan[];
  private readonly lnf: FloatArray;
  private readonly rstdf: FloatArray;

  constructor(model: GPT, kernels: Kernels, arena: Arena, rows = 1, maxTokens: number = model.config.seq_len) {
    const cfg = model.config;
    if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new UserError(`generate: maxTokens must be an integer >= 2 (got ${maxTokens})`);
    if (!Number.isInteger(rows) || rows < 1) throw new UserError(`generate: rows must be a positive integer (got ${rows})`);
    this.model = model;
    this.k = kernels;
    this.rows = rows;
    const C = (this.C = cfg.d_model);
    const F = cfg.ffn_hidden;
    this.V = cfg.vocab_size;
    const R = rows;
    this.pos = new Int32Array(R);
    this.x = arena.floats(R * C);
    const ln = arena.floats(R * C);
    const rstd = arena.floats(R);
    this.y = arena.floats(R * C);
    const h = arena.floats(R * 2 * F);
    const sw = arena.floats(R * F);
    this.tokens = arena.ints(R);
    this.out = arena.floats(R * this.V);
    this.lnf = ln;
    this.rstdf = rstd;
    this.mixer = model.mixerDecoder(arena, rows, maxTokens);
    this.capacity = this.mixer.capacity;
    this.blocks = [];
    for (let l = 0; l < cfg.n_layer; l++) {
      const lw = model.w.layers[l]!;
      // One row per sequence: T = 1, maxB = rows. The backward fields are never used (no backward here).
      const mlp: MlpPlan = {
        dims: { maxB: R, T: 1, C, F },
        buf: { x: ln, h, s: sw, y: this.y, wGateUp: lw.wGateUp, wDown: lw.wDown, dy: this.y, dx: ln, dwGateUp: lw.wGateUp, dwDown: lw.wDown, dh: h, ds: sw },
        recompute: false,
      };
      // the residual is updated in place (res = mid = out = x)
      this.blocks.push({
        C, eps: cfg.norm_eps, res: this.x, ln1: ln, rstd1: rstd, y: this.y, mid: this.x, ln2: ln, rstd2: rstd, out: this.x,
        attnNorm: lw.attnNorm, mlpNorm: lw.mlpNorm, mlp,
      });
    }
  }

  /** Tokens row r has been fed (its next token goes at this position). */
  position(r = 0): number {
    return this.pos[r]!;
  }

  /** Forgets row r's context, or every row's (the next step is position 0). */
  reset(r?: number): void {
    if (r === undefined) this.pos.fill(0);
    else this.pos[r] = 0;
    this.mixer.reset(r);
  }

  /**
   * Feeds tokens[r] to each row r with active[r] (all rows without `active`) at its position and
   * returns the logits [rows, V] for each row's next token (a view reused by the next call; rows
   * not active hold nothing meaningful). A row must not be fed past the capacity.
   */
  step(tokens: ArrayLike<number>, active?: ArrayLike<boolean>): FloatArray {
    const R = this.rows;
    for (let r = 0; r < R; r++) {
      const on = !active || active[r];
      const t = on ? tokens[r]! : 0;
      if (!Number.isInteger(t) || t < 0 || t >= this.V) throw new UserError(`generate: token id ${t} is outside the vocabulary [0, ${this.V})`);
      if (on && this.pos[r]! >= this.capacity) throw new Error(`BatchDecoder.step: row ${r} is full (${this.capacity} tokens)`);
      this.tokens[r] = t;
    }
    const k = this.k;
    const m = this.model;
    const cfg = m.config;
    const { C, V } = this;
    k.embeddingForward(this.x, this.tokens, m.w.wte, R, C);
    for (let l = 0; l < cfg.n_layer; l++) {
      const bp = this.blocks[l]!;
      blockNormIn(k, bp, R);
      this.mixer.step(k, l, bp.ln1, this.y, this.pos, active);
      blockFinish(k, bp, R, R, null);
    }
    k.rmsnormForward(this.lnf, this.rstdf, this.x, m.w.finalNorm, R, C, cfg.norm_eps);
    lmHeadForward(k, this.out, this.lnf, m.w.lmHead, R, C, V);
    for (let r = 0; r < R; r++) if (!active || active[r]) this.pos[r]!++;
    return this.out;
  }
}

/**
 * One-token-at-a-time decoding of one sequence (a BatchDecoder of one row). Beyond a finite
 * capacity (attention's KV cache) the window SLIDES: when the cache is full, the last
 * floor(capacity/2) tokens are re-encoded from position 0 (a fresh prefill, so positions stay
 * within what the model was trained on), then decoding continues. That costs capacity/2 extra
 * steps once every capacity/2 tokens. A recurrent mixer (rwkv) has no capacity: it never slides.
 */
export class Generator {
  readonly capacity: number;
  private readonly dec: BatchDecoder;
  private readonly history: Int32Array;
  private readonly one = [0];

  constructor(model: GPT, kernels: Kernels, arena: Arena, maxTokens: number = model.config.seq_len) {
    this.dec = new BatchDecoder(model, kernels, arena, 1, maxTokens);
    this.capacity = this.dec.capacity;
    this.history = new Int32Array(Number.isFinite(this.capacity) ? this.capacity : 0);
  }

  /** Tokens currently in the cache (the next token goes at this position). */
  get position(): number {
    return this.dec.position(0);
  }

  /** Forgets the context (the next step is position 0). */
  reset(): void {
    this.dec.reset();
  }

  /** Feeds one token; returns the logits [V] for the next token (a view reused by the next call). */
  step(token: number): FloatArray {
    if (this.dec.position(0) === this.capacity) this.slide();
    return this.advance(token);
  }

  private slide(): void {
    const keep = Math.floor(this.capacity / 2);
    this.history.copyWithin(0, this.capacity - keep, this.capacity);
    this.dec.reset();
    for (let i = 0; i < keep; i++) this.advance(this.history[i]!);
  }

  private advance(token: number): FloatArray {
    if (this.history.length > 0) this.history[this.dec.position(0)] = token;
    this.one[0] = token;
    return this.dec.step(this.one);
  }
}

export interface SamplingOptions {
  /** 0 = greedy (argmax); otherwise logits are divided by it. */
  temperature: number;
  /** Keep only the k most likely tokens (0 or >= V = no limit). */
  topK?: number;
  /** Nucleus: keep the smallest set of most likely tokens whose probability reaches topP (1 = off). */
  topP?: number;
}

/**
 * Draws a token id from `logits` with `rng()` uniform in [0, 1). Allocates O(V) per call
 * (sampling is per generated token, not per training step).
 */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: () => number): number {
  const V = logits.length;
  if (V === 0) throw new Error('sampleToken: empty logits');
  const temp = opts.temperature;
  if (!(temp >= 0)) throw new UserError(`sampling temperature must be >= 0 (got ${temp})`);
  const topP = opts.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new UserError(`sampling top_p must be in (0, 1] (got ${topP})`);
  const topK = opts.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) throw new UserError(`sampling top_k must be a non-negative integer (got ${topK})`);
  if (temp === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const keep = topK > 0 ? Math.min(topK, V) : V;
  const max = logits[order[0]!]!;
  const probs = new Float64Array(keep);
  let total = 0;
  for (let i = 0; i < keep; i++) {
    probs[i] = Math.exp((logits[order[i]!]! - max) / temp);
    total += probs[i]!;
  }
  // nucleus cut on the renormalised top-k distribution
  let n = keep;
  if (topP < 1) {
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      cum += probs[i]! / total;
      if (cum >= topP) {
        n = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < n; i++) mass += probs[i]!;
  let r = rng() * mass;
  for (let i = 0; i < n; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[n - 1]!;
}
