import { UserError } from '../util/errors.js';

/**
 * The model's shape and init. Field names are the TOML keys of `[model]` in presets/*.toml
 * (snake_case, no mapping layer), so `--set model.d_model=256` names exactly this field.
 */
export interface ModelConfig {
  vocab_size: number;
  d_model: number;
  n_layer: number;
  n_head: number;
  /** Context length T: every training window and the RoPE tables have this many positions. */
  seq_len: number;
  /** SwiGLU hidden width F; the fused gate|up projection is [d_model, 2F]. */
  ffn_hidden: number;
  /** When true the LM head reuses the token embedding `wte` (no `lm_head` tensor). */
  tie_embeddings: boolean;
  rope_theta: number;
  norm_eps: number;
  /** Standard deviation of the normal init of every weight matrix (residual projections scaled). */
  init_std: number;
  /**
   * Dropout probability in [0, 1) on the embedding output and on each residual branch's output
   * (attention out-projection, MLP down-projection), applied only in forwards the trainer keys
   * (GPT.setDropoutKey). Absent or 0: no dropout, and the model computes exactly what it did
   * before the option existed.
   */
  dropout?: number;
  /**
   * The sequence mixer of every block (src/model/mixers/): "attention" (causal softmax
   * attention with RoPE) or "rwkv" (RWKV-style time mixing: a linear recurrence with a per-head
   * matrix state). Absent: attention, so configs and checkpoints from before the option load
   * unchanged.
   */
  mixer?: MixerName;
  /** rwkv: chunk length of the chunked training form (absent: DEFAULT_RWKV_CHUNK = 8). */
  rwkv_chunk?: number;
}

export const MIXERS = ['attention', 'rwkv'] as const;
export type MixerName = (typeof MIXERS)[number];

/** The mixer a config names (absent = attention). */
export function mixerName(cfg: ModelConfig): MixerName {
  return cfg.mixer ?? 'attention';
}

/**
 * Chunk length L of rwkv's chunked form when model.rwkv_chunk is absent. Per token and layer
 * the chunked form costs about C (L + 2 D) multiply-adds, of which the decay-weighted scores
 * (C L / 2) run as a plain loop, not a product; the chunk states cost C D / L floats per token
 * of (shared) scratch and a sequential scan of D^2 per chunk and head. Measured on the default
 * preset with model.mixer = "rwkv" (native, 2 threads, 3 alternating rounds, medians): 1,771
 * tokens/s at L = 8, 1,631 at 16, 1,471 at 32: the loop over the scores costs more than the
 * extra chunks do.
 */
export const DEFAULT_RWKV_CHUNK = 8;

/**
 * The documented default SwiGLU width: 8/3 * d (which keeps the MLP's parameter count equal to a
 * 4d GELU MLP, as in Llama), rounded to the nearest multiple of 32 (SIMD- and cache-friendly),
 * at least 32. Presets set `ffn_hidden` explicitly; this is for configs that leave it out.
 */
export function defaultFfnHidden(d: number): number {
  return Math.max(32, Math.round((8 * d) / 3 / 32) * 32);
}

function positiveInt(cfg: ModelConfig, key: keyof ModelConfig): void {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new UserError(`model.${key} must be a positive integer (got ${String(v)})`);
  }
}

function positiveNumber(cfg: ModelConfig, key: keyof ModelConfig): void {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new UserError(`model.${key} must be a positive number (got ${String(v)})`);
  }
}

/** Throws a one-line UserError naming the first field that cannot build a model. */
export function validateModelConfig(cfg: ModelConfig): void {
  for (const k of ['vocab_size', 'd_model', 'n_layer', 'n_head', 'seq_len', 'ffn_hidden'] as const) positiveInt(cfg, k);
  for (const k of ['rope_theta', 'norm_eps', 'init_std'] as const) positiveNumber(cfg, k);
  const p = cfg.dropout;
  if (p !== undefined && (typeof p !== 'number' || !(p >= 0 && p < 1))) {
    throw new UserError(`model.dropout must be a number in [0, 1) (got ${String(p)})`);
  }
  if (cfg.mixer !== undefined && !(MIXERS as readonly string[]).includes(cfg.mixer)) {
    throw new UserError(`model.mixer must be one of ${MIXERS.map((m) => `"${m}"`).join(', ')} (got ${JSON.stringify(cfg.mixer)})`);
  }
  const ch = cfg.rwkv_chunk;
  if (ch !== undefined && (typeof ch !== 'number' || !Number.isInteger(ch) || ch < 1 || ch > 1024)) {
    throw new UserError(`model.rwkv_chunk must be an integer from 1 to 1024 (got ${String(ch)})`);
  }
  if (typeof cfg.tie_embeddings !== 'boolean') throw new UserError(`model.tie_embeddings must be true or false (got ${String(cfg.tie_embeddings)})`);
  if (cfg.d_model % cfg.n_head !== 0) {
    throw new UserError(`model.d_model (${cfg.d_model}) must be a multiple of model.n_head (${cfg.n_head})`);
  }
  if (mixerName(cfg) === 'attention' && (cfg.d_model / cfg.n_head) % 2 !== 0) {
    throw new UserError(`model.d_model / model.n_head (head size ${cfg.d_model / cfg.n_head}) must be even for RoPE`);
  }
}

/** Head size D = d_model / n_head. */
export function headDim(cfg: ModelConfig): number {
  return cfg.d_model / cfg.n_head;
}
