import type { Arena } from '../../kernels/arena.js';
import type { BackendName, FloatArray, Kernels } from '../../kernels/types.js';
import type { MixerName, ModelConfig } from '../config.js';

/**
 * The sequence-mixer seam. A transformer block is
 *   ln1 = attn_norm(res); y = MIXER(ln1); mid = res + y; ln2 = mlp_norm(mid); out = mid + mlp(ln2)
 * and everything but MIXER is shared (gpt.ts, block.ts, generate.ts). A mixer is one module in
 * this folder exporting a `Mixer`: its parameters, its share of the activation plan, its
 * forward/backward over planned buffers, its decoding state and its FLOP term. Adding a third
 * mixer means one new file here and one entry in index.ts.
 */

/** How GPT.init fills a tensor: normal(0, init_std), normal(0, init_std / sqrt(2 n_layer)), 1, or a fixed value per element. */
export type InitKind = 'normal' | 'normal_residual' | 'ones' | { values: (i: number) => number };

/** One parameter tensor of a layer's mixer; stored as `blocks.<l>.<name>`. */
export interface MixerParam {
  name: string;
  shape: number[];
  /** Whether weight decay applies (matrices yes; mixes, decays, norms no). */
  decay: boolean;
  init: InitKind;
}

/** What a mixer's layers are built from (GPT's constructor). */
export interface MixerBuild {
  cfg: ModelConfig;
  maxB: number;
  backend: BackendName;
  arena: Arena;
  /** Per layer: the mixer's parameter views by name, and the gradient views (empty when frozen). */
  weights: Record<string, FloatArray>[];
  grads: Record<string, FloatArray>[];
  /** Per layer: the normed input the mixer reads [N, C] (kept, or shared scratch recomputed before backward). */
  x: FloatArray[];
  /** Output [N, C], written by forward (shared by all layers). */
  y: FloatArray;
  /** dL/dy [N, C], read by backward. */
  dy: FloatArray;
  /** dL/dx [N, C], WRITTEN by backward. */
  dx: FloatArray;
  /** `scratchFloats` floats live only inside one layer's forward or backward (aliases the logits). */
  scratch: FloatArray;
}

export interface MixerLayer {
  /** Reads x, writes y and what backward needs, for B rows of seq_len. */
  forward(k: Kernels, B: number): void;
  /** Reads dy, WRITES dx, ACCUMULATES the weight gradients (the output projection's scaled by alpha). */
  backward(k: Kernels, B: number, alpha: number): void;
}

/** What a decoder's state is built from (BatchDecoder). */
export interface MixerDecodeBuild {
  cfg: ModelConfig;
  arena: Arena;
  rows: number;
  /** Most tokens a row will be fed. */
  maxTokens: number;
  weights: Record<string, FloatArray>[];
}

/** A mixer's per-row decoding state (KV cache, or recurrent state). */
export interface MixerDecoder {
  /** Most tokens a row can hold (Infinity: no limit, the state does not grow). */
  readonly capacity: number;
  /**
   * Layer l: each active row r takes its next input x[r] [C] (at position pos[r]) and writes
   * y[r] [C]; its state advances. Rows not active keep their state.
   */
  step(k: Kernels, l: number, x: FloatArray, y: FloatArray, pos: Int32Array, active?: ArrayLike<boolean>): void;
  /** Forgets row r's context, or every row's. */
  reset(r?: number): void;
}

/** A model's built mixer: its layers, and decoders that share what the model built once (RoPE tables). */
export interface MixerModel {
  layers: MixerLayer[];
  decoder(b: MixerDecodeBuild): MixerDecoder;
}

export interface Mixer {
  readonly name: MixerName;
  /** The parameter tensors of one layer's mixer, in buffer order. */
  params(cfg: ModelConfig, layer: number): MixerParam[];
  /** Floats one layer keeps for backward. */
  keptFloats(cfg: ModelConfig, maxB: number): number;
  /** Floats of scratch shared by all layers (live only inside one layer's forward or backward). */
  scratchFloats(cfg: ModelConfig, maxB: number): number;
  /** The arena allocations (floats each) build() makes once per model besides keptFloats (attention: the RoPE tables). */
  modelAllocs(cfg: ModelConfig): number[];
  /** The arena allocations (floats or ints each) a decoder of `rows` rows makes (the memory plan counts them). */
  decoderAllocs(cfg: ModelConfig, rows: number, maxTokens: number): number[];
  build(b: MixerBuild): MixerModel;
  /** Training FLOPs per token of the sequence mixing beyond the 6 * params of its matrices (see flops.ts). */
  flopsPerToken(cfg: ModelConfig): number;
}
