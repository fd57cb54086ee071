import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import { headDim } from './config.js';
import type { GPT } from './gpt.js';
import { linearForward, lmHeadForward } from './linear.js';

/**
 * One-token-at-a-time decoding with a KV cache (batch 1). Per layer the cache holds K and V
 * [capacity, C] (post-RoPE keys), capacity = min(maxTokens, seq_len): the model never saw a
 * position >= seq_len, and the RoPE tables stop there.
 *
 * Beyond the capacity the window SLIDES: when the cache is full, the last floor(capacity/2)
 * tokens are re-encoded from position 0 (a fresh prefill, so positions stay within what the
 * model was trained on), then decoding continues. That costs capacity/2 extra steps once every
 * capacity/2 tokens.
 *
 * Attention softmax for one query row uses `crossEntropyForwardBackward` with target 0 and
 * dscale 1, which writes softmax(row) - onehot(0) in place; adding 1 back to element 0 leaves
 * the softmax (absolute error ~1 ulp of 1.0 on that element). This keeps every exp inside the
 * kernels at O(H * n) per token, where the [T, T] causal kernel would cost O(H * n^2).
 *
 * Generation is evaluation: this decoder has its own forward over the model's weights and never
 * applies dropout, whatever model.dropout says (dropout only acts in GPT forwards keyed by
 * GPT.setDropoutKey, i.e. training micro-batches).
 */
export class Generator {
  readonly capacity: number;
  private pos = 0;
  private readonly k: Kernels;
  private readonly model: GPT;
  private readonly C: number;
  private readonly H: number;
  private readonly D: number;
  private readonly F: number;
  private readonly V: number;
  private readonly x: FloatArray;
  private readonly ln: FloatArray;
  private readonly rstd: FloatArray;
  private readonly q: FloatArray;
  private readonly atty: FloatArray;
  private readonly y: FloatArray;
  private readonly h: FloatArray;
  private readonly s: FloatArray;
  private readonly scores: FloatArray;
  private readonly rowLoss: FloatArray;
  private readonly zeroTargets: Int32Array;
  private readonly token: Int32Array;
  private readonly out: FloatArray;
  private readonly history: Int32Array;
  private readonly kCache: FloatArray[];
  private readonly vCache: FloatArray[];
  /** Views made once: cache rows per (layer, position), RoPE rows per position, wqkv column blocks. */
  private readonly kRow: FloatArray[][];
  private readonly vRow: FloatArray[][];
  private readonly cosAt: FloatArray[];
  private readonly sinAt: FloatArray[];
  private readonly wk: FloatArray[];
  private readonly wv: FloatArray[];

  constructor(model: GPT, kernels: Kernels, arena: Arena, maxTokens: number = model.config.seq_len) {
    const cfg = model.config;
    if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new UserError(`generate: maxTokens must be an integer >= 2 (got ${maxTokens})`);
    this.model = model;
    this.k = kernels;
    this.capacity = Math.min(maxTokens, cfg.seq_len);
    const C = (this.C = cfg.d_model);
    this.H = cfg.n_head;
    const D = (this.D = headDim(cfg));
    const F = (this.F = cfg.ffn_hidden);
    this.V = cfg.vocab_size;
    const cap = this.capacity;
    this.x = arena.floats(C);
    this.ln = arena.floats(C);
    this.rstd = arena.floats(1);
    this.q = arena.floats(C);
    this.atty = arena.floats(C);
    this.y = arena.floats(C);
    this.h = arena.floats(2 * F);
    this.s = arena.floats(F);
    this.scores = arena.floats(this.H * cap);
    this.rowLoss = arena.floats(this.H);
    this.zeroTargets = arena.ints(this.H);
    this.token = arena.ints(1);
    this.out = arena.floats(this.V);
    this.history = new Int32Array(cap);
    this.kCache = [];
    this.vCache = [];
    this.kRow = [];
    this.vRow = [];
    this.wk = [];
    this.wv = [];
    for (let l = 0; l < cfg.n_layer; l++) {
      const kc = arena.floats(cap * C);
      const vc = arena.floats(cap * C);
      this.kCache.push(kc);
      this.vCache.push(vc);
      const kr: FloatArray[] = [];
      const vr: FloatArray[] = [];
      for (let p = 0; p < cap; p++) {
        kr.push(kc.subarray(p * C, (p + 1) * C));
        vr.push(vc.subarray(p * C, (p + 1) * C));
      }
      this.kRow.push(kr);
      this.vRow.push(vr);
      const wqkv = model.w.layers[l]!.wqkv;
      this.wk.push(wqkv.subarray(C));
      this.wv.push(wqkv.subarray(2 * C));
    }
    this.cosAt = [];
    this.sinAt = [];
    for (let p = 0; p < cap; p++) {
      this.cosAt.push(model.ropeCos.subarray((p * D) / 2));
      this.sinAt.push(model.ropeSin.subarray((p * D) / 2));
    }
  }

  /** Tokens currently in the cache (the next token goes at this position). */
  get position(): number {
    return this.pos;
  }

  /** Forgets the context (the next step is position 0). */
  reset(): void {
    this.pos = 0;
  }

  /** Feeds one token; returns the logits [V] for the next token (a view reused by the next call). */
  step(token: number): FloatArray {
    if (!Number.isInteger(token) || token < 0 || token >= this.V) throw new UserError(`generate: token id ${token} is outside the vocabulary [0, ${this.V})`);
    if (this.pos === this.capacity) this.slide();
    return this.advance(token);
  }

  private slide(): void {
    const keep = Math.floor(this.capacity / 2);
    this.history.copyWithin(0, this.capacity - keep, this.capacity);
    this.pos = 0;
    for (let i = 0; i < keep; i++) this.advance(this.history[i]!);
  }

  private advance(token: number): FloatArray {
    const k = this.k;
    const m = this.model;
    const cfg = m.config;
    const { C, H, D, F, V } = this;
    const p = this.pos;
    const n = p + 1;
    const C3 = 3 * C;
    const eps = cfg.norm_eps;
    this.history[p] = token;
    this.token[0] = token;
    k.embeddingForward(this.x, this.token, m.w.wte, 1, C);
    for (let l = 0; l < cfg.n_layer; l++) {
      const lw = m.w.layers[l]!;
      k.rmsnormForward(this.ln, this.rstd, this.x, lw.attnNorm, 1, C, eps);
      // q into scratch; k and v straight into this position's cache rows
      k.gemm(false, false, 1, C, C, 1, this.ln, C, lw.wqkv, C3, 0, this.q, C);
      k.gemm(false, false, 1, C, C, 1, this.ln, C, this.wk[l]!, C3, 0, this.kRow[l]![p]!, C);
      k.gemm(false, false, 1, C, C, 1, this.ln, C, this.wv[l]!, C3, 0, this.vRow[l]![p]!, C);
      k.ropeForward(this.q, 1, 1, H, D, C, this.cosAt[p]!, this.sinAt[p]!);
      k.ropeForward(this.kRow[l]![p]!, 1, 1, H, D, C, this.cosAt[p]!, this.sinAt[p]!);
      // scores[h, j] = q_h . k_h[j] / sqrt(D), j < n; rows of length n, one per head
      k.gemmStridedBatched(false, true, 1, n, D, 1 / Math.sqrt(D), this.q, C, D, this.kCache[l]!, C, D, 0, this.scores, n, n, H);
      k.crossEntropyForwardBackward(this.scores, this.rowLoss, this.scores, this.zeroTargets, H, n, 1);
      for (let hd = 0; hd < H; hd++) this.scores[hd * n] += 1;
      k.gemmStridedBatched(false, false, 1, D, n, 1, this.scores, n, n, this.vCache[l]!, C, D, 0, this.atty, C, D, H);
      linearForward(k, this.y, this.atty, lw.wo, 1, C, C);
      k.add(this.x, this.x, this.y, C);
      k.rmsnormForward(this.ln, this.rstd, this.x, lw.mlpNorm, 1, C, eps);
      linearForward(k, this.h, this.ln, lw.wGateUp, 1, C, 2 * F);
      k.swigluForward(this.s, this.h, 1, F);
      linearForward(k, this.y, this.s, lw.wDown, 1, F, C);
      k.add(this.x, this.x, this.y, C);
    }
    k.rmsnormForward(this.ln, this.rstd, this.x, m.w.finalNorm, 1, C, eps);
    lmHeadForward(k, this.out, this.ln, m.w.lmHead, 1, C, V);
    this.pos = n;
    return this.out;
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
