import type { Arena } from '../kernels/arena.js';
import type { FloatArray } from '../kernels/types.js';
import type { ModelConfig } from './config.js';

/**
 * The activation plan: every buffer forward and backward touch, allocated ONCE for
 * (maxB, seq_len) from the arena. Per layer l (N = B*T rows):
 *   res      [N, C]      residual stream entering the layer (res of layer l+1 = its output)
 *   ln1      [N, C]      attn_norm(res)            rstd1 [N]
 *   qkv      [N, 3C]     post-RoPE q | k | v
 *   att      [B, H, T, T] attention probabilities
 *   atty     [N, C]      heads' outputs before the out-projection
 *   mid      [N, C]      res + attention branch
 *   ln2      [N, C]      mlp_norm(mid)             rstd2 [N]
 *   h        [N, 2F]     gate | up pre-activations
 * = 5NC + 3NC + 2N + BHT^2 + 2NF floats per layer. The SwiGLU output s = silu(gate) * up [N, F]
 * is NOT kept: the MLP backward recomputes it from h (one elementwise pass) into the shared
 * `s` scratch, saving N*F floats per layer (6.3 MB per layer on the default preset). Then the final residual, the final norm
 * (lnf [N, C], rstdf [N]), logits [N, V] (overwritten in place by dlogits when targets are
 * given), losses [N], and shared scratch (never per layer): y [N, C] (sublayer output),
 * dres [N, C] (gradient of the residual stream), dC [N, C], dqkv [N, 3C], s = ds [N, F], and one
 * buffer of max(BHT^2, 2NF) shared by datt (attention backward) and dh (MLP backward), which
 * are never live at the same time.
 *
 * Default preset (V 1024, C 192, L 6, H 6, T 256, F 768, B 8, float32): 9,441,280 floats =
 * 37.8 MB per layer, 226.6 MB for 6 layers, 66,613,248 floats = 266.5 MB total with head and
 * scratch. The attention probabilities are the largest part (B*H*T^2 = 12.6 MB per layer)
 * (see `activationFloats`; the model test asserts these numbers).
 */
export interface LayerActivations {
  res: FloatArray;
  ln1: FloatArray;
  rstd1: FloatArray;
  qkv: FloatArray;
  att: FloatArray;
  atty: FloatArray;
  mid: FloatArray;
  ln2: FloatArray;
  rstd2: FloatArray;
  h: FloatArray;
}

export interface Activations {
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
  dqkv: FloatArray;
  /** SwiGLU output in forward, recomputed then overwritten by its gradient in backward. */
  s: FloatArray;
  datt: FloatArray;
  dh: FloatArray;
}

interface Dims { N: number; C: number; H: number; T: number; F: number; V: number; B: number; L: number }

function dims(cfg: ModelConfig, maxB: number): Dims {
  return {
    N: maxB * cfg.seq_len, C: cfg.d_model, H: cfg.n_head, T: cfg.seq_len,
    F: cfg.ffn_hidden, V: cfg.vocab_size, B: maxB, L: cfg.n_layer,
  };
}

/** Floats of one layer's saved activations. */
export function layerActivationFloats(cfg: ModelConfig, maxB: number): number {
  const { N, C, H, T, F, B } = dims(cfg, maxB);
  return 5 * N * C + 3 * N * C + 2 * N + B * H * T * T + 2 * N * F;
}

/** Total floats of the activation plan (layers, head, scratch). */
export function activationFloats(cfg: ModelConfig, maxB: number): number {
  const { N, C, H, T, F, V, B, L } = dims(cfg, maxB);
  const head = N * C /* resFinal */ + N * C + N /* lnf, rstdf */ + N * V + N /* logits, losses */;
  const scratch = 3 * N * C /* y, dres, dC */ + 3 * N * C + N * F + Math.max(B * H * T * T, 2 * N * F);
  return L * layerActivationFloats(cfg, maxB) + head + scratch;
}

export function planActivations(cfg: ModelConfig, arena: Arena, maxB: number): Activations {
  const { N, C, H, T, F, V, B, L } = dims(cfg, maxB);
  const f = (n: number): FloatArray => arena.floats(n);
  const layers: LayerActivations[] = [];
  for (let l = 0; l < L; l++) {
    layers.push({
      res: f(N * C), ln1: f(N * C), rstd1: f(N), qkv: f(N * 3 * C), att: f(B * H * T * T),
      atty: f(N * C), mid: f(N * C), ln2: f(N * C), rstd2: f(N), h: f(N * 2 * F),
    });
  }
  const resFinal = f(N * C);
  const lnf = f(N * C);
  const rstdf = f(N);
  const logits = f(N * V);
  const losses = f(N);
  const y = f(N * C);
  const dres = f(N * C);
  const dC = f(N * C);
  const dqkv = f(N * 3 * C);
  const s = f(N * F);
  const shared = f(Math.max(B * H * T * T, 2 * N * F));
  return {
    layers, resFinal, lnf, rstdf, logits, losses, y, dres, dC, dqkv, s,
    datt: shared.subarray(0, B * H * T * T), dh: shared.subarray(0, 2 * N * F),
  };
}
