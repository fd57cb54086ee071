import type { Arena } from '../kernels/arena.js';
import type { FloatArray } from '../kernels/types.js';
import type { ModelConfig } from './config.js';
import { mixerFor } from './mixers/index.js';

/**
 * The activation plan: every buffer forward and backward touch, allocated ONCE for
 * (maxB, seq_len) from the arena. Kept per layer l (N = B*T rows), for backward:
 *   res      [N, C]       residual stream entering the layer (res of layer l+1 = its output)
 *   rstd1    [N]          1/rms of res (attn_norm)
 *   (mixer)               what the sequence mixer keeps (Mixer.keptFloats; its build allocates
 *                         it). Attention: qkv [N, 3C] post-RoPE q | k | v, the log-sum-exp
 *                         [B, H, T] of each row (the fused kernel recomputes the probabilities
 *                         from it in backward; the T x T matrix is never stored) and the heads'
 *                         outputs atty [N, C]: 4NC + BHT
 *   mid      [N, C]       res + attention branch
 *   rstd2    [N]          1/rms of mid (mlp_norm)
 *   h        [N, 2F]      gate | up pre-activations
 * = 6NC + 2N + BHT + 2NF floats per layer (+ 2NC + NF when the recomputable ones are kept).
 *
 * Recomputable, kept only when they fit `keepBudgetBytes` (all layers together; default
 * DEFAULT_KEEP_BUDGET_BYTES), else recomputed in backward into shared scratch:
 * - the normed inputs ln1 = attn_norm(res) and ln2 = mlp_norm(mid) [N, C] (one rmsnormForward
 *   each, which rewrites the identical rstd): 2NC per layer (6.3 MB/layer by default);
 * - the SwiGLU output s = silu(gate) * up [N, F], from h: NF per layer (6.3 MB/layer).
 * Recomputing costs three elementwise passes per layer (~10% of the seed-small step on 2
 * cores); keeping them costs 75 MB on the default preset, which would break its 400 MB
 * peak-RSS budget, while seed-small needs 6.3 MB. With recompute, a layer's ln1/ln2 are views
 * of the one shared `ln` scratch and its s is the shared `s` scratch.
 *
 * Then the final residual, the final norm (lnf [N, C], rstdf [N]), logits [N, V] (overwritten
 * in place by dlogits when targets are given), losses [N], and shared scratch (never per
 * layer): ln [N, C] (normed input of the current sublayer), y [N, C] (sublayer output), dres
 * [N, C] (gradient of the residual stream), dC [N, C], s = ds [N, F] and the mixer's scratch
 * (attention: dqkv [N, 3C]). The MLP's gate|up gradient is written over the layer's own h
 * (swigluBackward works in place), so it needs no [N, 2F] scratch. The logits share one
 * buffer with s and the mixer's scratch: the logits (dlogits) live from the LM head's forward
 * to its backward, s and the mixer's scratch only inside a layer's MLP and mixer, so they are
 * never live at once; the buffer holds max(NV, NF + mixer scratch).
 *
 * Default preset (V 1024, C 192, L 6, H 6, T 256, F 768, B 8, float32): 5,521,408 floats =
 * 22.1 MB per layer, 132.5 MB for 6 layers, 38,244,352 floats = 153.0 MB in all with head and
 * scratch. Before the fused attention kernel each layer also kept the probabilities
 * [B, H, T, T] (12.6 MB per layer) and backward needed a scratch of that size (shared with the
 * MLP's gate|up gradient, now written over h), and the logits had their own buffer:
 * 62,287,872 floats = 249.2 MB in all. `activationFloats` computes this; the tests assert these numbers.
 */
export interface LayerActivations {
  res: FloatArray;
  /** attn_norm(res) [N, C]: kept, or the shared scratch (recompute). */
  ln1: FloatArray;
  /** mlp_norm(mid) [N, C]: kept, or the shared scratch (recompute). */
  ln2: FloatArray;
  /** SwiGLU output [N, F]: kept, or the shared scratch `s` (recompute). */
  s: FloatArray;
  rstd1: FloatArray;
  mid: FloatArray;
  rstd2: FloatArray;
  h: FloatArray;
}

export interface Activations {
  /** True: backward recomputes each layer's ln1, ln2 and s (they share scratch). */
  recompute: boolean;
  layers: LayerActivations[];
  /** Output of the last layer = input of the final norm. */
  resFinal: FloatArray;
  lnf: FloatArray;
  rstdf: FloatArray;
  logits: FloatArray;
  losses: FloatArray;
  y: FloatArray;
  dres: FloatArray;
  dC: FloatArray;
  /** The mixer's scratch (Mixer.scratchFloats), shared by all layers. */
  mixerScratch: FloatArray;
  /**
   * Scratch [N, F]: the SwiGLU gradient in backward; with recompute also every layer's SwiGLU
   * output (recomputed, then overwritten by its gradient).
   */
  s: FloatArray;
}

interface Dims { N: number; C: number; H: number; T: number; F: number; V: number; B: number; L: number }

function dims(cfg: ModelConfig, maxB: number): Dims {
  return {
    N: maxB * cfg.seq_len, C: cfg.d_model, H: cfg.n_head, T: cfg.seq_len,
    F: cfg.ffn_hidden, V: cfg.vocab_size, B: maxB, L: cfg.n_layer,
  };
}

/**
 * Bytes the kept normed inputs and SwiGLU outputs may take (all layers, float32) before
 * backward recomputes them instead: seed-small (6.3 MB) keeps them, the default preset
 * (75.5 MB) recomputes.
 */
export const DEFAULT_KEEP_BUDGET_BYTES = 32 * 1024 * 1024;

/** Whether the plan keeps ln1, ln2 and s per layer (else backward recomputes them). */
export function keepsRecomputable(cfg: ModelConfig, maxB: number, keepBudgetBytes = DEFAULT_KEEP_BUDGET_BYTES): boolean {
  const { N, C, F, L } = dims(cfg, maxB);
  return 4 * L * (2 * N * C + N * F) <= keepBudgetBytes;
}

/** Floats of one layer's saved activations. */
export function layerActivationFloats(cfg: ModelConfig, maxB: number, keepBudgetBytes = DEFAULT_KEEP_BUDGET_BYTES): number {
  const { N, C, F } = dims(cfg, maxB);
  const kept = keepsRecomputable(cfg, maxB, keepBudgetBytes) ? 2 * N * C + N * F : 0;
  return 2 * N * C + 2 * N + 2 * N * F + mixerFor(cfg).keptFloats(cfg, maxB) + kept;
}

/** Total floats of the activation plan (layers, head, scratch). */
export function activationFloats(cfg: ModelConfig, maxB: number, keepBudgetBytes = DEFAULT_KEEP_BUDGET_BYTES): number {
  const { N, C, F, V, L } = dims(cfg, maxB);
  const recompute = !keepsRecomputable(cfg, maxB, keepBudgetBytes);
  const head = N * C /* resFinal */ + N * C + N /* lnf, rstdf */ + N /* losses */;
  const scratch = (recompute ? N * C : 0) /* ln */ + 3 * N * C /* y, dres, dC */
    + Math.max(N * V, N * F + mixerFor(cfg).scratchFloats(cfg, maxB)) /* logits, or s and the mixer's scratch */;
  return L * layerActivationFloats(cfg, maxB, keepBudgetBytes) + head + scratch;
}

export function planActivations(cfg: ModelConfig, arena: Arena, maxB: number, keepBudgetBytes = DEFAULT_KEEP_BUDGET_BYTES): Activations {
  const { N, C, F, V, L } = dims(cfg, maxB);
  const recompute = !keepsRecomputable(cfg, maxB, keepBudgetBytes);
  const f = (n: number): FloatArray => arena.floats(n);
  // shared scratch for the recomputed normed inputs (only when recomputing) and SwiGLU output/gradient
  const ln = recompute ? f(N * C) : null;
  // logits over s | the mixer's scratch (see the file comment)
  const mixerFloats = mixerFor(cfg).scratchFloats(cfg, maxB);
  const shared = f(Math.max(N * V, N * F + mixerFloats));
  const s = shared.subarray(0, N * F);
  const layers: LayerActivations[] = [];
  for (let l = 0; l < L; l++) {
    layers.push({
      res: f(N * C), rstd1: f(N), mid: f(N * C), rstd2: f(N), h: f(N * 2 * F),
      ln1: ln ?? f(N * C), ln2: ln ?? f(N * C), s: recompute ? s : f(N * F),
    });
  }
  const resFinal = f(N * C);
  const lnf = f(N * C);
  const rstdf = f(N);
  const logits = shared.subarray(0, N * V);
  const losses = f(N);
  const y = f(N * C);
  const dres = f(N * C);
  const dC = f(N * C);
  const mixerScratch = shared.subarray(N * F, N * F + mixerFloats);
  return {
    recompute, layers, resFinal, lnf, rstdf, logits, losses, y, dres, dC, mixerScratch, s,
  };
}
