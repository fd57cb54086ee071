import type { FloatArray } from '../kernels/types.js';
import type { ModelConfig } from './config.js';
import { mixerFor } from './mixers/index.js';
import type { InitKind } from './mixers/mixer.js';

export type { InitKind } from './mixers/mixer.js';

/**
 * The parameter layout: every parameter tensor is a named range of ONE flat buffer (like llm.c's
 * ParameterTensors), so optimizers, gradient clipping and checkpoints are flat loops, and the
 * gradients use the same layout in a second buffer.
 *
 * Storage convention (row-major):
 * - Linear weights are stored [in, out], so a forward is the nn gemm `Y[N,out] = X[N,in] W`,
 *   the weight gradient the tn gemm `dW += X^T dY`, the input gradient the nt gemm `dX = dY W^T`.
 *   - the sequence mixer's tensors (src/model/mixers/), for attention:
 *     `blocks.i.wqkv`      [C, 3C]  output columns: q (C) | k (C) | v (C); head h is columns h*D..h*D+D of each.
 *     `blocks.i.wo`        [C, C]   attention output projection (residual branch, init scaled).
 *     and for rwkv (rwkv-mixer.ts): time_mix [4, C], wrkvg [C, 4C] (r | k | v | g), time_decay [C],
 *     time_bonus [C], head_norm [C], wo [C, C].
 *   - `blocks.i.w_gate_up` [C, 2F]  fused SwiGLU projection, output columns: gate (F) | up (F).
 *   - `blocks.i.w_down`    [F, C]   MLP down projection (residual branch, init scaled).
 * - Embedding-like tables are stored [V, C] (a row per token):
 *   - `wte` [V, C] token embedding; also the LM head when `tie_embeddings` (logits = x wte^T, nt gemm).
 *   - `lm_head` [V, C] untied LM head, same orientation as `wte` so both cases share one code path.
 * - Norm weights `blocks.i.attn_norm`, `blocks.i.mlp_norm`, `final_norm` are [C].
 *
 * Order in the buffer: wte, blocks.0 (attn_norm, the mixer's tensors, mlp_norm, w_gate_up, w_down), ...,
 * final_norm, lm_head (when untied).
 */
export interface ParamTensor {
  name: string;
  offset: number;
  size: number;
  shape: number[];
  /** Whether weight decay applies: false for norms and embeddings. */
  decay: boolean;
}

export interface PlannedTensor extends ParamTensor {
  /** How `GPT.init` fills it: normal(0, std), normal(0, std / sqrt(2 n_layer)), 1, or fixed values. */
  init: InitKind;
}

export interface ParamLayout {
  tensors: PlannedTensor[];
  numParams: number;
}

/** Plans offsets for every parameter tensor (pure: no allocation of parameter memory). */
export function planLayout(cfg: ModelConfig): ParamLayout {
  const C = cfg.d_model;
  const F = cfg.ffn_hidden;
  const V = cfg.vocab_size;
  const mixer = mixerFor(cfg);
  const tensors: PlannedTensor[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], decay: boolean, init: InitKind): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    tensors.push({ name, offset, size, shape, decay, init });
    offset += size;
  };
  add('wte', [V, C], false, 'normal');
  for (let l = 0; l < cfg.n_layer; l++) {
    add(`blocks.${l}.attn_norm`, [C], false, 'ones');
    for (const p of mixer.params(cfg, l)) add(`blocks.${l}.${p.name}`, p.shape, p.decay, p.init);
    add(`blocks.${l}.mlp_norm`, [C], false, 'ones');
    add(`blocks.${l}.w_gate_up`, [C, 2 * F], true, 'normal');
    add(`blocks.${l}.w_down`, [F, C], true, 'normal_residual');
  }
  add('final_norm', [C], false, 'ones');
  if (!cfg.tie_embeddings) add('lm_head', [V, C], true, 'normal');
  return { tensors, numParams: offset };
}

/** Number of parameters of a config (what `GPT.numParams` will be). */
export function countParams(cfg: ModelConfig): number {
  return planLayout(cfg).numParams;
}

export interface LayerWeights {
  attnNorm: FloatArray;
  /** The mixer's tensors by name (`wqkv`, `wo` for attention; see src/model/mixers/). */
  mixer: Record<string, FloatArray>;
  mlpNorm: FloatArray;
  wGateUp: FloatArray;
  wDown: FloatArray;
}

/** Named views into a flat buffer (parameters or gradients: same layout). */
export interface ModelWeights {
  wte: FloatArray;
  layers: LayerWeights[];
  finalNorm: FloatArray;
  /** `wte` itself when tied. */
  lmHead: FloatArray;
}

/** Makes the named subarray views once (subarray allocates a JS object: never per step). */
export function weightViews(buf: FloatArray, layout: ParamLayout, cfg: ModelConfig): ModelWeights {
  const byName = new Map(layout.tensors.map((t) => [t.name, t]));
  const view = (name: string): FloatArray => {
    const t = byName.get(name);
    if (!t) throw new Error(`layout: no tensor ${name}`);
    return buf.subarray(t.offset, t.offset + t.size);
  };
  const mixer = mixerFor(cfg);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.n_layer; l++) {
    const mix: Record<string, FloatArray> = {};
    for (const p of mixer.params(cfg, l)) mix[p.name] = view(`blocks.${l}.${p.name}`);
    layers.push({
      attnNorm: view(`blocks.${l}.attn_norm`),
      mixer: mix,
      mlpNorm: view(`blocks.${l}.mlp_norm`),
      wGateUp: view(`blocks.${l}.w_gate_up`),
      wDown: view(`blocks.${l}.w_down`),
    });
  }
  const wte = view('wte');
  return { wte, layers, finalNorm: view('final_norm'), lmHead: cfg.tie_embeddings ? wte : view('lm_head') };
}
