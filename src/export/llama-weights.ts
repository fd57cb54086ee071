import type { ModelConfig } from '../model/config.js';
import { headDim, mixerName, validateModelConfig } from '../model/config.js';
import { planLayout } from '../model/layout.js';
import { UserError } from '../util/errors.js';

/**
 * The mapping between our flat parameter buffer (src/model/layout.ts) and a Llama model's tensors
 * in the Hugging Face convention (transformers' LlamaForCausalLM):
 *
 *   ours                       Hugging Face                                   how
 *   wte [V, C]                 model.embed_tokens.weight [V, C]               as is
 *   blocks.N.attn_norm [C]     model.layers.N.input_layernorm.weight          as is
 *   blocks.N.wqkv [C, 3C]      model.layers.N.self_attn.{q,k,v}_proj.weight   column block q|k|v, transposed to [C, C]
 *   blocks.N.wo [C, C]         model.layers.N.self_attn.o_proj.weight         transposed
 *   blocks.N.mlp_norm [C]      model.layers.N.post_attention_layernorm.weight as is
 *   blocks.N.w_gate_up [C, 2F] model.layers.N.mlp.{gate,up}_proj.weight [F, C] column block gate|up, transposed
 *   blocks.N.w_down [F, C]     model.layers.N.mlp.down_proj.weight [C, F]     transposed
 *   final_norm [C]             model.norm.weight                              as is
 *   lm_head [V, C]             lm_head.weight [V, C]                          as is (absent when tied)
 *
 * Our linear weights are stored [in, out]; torch's nn.Linear stores [out, in], hence the
 * transposes. Both rotate halves of each head for RoPE (transformers' rotate_half), so q and k
 * rows are NOT permuted here: only the GGUF writer, whose llama.cpp rotates adjacent pairs, does.
 * The gate half gets SiLU in both (silu(gate) * up, src/model/mlp.ts).
 */
export interface LlamaTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** One named tensor of a Llama model as a reader hands it over (any source). */
export interface LlamaTensorData {
  shape: number[];
  data: Float32Array;
}

/** `rows x cols` block starting at column `col0` of a row-major [rows, stride] matrix, transposed: [cols, rows]. */
function takeTransposed(src: Float32Array, rows: number, stride: number, col0: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * stride + col0;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c]!;
  }
  return out;
}

/** Inverse of takeTransposed: writes `block` [cols, rows] into columns col0.. of `dst` [rows, stride]. */
function putTransposed(block: Float32Array, dst: Float32Array, rows: number, stride: number, col0: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * stride + col0;
    for (let c = 0; c < cols; c++) dst[base + c] = block[c * rows + r]!;
  }
}

/** How each Hugging Face tensor is cut out of one of ours: the block of columns and whether it is transposed. */
interface Piece {
  hf: string;
  ours: string;
  /** [rows, stride] of our tensor when the piece is a transposed column block; absent: copied as is. */
  block?: { rows: number; stride: number; col0: number; cols: number };
  shape: number[];
}

/**
 * Refuses a model that is not a Llama: an rwkv mixer (model.mixer = "rwkv") has no tensors a
 * Llama runtime could use, and neither llama.cpp's RWKV architectures nor transformers' RWKV
 * models compute our variant (SwiGLU MLP, sigmoid receptance, RMS head norm), so nothing is
 * written rather than a file that loads and computes something else.
 */
export function requireLlamaModel(cfg: ModelConfig): void {
  const mixer = mixerName(cfg);
  if (mixer !== 'attention') {
    throw new UserError(`export to GGUF or Hugging Face needs model.mixer = "attention" (a Llama); this model's mixer is "${mixer}", which llama.cpp and transformers cannot run as it is. Use it with pocketlm sample / eval`);
  }
}

function pieces(cfg: ModelConfig): Piece[] {
  requireLlamaModel(cfg);
  const C = cfg.d_model;
  const F = cfg.ffn_hidden;
  const V = cfg.vocab_size;
  const out: Piece[] = [{ hf: 'model.embed_tokens.weight', ours: 'wte', shape: [V, C] }];
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `model.layers.${l}`;
    const b = `blocks.${l}`;
    out.push({ hf: `${p}.input_layernorm.weight`, ours: `${b}.attn_norm`, shape: [C] });
    (['q', 'k', 'v'] as const).forEach((n, i) => {
      out.push({ hf: `${p}.self_attn.${n}_proj.weight`, ours: `${b}.wqkv`, block: { rows: C, stride: 3 * C, col0: i * C, cols: C }, shape: [C, C] });
    });
    out.push({ hf: `${p}.self_attn.o_proj.weight`, ours: `${b}.wo`, block: { rows: C, stride: C, col0: 0, cols: C }, shape: [C, C] });
    out.push({ hf: `${p}.post_attention_layernorm.weight`, ours: `${b}.mlp_norm`, shape: [C] });
    out.push({ hf: `${p}.mlp.gate_proj.weight`, ours: `${b}.w_gate_up`, block: { rows: C, stride: 2 * F, col0: 0, cols: F }, shape: [F, C] });
    out.push({ hf: `${p}.mlp.up_proj.weight`, ours: `${b}.w_gate_up`, block: { rows: C, stride: 2 * F, col0: F, cols: F }, shape: [F, C] });
    out.push({ hf: `${p}.mlp.down_proj.weight`, ours: `${b}.w_down`, block: { rows: F, stride: C, col0: 0, cols: C }, shape: [C, F] });
  }
  out.push({ hf: 'model.norm.weight', ours: 'final_norm', shape: [C] });
  if (!cfg.tie_embeddings) out.push({ hf: 'lm_head.weight', ours: 'lm_head', shape: [V, C] });
  return out;
}

/** The names and shapes of the Llama tensors of a config, in the order toLlamaTensors gives them. */
export function llamaTensorShapes(cfg: ModelConfig): Array<{ name: string; shape: number[] }> {
  return pieces(cfg).map((p) => ({ name: p.hf, shape: p.shape }));
}

function slotsOf(cfg: ModelConfig, length: number): Map<string, { offset: number; size: number }> {
  const layout = planLayout(cfg);
  if (length !== layout.numParams) throw new Error(`llama-weights: buffer has ${length} values, the model ${layout.numParams}`);
  return new Map(layout.tensors.map((t) => [t.name, t]));
}

/** Our parameters as Hugging Face Llama tensors (fresh arrays: [out, in] for linear weights). */
export function toLlamaTensors(cfg: ModelConfig, params: Float32Array): LlamaTensor[] {
  const slots = slotsOf(cfg, params.length);
  return pieces(cfg).map((p) => {
    const s = slots.get(p.ours)!;
    const src = params.subarray(s.offset, s.offset + s.size);
    const data = p.block ? takeTransposed(src, p.block.rows, p.block.stride, p.block.col0, p.block.cols) : src.slice();
    return { name: p.hf, shape: [...p.shape], data };
  });
}

/**
 * The inverse of toLlamaTensors: fills `out` (our flat layout) from Hugging Face Llama tensors.
 * Throws a one-line UserError naming the first missing, extra or mis-shaped tensor.
 */
export function fromLlamaTensors(cfg: ModelConfig, tensors: ReadonlyMap<string, LlamaTensorData>, out: Float32Array): void {
  const slots = slotsOf(cfg, out.length);
  const all = pieces(cfg);
  const expected = new Set(all.map((p) => p.hf));
  for (const name of tensors.keys()) {
    if (!expected.has(name)) {
      const hint = name === 'lm_head.weight' ? ' (tie_word_embeddings is true)' : name.includes('rotary_emb') ? ' (precomputed RoPE tables are not weights)' : '';
      throw new UserError(`tensor "${name}" is not part of this Llama model${hint}`);
    }
  }
  for (const p of all) {
    const t = tensors.get(p.hf);
    if (!t) throw new UserError(`tensor "${p.hf}" is missing${p.hf === 'lm_head.weight' ? ' (tie_word_embeddings is false)' : ''}`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new UserError(`tensor "${p.hf}" has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
    }
    if (t.data.length !== p.shape.reduce((a, b) => a * b, 1)) throw new UserError(`tensor "${p.hf}" holds ${t.data.length} values for shape [${p.shape.join(', ')}]`);
    const s = slots.get(p.ours)!;
    const dst = out.subarray(s.offset, s.offset + s.size);
    if (p.block) putTransposed(t.data, dst, p.block.rows, p.block.stride, p.block.col0, p.block.cols);
    else dst.set(t.data);
  }
}

/** config.json of a Hugging Face LlamaForCausalLM with our model's shape. */
export function llamaHfConfig(cfg: ModelConfig, extra: { bosId: number; eosId: number }): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: cfg.d_model,
    intermediate_size: cfg.ffn_hidden,
    num_hidden_layers: cfg.n_layer,
    num_attention_heads: cfg.n_head,
    num_key_value_heads: cfg.n_head,
    head_dim: headDim(cfg),
    max_position_embeddings: cfg.seq_len,
    rms_norm_eps: cfg.norm_eps,
    rope_theta: cfg.rope_theta,
    rope_scaling: null,
    vocab_size: cfg.vocab_size,
    tie_word_embeddings: cfg.tie_embeddings,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    pretraining_tp: 1,
    initializer_range: cfg.init_std,
    torch_dtype: 'float32',
    bos_token_id: extra.bosId,
    eos_token_id: extra.eosId,
    use_cache: true,
  };
}

/**
 * Our ModelConfig from a Hugging Face config.json (`where` names it in messages). Refuses in
 * one line, naming the field, what we cannot represent exactly: another architecture, grouped
 * query attention, biases, an activation other than SiLU, RoPE scaling, a head_dim other than
 * hidden_size / num_attention_heads.
 */
export function modelConfigFromHf(json: unknown, where: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${where}: not a JSON object`);
  const j = json as Record<string, unknown>;
  const refuse = (field: string, why: string): never => {
    throw new UserError(`${where}: ${field} = ${JSON.stringify(j[field])}: ${why}`);
  };
  if (j.model_type !== 'llama') refuse('model_type', 'only "llama" models can be imported');
  if (j.architectures !== undefined) {
    if (!Array.isArray(j.architectures) || !j.architectures.includes('LlamaForCausalLM')) refuse('architectures', 'only LlamaForCausalLM can be imported');
  }
  const int = (field: string): number => {
    const v = j[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) refuse(field, 'must be a positive integer');
    return v as number;
  };
  const num = (field: string, fallback: number): number => {
    const v = j[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) refuse(field, 'must be a positive number');
    return v as number;
  };
  const C = int('hidden_size');
  const H = int('num_attention_heads');
  if (j.num_key_value_heads !== undefined && j.num_key_value_heads !== null && j.num_key_value_heads !== H) {
    refuse('num_key_value_heads', `grouped-query attention is not supported (must equal num_attention_heads = ${H})`);
  }
  for (const f of ['attention_bias', 'mlp_bias'] as const) {
    if (j[f] !== undefined && j[f] !== false) refuse(f, 'biases are not supported');
  }
  if ((j.hidden_act ?? 'silu') !== 'silu') refuse('hidden_act', 'only silu (SwiGLU) is supported');
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) refuse('rope_scaling', 'RoPE scaling is not supported');
  if (j.head_dim !== undefined && j.head_dim !== null && j.head_dim !== C / H) refuse('head_dim', `must be hidden_size / num_attention_heads = ${C / H}`);
  const tie = j.tie_word_embeddings ?? false; // LlamaConfig's default
  if (typeof tie !== 'boolean') refuse('tie_word_embeddings', 'must be true or false');
  const cfg: ModelConfig = {
    vocab_size: int('vocab_size'),
    d_model: C,
    n_layer: int('num_hidden_layers'),
    n_head: H,
    seq_len: int('max_position_embeddings'),
    ffn_hidden: int('intermediate_size'),
    tie_embeddings: tie as boolean,
    rope_theta: num('rope_theta', 10000),
    norm_eps: num('rms_norm_eps', 1e-6),
    init_std: num('initializer_range', 0.02),
  };
  try {
    validateModelConfig(cfg);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`);
    throw e;
  }
  return cfg;
}
