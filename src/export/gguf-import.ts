import path from 'node:path';
import type { ModelConfig } from '../model/config.js';
import { validateModelConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { readGguf, ggufInt, ggufNumber, ggufString, type GgufFile } from './gguf.js';
import { tokenizerFromGguf } from './gguf-tokenizer.js';
import { unpermuteFromGguf } from './gguf-llama.js';
import { fromLlamaTensors, llamaTensorShapes, type LlamaTensorData } from './llama-weights.js';
import { hfToGgufName, ggufToHfName } from './gguf-export.js';
import { writeImportedRun } from './hf.js';
import { refuseUsedTarget } from './folders.js';
import type { ImportReport } from './types.js';

/**
 * The shortest decimal that stands for the same float32 (GGUF stores epsilon and rope base as
 * float32: 1e-5 comes back as 9.99999974737875e-6, which would make a config that differs from
 * the one exported; the model computes with the float32 value either way).
 */
function float32Decimal(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const d = Number(f.toPrecision(p));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

/** A key that must be absent or hold `want`; `why` says what we cannot do otherwise. */
function refuseUnless(g: GgufFile, key: string, ok: (v: unknown) => boolean, why: string): void {
  const v = g.kv.get(key);
  if (v === undefined) return;
  const shown = v.type === 'array' ? `an array of ${v.itemType}` : typeof v.value === 'bigint' ? v.value.toString() : JSON.stringify(v.value);
  if (v.type === 'array' || !ok(v.value)) throw new UserError(`${g.file}: GGUF key ${key} = ${shown}: ${why}`);
}

/**
 * Our ModelConfig from a GGUF file's llama.* metadata and tensor shapes. Refuses, naming the key,
 * what we cannot represent exactly: another architecture, grouped-query attention, RoPE scaling
 * or partial rotary dimensions, mixture of experts, key/value sizes other than the head size.
 */
function modelConfigFromGguf(g: GgufFile, nVocab: number): ModelConfig {
  const where = `${g.file}: GGUF key`;
  const arch = ggufString(g, 'general.architecture');
  if (arch !== 'llama') throw new UserError(`${where} general.architecture = ${JSON.stringify(arch)}: only "llama" models can be imported`);
  const C = ggufInt(g, 'llama.embedding_length');
  const H = ggufInt(g, 'llama.attention.head_count');
  const positive = (key: string, v: number): number => {
    if (!(v > 0)) throw new UserError(`${where} ${key} = ${v}: must be positive`);
    return v;
  };
  positive('llama.embedding_length', C);
  positive('llama.attention.head_count', H);
  const D = C / H;
  const hkv = g.kv.has('llama.attention.head_count_kv') ? ggufInt(g, 'llama.attention.head_count_kv') : H;
  if (hkv !== H) throw new UserError(`${where} llama.attention.head_count_kv = ${hkv}: grouped-query attention is not supported (must equal llama.attention.head_count = ${H})`);
  refuseUnless(g, 'llama.rope.dimension_count', (v) => v === D, `partial rotary embeddings are not supported (must equal the head size ${D})`);
  refuseUnless(g, 'llama.attention.key_length', (v) => v === D, `must equal the head size embedding_length / head_count = ${D}`);
  refuseUnless(g, 'llama.attention.value_length', (v) => v === D, `must equal the head size embedding_length / head_count = ${D}`);
  refuseUnless(g, 'llama.rope.scaling.type', (v) => v === 'none', 'RoPE scaling is not supported');
  refuseUnless(g, 'llama.rope.scaling.factor', (v) => v === 1 || v === 0, 'RoPE scaling is not supported');
  refuseUnless(g, 'llama.rope.scale_linear', (v) => v === 1, 'RoPE scaling is not supported');
  refuseUnless(g, 'llama.expert_count', (v) => v === 0 || v === 0n, 'mixture-of-experts models are not supported');
  const vocabKey = g.kv.has('llama.vocab_size') ? ggufInt(g, 'llama.vocab_size') : nVocab;
  if (vocabKey !== nVocab) throw new UserError(`${where} llama.vocab_size = ${vocabKey} but tokenizer.ggml.tokens has ${nVocab} tokens`);
  const cfg: ModelConfig = {
    vocab_size: nVocab,
    d_model: C,
    n_layer: positive('llama.block_count', ggufInt(g, 'llama.block_count')),
    n_head: H,
    seq_len: positive('llama.context_length', ggufInt(g, 'llama.context_length')),
    ffn_hidden: positive('llama.feed_forward_length', ggufInt(g, 'llama.feed_forward_length')),
    tie_embeddings: !g.tensors.some((t) => t.name === 'output.weight'),
    rope_theta: g.kv.has('llama.rope.freq_base') ? float32Decimal(positive('llama.rope.freq_base', ggufNumber(g, 'llama.rope.freq_base'))) : 10000,
    norm_eps: float32Decimal(positive('llama.attention.layer_norm_rms_epsilon', ggufNumber(g, 'llama.attention.layer_norm_rms_epsilon'))),
    init_std: 0.02,
  };
  try {
    validateModelConfig(cfg);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${g.file}: ${e.message}`);
    throw e;
  }
  return cfg;
}

/** Refuses missing, extra and mis-shaped tensors by their GGUF names, before any tensor data is read. */
function checkTensors(g: GgufFile, cfg: ModelConfig): Array<{ gguf: string; hf: string; shape: number[] }> {
  const want = llamaTensorShapes(cfg).map((t) => ({ gguf: hfToGgufName(t.name), hf: t.name, shape: t.shape }));
  const names = new Set(want.map((t) => t.gguf));
  for (const t of g.tensors) {
    if (names.has(t.name)) continue;
    const why = t.name.endsWith('.bias') ? 'biases are not supported'
      : t.name === 'rope_freqs.weight' ? 'RoPE frequency factors are not supported'
      : ggufToHfName(t.name) !== null ? `the file's llama.block_count is ${cfg.n_layer}`
      : 'not a tensor of a Llama model';
    throw new UserError(`${g.file}: GGUF tensor ${JSON.stringify(t.name)}: ${why}`);
  }
  for (const w of want) {
    const t = g.tensors.find((x) => x.name === w.gguf);
    if (t === undefined) throw new UserError(`${g.file}: GGUF tensor ${JSON.stringify(w.gguf)} is missing`);
    if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
      throw new UserError(`${g.file}: GGUF tensor ${JSON.stringify(w.gguf)} has shape [${t.shape.join(', ')}] (row-major), expected [${w.shape.join(', ')}]`);
    }
  }
  return want;
}

/**
 * Imports a GGUF Llama file (F32 or F16 tensors, a "gpt2" byte-level BPE tokenizer with
 * <|endoftext|>) as a run folder that `sample`, `eval` and `train --resume` accept. q and k rows
 * go back from llama.cpp's interleaved RoPE pairs to our rotate-half order. Refuses in one line,
 * naming the key or tensor, what we cannot represent; nothing is written then.
 */
export async function importGguf(file: string, outRunDir: string): Promise<ImportReport> {
  refuseUsedTarget(outRunDir, '--out');
  const g = readGguf(file);
  const tk = tokenizerFromGguf(g);
  const tokenizer = tk.tokenizer;
  if (!tokenizer.toSpec().specials.some((s) => s.content === '<|endoftext|>')) {
    throw new UserError(`${file}: GGUF tokenizer.ggml.tokens has no control token "<|endoftext|>" (pocketlm separates documents with it)`);
  }
  const model = modelConfigFromGguf(g, tk.nVocab);
  const want = checkTensors(g, model);
  const notes: string[] = [];
  const tensors = new Map<string, LlamaTensorData>();
  for (const w of want) {
    let data = g.readTensorF32(w.gguf);
    if (w.gguf.endsWith('.attn_q.weight') || w.gguf.endsWith('.attn_k.weight')) data = unpermuteFromGguf(data, w.shape[0]!, w.shape[1]!, model.n_head);
    tensors.set(w.hf, { shape: w.shape, data });
  }
  const params = await writeImportedRun(outRunDir, model, tokenizer, { format: 'gguf', from: path.resolve(file) }, (out) => fromLlamaTensors(model, tensors, out));
  const f16 = g.tensors.filter((t) => t.type === 'F16').length;
  if (f16 > 0) notes.push(`${f16} F16 tensors were widened to float32`);
  if (tk.nVocab > tokenizer.vocabSize) notes.push(`ids ${tokenizer.vocabSize}..${tk.nVocab - 1} are padding (unused tokens): the tokenizer never produces them`);
  if (tk.addBos && tk.bosId !== null && tk.bosId !== tokenizer.eotId) {
    notes.push(`the file asks for token ${tk.bosId} before every prompt (add_bos_token); pocketlm starts prompts with <|endoftext|> (${tokenizer.eotId}) instead`);
  }
  notes.push('no optimizer state: `pocketlm train --resume` on this run starts with a fresh optimizer (fine-tuning from these weights)');
  return { runDir: outRunDir, params, notes };
}
