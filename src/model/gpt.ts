import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import { DEFAULT_KEEP_BUDGET_BYTES, planActivations, type Activations } from './activations.js';
import { validateModelConfig, type ModelConfig } from './config.js';
import { mixerFor, type Mixer, type MixerLayer } from './mixers/index.js';
import type { MixerDecoder } from './mixers/mixer.js';
import { planLayout, weightViews, type ModelWeights, type ParamTensor, type PlannedTensor } from './layout.js';
import { lmHeadBackward, lmHeadForward } from './linear.js';
import { mlpBackward, type MlpPlan } from './mlp.js';
import { mulberry32, normalSampler } from './rng.js';
import { dropoutBackward, dropoutForward, dropoutStream, dropoutThreshold } from './dropout.js';
import { blockFinish, blockNormIn, type BlockDropout, type BlockPlan } from './block.js';

export type { ParamTensor } from './layout.js';

/**
 * A target id that is not scored: its position adds nothing to the loss or the gradient (a
 * prompt's tokens in fine-tuning, padding after a short sequence).
 */
export const IGNORE_ID = -1;

/** How a forward with targets reduces the per-token losses of the positions it scores. */
export type LossReduction = 'mean' | 'sum';

/**
 * The GPT (Llama-style): token embedding -> n_layer x [RMSNorm -> sequence mixer -> residual;
 * RMSNorm -> SwiGLU MLP (fused gate|up) -> down-proj -> residual] -> final RMSNorm -> LM head
 * (tied to wte or not) -> mean cross-entropy (nats). The mixer is model.mixer (src/model/mixers/):
 * attention (fused QKV, RoPE, causal softmax, out-proj) or rwkv (time mixing, out-proj).
 *
 * With model.dropout = p > 0, a forward keyed by setDropoutKey() drops (inverted dropout,
 * dropout.ts) the embedding output and each residual branch's output before its residual add:
 * 2 n_layer + 1 sites. Every other forward (evaluation, validation) runs without dropout.
 *
 * Parameters, gradients and activations are planned and allocated once in the constructor;
 * forward/backward allocate nothing. All arithmetic goes through `Kernels`, so every backend
 * runs the model (float64 on the js backend with a `HeapArena('f64')` for gradient checks).
 */
export class GPT {
  readonly config: ModelConfig;
  readonly batchSize: number;
  readonly params: FloatArray;
  readonly grads: FloatArray;
  readonly tensors: ParamTensor[];
  readonly numParams: number;

  private readonly k: Kernels;
  private readonly planned: PlannedTensor[];
  /** Named views into params / grads. */
  readonly w: ModelWeights;
  readonly g: ModelWeights;
  /** The sequence mixer (model.mixer) and its per-layer op pairs over this model's buffers. */
  readonly mixer: Mixer;
  private readonly mixers: MixerLayer[];
  private readonly newMixerDecoder: (arena: Arena, rows: number, maxTokens: number) => MixerDecoder;
  private readonly acts: Activations;
  private readonly mlp: MlpPlan[];
  /** Per layer: the block's buffers for the shared forward code (block.ts). */
  private readonly blocks: BlockPlan[];
  /** Per layer: its dropout streams for the forward in progress (objects made once). */
  private readonly blockDrops: BlockDropout[];
  /** Our own copies of the ids (arena memory, so every backend can read them). */
  private readonly inputIds: Int32Array;
  private readonly targetIds: Int32Array;
  /** logits views [B*T, V] for each B in 1..batchSize (made once). */
  private readonly logitViews: FloatArray[];
  private lastB = 0;
  /** 'none' before any forward; 'loss' after a forward with targets; 'logits' without. */
  private state: 'none' | 'loss' | 'logits' = 'none';
  /** Per position of the last forward with targets: 1 = scored, 0 = IGNORE_ID (JS memory: only the model reads it). */
  private readonly scored: Uint8Array;
  /** Positions the last forward with targets scored, and whether any was ignored. */
  private scoredCount = 0;
  private anyIgnored = false;
  /** Whether tokenLosses()/sequenceLogProbs() describe the last forward (with targets). */
  private lossesValid = false;
  /** Forward only: no gradient buffer; backward() refuses. */
  readonly frozen: boolean;
  /** model.dropout (0 = off: no dropout code runs at all). */
  private readonly dropP: number;
  /** dropoutThreshold(dropP), an int32 like the streams: kernel arguments V8 passes unboxed. */
  private readonly dropThreshold: number;
  /** The key setDropoutKey() gave for the next forward (consumed by it), or none. */
  private pendingDropout = false;
  private pendingSeed = 0;
  private pendingCounter = 0;
  /** Whether the last forward dropped, and its per-site streams (site 0 = embedding, 1 + 2l / 2 + 2l = layer l's attention / MLP). */
  private dropActive = false;
  private readonly dropStreams: Int32Array;

  /**
   * `keepBudgetBytes`: the normed inputs and SwiGLU outputs are kept for backward when all
   * layers' copies fit in it, else recomputed (see activations.ts; same results either way).
   * `frozen`: a forward-only model (e.g. the frozen reference of SPIN): no gradient buffer is
   * allocated (`grads` is empty) and backward() refuses.
   */
  constructor(config: ModelConfig, kernels: Kernels, arena: Arena, batchSize: number,
    opts: { keepBudgetBytes?: number; frozen?: boolean } = {}) {
    validateModelConfig(config);
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new UserError(`batch size must be a positive integer (got ${batchSize})`);
    this.config = { ...config };
    this.batchSize = batchSize;
    this.dropP = config.dropout ?? 0;
    this.dropThreshold = dropoutThreshold(this.dropP);
    this.dropStreams = new Int32Array(2 * config.n_layer + 1);
    this.k = kernels;
    const layout = planLayout(config);
    this.planned = layout.tensors;
    this.tensors = layout.tensors.map(({ name, offset, size, shape, decay }) => ({ name, offset, size, shape: [...shape], decay }));
    this.numParams = layout.numParams;
    this.frozen = opts.frozen === true;
    this.params = arena.floats(this.numParams);
    // Frozen: empty, so every gradient view below is empty too (backward refuses before using one).
    this.grads = arena.floats(this.frozen ? 0 : this.numParams);
    this.w = weightViews(this.params, layout, config);
    this.g = weightViews(this.grads, layout, config);

    const T = config.seq_len;
    const C = config.d_model;

    const a = planActivations(config, arena, batchSize, opts.keepBudgetBytes ?? DEFAULT_KEEP_BUDGET_BYTES);
    this.acts = a;
    this.mlp = [];
    this.blocks = [];
    this.blockDrops = [];
    // With dropout the branches back-propagate the MASKED residual gradient, written into the
    // y scratch (free during backward); without, they read dres itself as before.
    const branchDy = this.dropP > 0 ? a.y : a.dres;
    this.mixer = mixerFor(config);
    const built = this.mixer.build({
      cfg: this.config, maxB: batchSize, backend: kernels.name, arena,
      weights: this.w.layers.map((lw) => lw.mixer), grads: this.g.layers.map((lg) => lg.mixer),
      x: a.layers.map((la) => la.ln1), y: a.y, dy: branchDy, dx: a.dC, scratch: a.mixerScratch,
    });
    this.mixers = built.layers;
    const weights = this.w.layers.map((lw) => lw.mixer);
    this.newMixerDecoder = (arena2, rows, maxTokens) => built.decoder({ cfg: this.config, arena: arena2, rows, maxTokens, weights });
    for (let l = 0; l < config.n_layer; l++) {
      const la = a.layers[l]!;
      this.mlp.push({
        dims: { maxB: batchSize, T, C, F: config.ffn_hidden },
        buf: {
          x: la.ln2, h: la.h, s: la.s, y: a.y, wGateUp: this.w.layers[l]!.wGateUp, wDown: this.w.layers[l]!.wDown,
          dy: branchDy, dx: a.dC, dwGateUp: this.g.layers[l]!.wGateUp, dwDown: this.g.layers[l]!.wDown, dh: la.h, ds: a.s,
        },
        recompute: a.recompute,
      });
      const lw = this.w.layers[l]!;
      this.blocks.push({
        C, eps: config.norm_eps, res: la.res, ln1: la.ln1, rstd1: la.rstd1, y: a.y, mid: la.mid, ln2: la.ln2, rstd2: la.rstd2,
        out: l + 1 < config.n_layer ? a.layers[l + 1]!.res : a.resFinal, attnNorm: lw.attnNorm, mlpNorm: lw.mlpNorm, mlp: this.mlp[l]!,
      });
      this.blockDrops.push({ threshold: this.dropThreshold, attnStream: 0, mlpStream: 0 });
    }
    this.inputIds = arena.ints(batchSize * T);
    this.targetIds = arena.ints(batchSize * T);
    this.scored = new Uint8Array(batchSize * T);
    this.logitViews = [];
    for (let b = 1; b <= batchSize; b++) this.logitViews.push(a.logits.subarray(0, b * T * config.vocab_size));
  }

  /**
   * Deterministic init from `seed`: weight matrices and embeddings normal(0, init_std); the
   * residual-branch output projections (wo, w_down) normal(0, init_std / sqrt(2 n_layer)); norm
   * weights 1; a mixer's own vectors (rwkv's mixes, decays, bonuses) their fixed values. Same
   * seed => same parameters, in float32 and float64 alike.
   */
  init(seed: number): void {
    const normal = normalSampler(mulberry32(seed));
    const std = this.config.init_std;
    const resStd = std / Math.sqrt(2 * this.config.n_layer);
    for (const t of this.planned) {
      const end = t.offset + t.size;
      if (t.init === 'ones') {
        this.params.fill(1, t.offset, end);
        continue;
      }
      if (typeof t.init === 'object') {
        for (let i = 0; i < t.size; i++) this.params[t.offset + i] = t.init.values(i);
        continue;
      }
      const s = t.init === 'normal_residual' ? resStd : std;
      for (let i = t.offset; i < end; i++) this.params[i] = normal() * s;
    }
  }

  /**
   * Keys the NEXT forward's dropout masks (training): `seed` is the run's seed, `counter` an
   * integer in [0, 2^53) unique per micro-batch (the trainer passes step * grad_accum + micro).
   * The masks are a pure function of (seed, counter, site), recomputed in backward, so a resumed
   * run draws the same ones. That forward consumes the key: a forward without a fresh key (the
   * evaluation mode: validation, eval, sampling) applies no dropout. A no-op when model.dropout
   * is 0.
   */
  setDropoutKey(seed: number, counter: number): void {
    if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`setDropoutKey: counter must be an integer in [0, 2^53) (got ${counter})`);
    if (this.dropP === 0) return;
    this.pendingDropout = true;
    this.pendingSeed = seed;
    this.pendingCounter = counter;
  }

  /**
   * The mixer's decoding state for `rows` sequences of up to `maxTokens` tokens (BatchDecoder):
   * a KV cache for attention (sharing this model's RoPE tables), a recurrent state for rwkv.
   */
  mixerDecoder(arena: Arena, rows: number, maxTokens: number): MixerDecoder {
    return this.newMixerDecoder(arena, rows, maxTokens);
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  private copyIds(dst: Int32Array, src: Int32Array, n: number, what: string, scored: Uint8Array | null = null): void {
    if (src.length < n) throw new UserError(`${what}: expected at least ${n} token ids (B*seq_len), got ${src.length}`);
    const V = this.config.vocab_size;
    for (let i = 0; i < n; i++) {
      const id = src[i]!;
      if (scored && id === IGNORE_ID) {
        // the kernel needs a valid id; this position's loss and gradient are zeroed after it
        dst[i] = 0;
        scored[i] = 0;
        continue;
      }
      if (id < 0 || id >= V) throw new UserError(`${what}: token id ${id} at index ${i} is outside the vocabulary [0, ${V})`);
      dst[i] = id;
      if (scored) scored[i] = 1;
    }
  }

  /**
   * Runs the model on B*seq_len ids (B <= batchSize, rows of seq_len). With targets: returns the
   * mean cross-entropy in nats/token over the scored positions (targets equal to IGNORE_ID are
   * not scored) and prepares backward (dlogits overwrite the logits). The loss backward
   * differentiates is that mean (`reduction: 'mean'`, the default) or the sum over scored
   * positions (`'sum'`). Without targets: returns NaN and leaves the logits readable through
   * `logits()`.
   */
  forward(inputs: Int32Array, targets: Int32Array | null, B: number = this.batchSize, opts: { reduction?: LossReduction } = {}): number {
    if (!Number.isInteger(B) || B < 1 || B > this.batchSize) throw new UserError(`forward: B must be in 1..${this.batchSize} (got ${B})`);
    const k = this.k;
    const cfg = this.config;
    const a = this.acts;
    const T = cfg.seq_len;
    const C = cfg.d_model;
    const V = cfg.vocab_size;
    const N = B * T;
    const eps = cfg.norm_eps;
    this.copyIds(this.inputIds, inputs, N, 'inputs');
    this.lossesValid = false;
    let scoredCount = N;
    if (targets) {
      this.copyIds(this.targetIds, targets, N, 'targets', this.scored);
      scoredCount = 0;
      for (let i = 0; i < N; i++) scoredCount += this.scored[i]!;
      if (scoredCount === 0) throw new UserError('forward: every target is IGNORE_ID: there is nothing to score');
    }
    const drop = this.pendingDropout;
    this.pendingDropout = false;
    this.dropActive = drop;
    const p = this.dropThreshold;
    const streams = this.dropStreams;
    if (drop) for (let i = 0; i < streams.length; i++) streams[i] = dropoutStream(this.pendingSeed, this.pendingCounter, i);

    k.embeddingForward(a.layers[0]!.res, this.inputIds, this.w.wte, N, C);
    if (drop) dropoutForward(k, a.layers[0]!.res, a.layers[0]!.res, N * C, p, streams[0]!);
    for (let l = 0; l < cfg.n_layer; l++) {
      const bd = this.blockDrops[l]!;
      if (drop) { bd.attnStream = streams[1 + 2 * l]!; bd.mlpStream = streams[2 + 2 * l]!; }
      blockNormIn(k, this.blocks[l]!, N);
      this.mixers[l]!.forward(k, B);
      blockFinish(k, this.blocks[l]!, B, N, drop ? bd : null);
    }
    k.rmsnormForward(a.lnf, a.rstdf, a.resFinal, this.w.finalNorm, N, C, eps);
    lmHeadForward(k, a.logits, a.lnf, this.w.lmHead, N, C, V);
    this.lastB = B;
    if (!targets) {
      this.state = 'logits';
      return Number.NaN;
    }
    // fused loss + dlogits (in place): dlogits of the mean (or summed) loss; backward's scale rides on gemm alpha
    const dscale = opts.reduction === 'sum' ? 1 : 1 / scoredCount;
    k.crossEntropyForwardBackward(a.logits, a.losses, a.logits, this.targetIds, N, V, dscale);
    this.scoredCount = scoredCount;
    this.anyIgnored = scoredCount < N;
    if (this.anyIgnored) {
      // ignored positions: no loss, no gradient
      for (let i = 0; i < N; i++) {
        if (this.scored[i]) continue;
        a.losses[i] = 0;
        a.logits.fill(0, i * V, (i + 1) * V);
      }
    }
    this.state = 'loss';
    this.lossesValid = true;
    let sum = 0;
    for (let i = 0; i < N; i++) sum += a.losses[i]!;
    return sum / scoredCount;
  }

  /**
   * Backward of the loss of the last forward (which must have had targets), times `scale`
   * (e.g. 1 / grad_accum). With `sequenceWeights` (one per row, any sign), each row's share of
   * that loss is multiplied by its weight first: the gradient of scale * sum_b w_b L_b (SPIN's
   * per-pair weights, or a STaR batch's). ACCUMULATES into `grads`: call zeroGrad() once per
   * optimizer step.
   */
  backward(scale = 1, sequenceWeights?: ArrayLike<number>): void {
    if (this.frozen) throw new Error('GPT.backward: this model is frozen (forward only)');
    if (this.state !== 'loss') throw new Error('GPT.backward: call forward(inputs, targets) first (once per backward)');
    this.state = 'none';
    if (sequenceWeights) this.weightRows(sequenceWeights);
    const k = this.k;
    const cfg = this.config;
    const a = this.acts;
    const B = this.lastB;
    const T = cfg.seq_len;
    const C = cfg.d_model;
    const N = B * T;
    const eps = cfg.norm_eps;
    // the LM head applies `scale`; everything below is linear in its output gradient
    lmHeadBackward(k, a.dC, this.g.lmHead, a.logits, a.lnf, this.w.lmHead, N, C, cfg.vocab_size, scale);
    a.dres.fill(0, 0, N * C); // rmsnormBackward accumulates into it
    k.rmsnormBackward(a.dres, this.g.finalNorm, a.dC, a.resFinal, this.w.finalNorm, a.rstdf, N, C);
    // With model.dropout > 0 each branch reads its output gradient from a.y: dres through the
    // forward's mask, or (a forward without dropout) through p = 0, a plain copy.
    const on = this.dropP > 0;
    const pl = this.dropActive ? this.dropThreshold : 0;
    const streams = this.dropStreams;
    for (let l = cfg.n_layer - 1; l >= 0; l--) {
      const la = a.layers[l]!;
      const lw = this.w.layers[l]!;
      const lg = this.g.layers[l]!;
      // dres = dL/d(layer output); the residual path carries it through unchanged and each
      // sublayer's norm backward adds its branch's contribution (the kernel accumulates)
      // normed inputs not kept: recompute them (identical values, rstd rewritten as is)
      if (a.recompute) k.rmsnormForward(la.ln2, la.rstd2, la.mid, lw.mlpNorm, N, C, eps);
      if (on) dropoutBackward(k, a.y, a.dres, N * C, pl, streams[2 + 2 * l]!);
      mlpBackward(k, this.mlp[l]!, B);
      k.rmsnormBackward(a.dres, lg.mlpNorm, a.dC, la.mid, lw.mlpNorm, la.rstd2, N, C);
      if (a.recompute) k.rmsnormForward(la.ln1, la.rstd1, la.res, lw.attnNorm, N, C, eps);
      if (on) dropoutBackward(k, a.y, a.dres, N * C, pl, streams[1 + 2 * l]!);
      this.mixers[l]!.backward(k, B, 1);
      k.rmsnormBackward(a.dres, lg.attnNorm, a.dC, la.res, lw.attnNorm, la.rstd1, N, C);
    }
    // the embedding's own mask: dres is not needed after this, so in place
    if (this.dropActive) dropoutBackward(k, a.dres, a.dres, N * C, this.dropThreshold, streams[0]!);
    k.embeddingBackward(this.g.wte, a.dres, this.inputIds, N, C);
  }

  /** Multiplies each row's dlogits by its weight (plain loop: the arena is JS-visible on every backend). */
  private weightRows(w: ArrayLike<number>): void {
    const B = this.lastB;
    if (w.length < B) throw new Error(`GPT.backward: ${w.length} sequence weights for ${B} rows`);
    const rowFloats = this.config.seq_len * this.config.vocab_size;
    const d = this.acts.logits;
    for (let b = 0; b < B; b++) {
      const wb = w[b]!;
      if (wb === 1) continue;
      const end = (b + 1) * rowFloats;
      for (let i = b * rowFloats; i < end; i++) d[i] = d[i]! * wb;
    }
  }

  /**
   * Per row of the last forward with targets: the summed log-probability of its scored targets,
   * sum_t log p(target_t | tokens before), in nats (0 for a row with nothing scored). One forward
   * gives every row's; valid until the next forward.
   */
  sequenceLogProbs(): Float64Array {
    if (!this.lossesValid) throw new Error('GPT.sequenceLogProbs: only valid after forward(inputs, targets)');
    const T = this.config.seq_len;
    const out = new Float64Array(this.lastB);
    const l = this.acts.losses;
    for (let b = 0; b < this.lastB; b++) {
      let s = 0;
      for (let t = b * T; t < (b + 1) * T; t++) s -= l[t]!;
      out[b] = s;
    }
    return out;
  }

  /** Positions the last forward with targets scored (targets other than IGNORE_ID). */
  get scoredPositions(): number {
    return this.scoredCount;
  }

  /** Logits [B*T, V] of the last forward WITHOUT targets (row i = next-token scores after token i). */
  logits(): FloatArray {
    if (this.state !== 'logits') throw new Error('GPT.logits: only valid right after forward(inputs, null)');
    return this.logitViews[this.lastB - 1]!;
  }

  /**
   * dL/dlogits [B*T, V] of the mean loss, between a forward with targets and its backward.
   * Editing it before backward() weights or masks tokens (tests use it to back-propagate one
   * position's loss alone).
   */
  dlogits(): FloatArray {
    if (this.state !== 'loss') throw new Error('GPT.dlogits: only valid between forward(inputs, targets) and backward()');
    return this.logitViews[this.lastB - 1]!;
  }

  /** Per-token losses [B*T] of the last forward with targets (valid until the next forward). */
  tokenLosses(): FloatArray {
    return this.acts.losses;
  }
}
