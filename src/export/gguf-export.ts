import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ModelConfig } from '../model/config.js';
import { headDim } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { describeWriteError, fsyncDir, tempPathFor } from '../util/atomic.js';
import type { CheckpointChoice } from '../train/inference.js';
import { pocketlmVersion } from '../data/meta.js';
import { writeGguf, type GgufKv, type GgufTensorIn } from './gguf.js';
import { ggufTokenizerKv } from './gguf-tokenizer.js';
import { permuteForGguf } from './gguf-llama.js';
import { requireLlamaModel, toLlamaTensors } from './llama-weights.js';
import { readRunWeights } from './run-weights.js';
import type { ExportDtype, ExportReport } from './types.js';
import { BpeTokenizer } from '../tokenizer/bpe-tokenizer.js';

/**
 * GGUF names of the Hugging Face Llama tensors (llama.cpp's tensor map for LLM_ARCH_LLAMA), as
 * [prefix of the HF name, GGUF name]; the layer number is carried over.
 */
const LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['input_layernorm.weight', 'attn_norm.weight'],
  ['self_attn.q_proj.weight', 'attn_q.weight'],
  ['self_attn.k_proj.weight', 'attn_k.weight'],
  ['self_attn.v_proj.weight', 'attn_v.weight'],
  ['self_attn.o_proj.weight', 'attn_output.weight'],
  ['post_attention_layernorm.weight', 'ffn_norm.weight'],
  ['mlp.gate_proj.weight', 'ffn_gate.weight'],
  ['mlp.up_proj.weight', 'ffn_up.weight'],
  ['mlp.down_proj.weight', 'ffn_down.weight'],
];
const GLOBAL_NAMES: ReadonlyArray<[string, string]> = [
  ['model.embed_tokens.weight', 'token_embd.weight'],
  ['model.norm.weight', 'output_norm.weight'],
  ['lm_head.weight', 'output.weight'],
];

/** The GGUF name of a Hugging Face Llama tensor name (both ways: see ggufToHfName). */
export function hfToGgufName(hf: string): string {
  for (const [h, g] of GLOBAL_NAMES) if (hf === h) return g;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m) for (const [h, g] of LAYER_NAMES) if (m[2] === h) return `blk.${m[1]}.${g}`;
  throw new Error(`no GGUF name for ${hf}`);
}

/** The Hugging Face name of a GGUF Llama tensor name, or null when it is not one we know. */
export function ggufToHfName(gguf: string): string | null {
  for (const [h, g] of GLOBAL_NAMES) if (gguf === g) return h;
  const m = /^blk\.(\d+)\.(.+)$/.exec(gguf);
  if (m) for (const [h, g] of LAYER_NAMES) if (m[2] === g) return `model.layers.${m[1]}.${h}`;
  return null;
}

/** llama.cpp's llama_ftype of the file: ALL_F32 0, MOSTLY_F16 1 (norm weights stay F32 in both). */
const FILE_TYPE: Record<'f32' | 'f16', number> = { f32: 0, f16: 1 };

/** The llama.* hyperparameters llama.cpp reads for a Llama model of this shape. */
export function ggufLlamaKv(model: ModelConfig): GgufKv[] {
  return [
    { key: 'llama.context_length', type: 'uint32', value: model.seq_len },
    { key: 'llama.embedding_length', type: 'uint32', value: model.d_model },
    { key: 'llama.block_count', type: 'uint32', value: model.n_layer },
    { key: 'llama.feed_forward_length', type: 'uint32', value: model.ffn_hidden },
    { key: 'llama.attention.head_count', type: 'uint32', value: model.n_head },
    { key: 'llama.attention.head_count_kv', type: 'uint32', value: model.n_head },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'float32', value: model.norm_eps },
    { key: 'llama.rope.freq_base', type: 'float32', value: model.rope_theta },
    { key: 'llama.rope.dimension_count', type: 'uint32', value: headDim(model) },
    { key: 'llama.vocab_size', type: 'uint32', value: model.vocab_size },
  ];
}

/**
 * Our weights as GGUF tensors: Hugging Face Llama tensors ([out, in], q|k|v and gate|up split,
 * rotate-half order) renamed, with the q and k rows of each head permuted to llama.cpp's
 * interleaved RoPE pairs. `output.weight` is absent when the embeddings are tied.
 */
export function ggufTensors(model: ModelConfig, params: Float32Array): GgufTensorIn[] {
  const C = model.d_model;
  return toLlamaTensors(model, params).map((t) => {
    const name = hfToGgufName(t.name);
    const qk = name.endsWith('.attn_q.weight') || name.endsWith('.attn_k.weight');
    return { name, shape: t.shape, data: qk ? permuteForGguf(t.data, C, C, model.n_head) : t.data };
  });
}

/** Refuses an --out that exists (no overwrite); creates its folder. */
function prepareOut(out: string): void {
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read --out ${out}: ${(e as Error).message}`);
  }
  if (st !== null) throw new UserError(`--out ${out} already exists${st.isDirectory() ? ' (a folder)' : ''}; choose a new file name`);
  try {
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  } catch (e) {
    throw describeWriteError(e, out);
  }
}

/**
 * Moves the finished file at `tmp` to `out` without replacing a file that appeared there
 * meanwhile: a hard link fails if the name exists (rename would silently replace it). File
 * systems without hard links fall back to rename after a last check.
 */
function publishNoClobber(tmp: string, out: string): void {
  try {
    fs.linkSync(tmp, out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UserError(`--out ${out} was created by something else meanwhile; nothing was written there`);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw describeWriteError(e, out);
    if (fs.existsSync(out)) throw new UserError(`--out ${out} was created by something else meanwhile; nothing was written there`);
    fs.renameSync(tmp, out);
    fsyncDir(path.dirname(path.resolve(out)));
    return;
  }
  fs.rmSync(tmp, { force: true });
  fsyncDir(path.dirname(path.resolve(out)));
}

/**
 * Exports a run's weights (best checkpoint by default; the evaluation weights, Schedule-Free's x)
 * as a GGUF v3 file llama.cpp runs: architecture `llama`, its hyperparameters, our tokenizer as
 * GGUF "gpt2" byte-level BPE, f32 or f16 weights (norm weights f32 in both). `opts.out` must not
 * exist; the file appears complete or not at all.
 */
export async function exportGguf(
  runDir: string,
  opts: { checkpoint?: CheckpointChoice; dtype?: ExportDtype; out: string },
): Promise<ExportReport & { notes: string[] }> {
  const t0 = performance.now();
  const dtype = opts.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new UserError(`--dtype ${dtype} is not available for GGUF (llama.cpp's bf16 support varies by build); use f32 or f16`);
  prepareOut(opts.out);
  const w = await readRunWeights(runDir, opts.checkpoint ?? 'best');
  requireLlamaModel(w.model);
  // readRunWeights loads tokenizer.json, which is always our byte-level BPE.
  if (!(w.tokenizer instanceof BpeTokenizer)) throw new Error('exportGguf: the run\'s tokenizer is not a BpeTokenizer');
  const kv: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: path.basename(path.resolve(runDir)) },
    { key: 'general.file_type', type: 'uint32', value: FILE_TYPE[dtype] },
    { key: 'general.description', type: 'string', value: `trained from scratch with pocketlm ${pocketlmVersion()}: ${w.manifest.step} steps, ${w.manifest.tokens} tokens (${w.checkpoint} checkpoint)` },
    ...ggufLlamaKv(w.model),
    // One token per embedding row: ids the tokenizer lacks (model.vocab_size above its size) are padding.
    ...ggufTokenizerKv(w.tokenizer, w.model.vocab_size),
  ];
  const tensors = ggufTensors(w.model, w.params);
  const tmp = tempPathFor(opts.out);
  try {
    writeGguf(tmp, kv, tensors, { dtype: dtype === 'f16' ? 'F16' : 'F32' });
    publishNoClobber(tmp, opts.out);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  const bytes = fs.statSync(opts.out).size;
  return { out: opts.out, bytes, tensors: tensors.length, seconds: (performance.now() - t0) / 1000, notes: w.notice ? [w.notice] : [] };
}
