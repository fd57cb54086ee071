import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { countParams, planLayout } from '../model/layout.js';
import type { ModelConfig } from '../model/config.js';
import { loadTokenizerJson, saveTokenizer, tokenizerFileText } from '../tokenizer/load.js';
import { END_OF_TEXT, type Tokenizer } from '../tokenizer/types.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { loadConfig, stringifyConfig, validateConfig, type RunConfig } from '../train/config.js';
import { saveCheckpoint } from '../train/checkpoint.js';
import type { CheckpointChoice } from '../train/inference.js';
import { readLog } from '../train/log.js';
import { runPaths } from '../train/run.js';
import { pocketlmVersion } from '../data/meta.js';
import { encodeHalf, encodeSafetensors, readSafetensors, toFloat32, type StInput } from './safetensors.js';
import { fromLlamaTensors, llamaHfConfig, modelConfigFromHf, requireLlamaModel, toLlamaTensors, type LlamaTensorData } from './llama-weights.js';
import { folderBytes, writeFolder } from './folders.js';
import { readRunWeights, type RunWeights } from './run-weights.js';
import type { ExportDtype, ExportReport, ImportReport } from './types.js';

/**
 * A Hugging Face model folder that transformers loads as LlamaForCausalLM:
 *   config.json             LlamaConfig (llama-weights.ts llamaHfConfig)
 *   model.safetensors       the weights, Hugging Face names and [out, in] shapes, metadata {"format": "pt"}
 *   tokenizer.json          our byte-level BPE (src/tokenizer/hf-format.ts)
 *   tokenizer_config.json   PreTrainedTokenizerFast, <|endoftext|> as bos/eos/unk
 *   generation_config.json  bos/eos ids and pocketlm's sampling defaults
 *   README.md               a model card: data, tokens seen, validation loss and bits per byte
 */

const TORCH_DTYPE: Record<ExportDtype, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

function json(x: unknown): string {
  return `${JSON.stringify(x, null, 2)}\n`;
}

/** The validation figures of the exported weights: the best checkpoint's, else the log's last evaluation at or before the step. */
function validation(w: RunWeights): { loss: number; bpb: number | null; step: number } | null {
  const m = w.manifest;
  if (typeof m.val_loss === 'number') return { loss: m.val_loss, bpb: m.val_bpb ?? null, step: m.step };
  const log = runPaths(w.runDir).log;
  if (!fs.existsSync(log)) return null;
  const evals = readLog(log).filter((r) => r.val_loss !== undefined && r.step <= m.step);
  const last = evals.at(-1);
  return last ? { loss: last.val_loss!, bpb: last.val_bpb ?? null, step: last.step } : null;
}

function trainingData(cfg: RunConfig): string {
  if (cfg.data.paths.length) return cfg.data.paths.map((p) => `\`${path.basename(p)}\``).join(', ');
  return cfg.data.dataset.startsWith('tinystories') ? `TinyStories (\`${cfg.data.dataset}\`; Eldan & Li 2023, CDLA-Sharing-1.0)` : `\`${cfg.data.dataset}\``;
}

/** The README.md model card. */
export function modelCard(w: RunWeights, dtype: ExportDtype): string {
  const c = w.config;
  const m = w.model;
  const v = validation(w);
  const params = countParams(m);
  const lines = [
    '---',
    'library_name: transformers',
    'pipeline_tag: text-generation',
    'tags: [pocketlm, llama]',
    '---',
    '',
    `# ${path.basename(path.resolve(w.runDir))}`,
    '',
    `A small Llama-architecture language model (${(params / 1e6).toFixed(2)} M parameters) trained from scratch on a CPU with pocketlm ${pocketlmVersion()} and exported with \`pocketlm export --format hf\`.`,
    '',
    '| | |',
    '|---|---|',
    `| Parameters | ${params.toLocaleString('en-US')} |`,
    `| Layers, width, heads | ${m.n_layer}, ${m.d_model}, ${m.n_head} (SwiGLU hidden ${m.ffn_hidden}) |`,
    `| Context length | ${m.seq_len} tokens |`,
    `| Vocabulary | ${m.vocab_size} (byte-level BPE; \`${END_OF_TEXT}\` = ${w.tokenizer.eotId}) |`,
    `| Tied embeddings | ${m.tie_embeddings ? 'yes' : 'no'} |`,
    `| Training data | ${trainingData(c)} |`,
    `| Steps | ${w.manifest.step.toLocaleString('en-US')} (${w.checkpoint} checkpoint) |`,
    `| Tokens seen | ${w.manifest.tokens.toLocaleString('en-US')} |`,
    `| Validation loss | ${v ? `${v.loss.toFixed(4)} nats/token (step ${v.step})` : 'not measured'} |`,
    `| Validation bits per byte | ${v?.bpb != null ? v.bpb.toFixed(4) : 'not measured'} |`,
    `| Weights | ${dtype} |`,
    '',
    '## How it was trained',
    '',
    `Optimizer ${c.optim.name} (lr ${c.optim.lr}, ${c.optim.schedule} schedule, ${c.optim.warmup_steps} warmup steps, weight decay ${c.optim.weight_decay}), ` +
      `batches of ${c.train.batch_size} x ${c.train.grad_accum} sequences of ${m.seq_len} tokens, ${Math.round(w.manifest.elapsed_seconds)} s of training` +
      `${m.dropout ? `, dropout ${m.dropout}` : ''}.`,
    '',
    '## Use',
    '',
    `Every training document followed \`${END_OF_TEXT}\`: start prompts with it (the tokenizer does not add it).`,
    '',
    '```python',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    'tok = AutoTokenizer.from_pretrained("PATH")',
    'model = AutoModelForCausalLM.from_pretrained("PATH")',
    `ids = tok("${END_OF_TEXT}Once upon a time", return_tensors="pt").input_ids`,
    'print(tok.decode(model.generate(ids, max_new_tokens=100, do_sample=True)[0]))',
    '```',
    '',
    '## Licence',
    '',
    'pocketlm (MIT) puts no licence on the weights; the licence of the training data may apply to them.',
    '',
  ];
  return lines.join('\n');
}

/** The files of the folder other than the weights. */
function sideFiles(w: RunWeights, dtype: ExportDtype): Record<string, string> {
  const eot = w.tokenizer.eotId;
  const config = { ...llamaHfConfig(w.model, { bosId: eot, eosId: eot }), torch_dtype: TORCH_DTYPE[dtype] };
  return {
    'config.json': json(config),
    'tokenizer.json': tokenizerFileText(w.tokenizer),
    'tokenizer_config.json': json({
      tokenizer_class: 'PreTrainedTokenizerFast',
      model_max_length: w.model.seq_len,
      bos_token: END_OF_TEXT,
      eos_token: END_OF_TEXT,
      unk_token: END_OF_TEXT,
      // decoding must give back exactly the bytes: no space clean-up
      clean_up_tokenization_spaces: false,
    }),
    'generation_config.json': json({
      bos_token_id: eot,
      eos_token_id: eot,
      pad_token_id: eot,
      max_length: w.model.seq_len,
      do_sample: true,
      temperature: 0.8,
      top_k: 40,
    }),
    'README.md': modelCard(w, dtype),
  };
}

/** The Llama tensors of a run in a dtype, ready for the safetensors writer. */
export function hfTensors(model: ModelConfig, params: Float32Array, dtype: ExportDtype): StInput[] {
  return toLlamaTensors(model, params).map((t) =>
    dtype === 'f32' ? t : { name: t.name, shape: t.shape, data: encodeHalf(t.data, dtype === 'f16' ? 'F16' : 'BF16'), dtype: dtype === 'f16' ? 'F16' : 'BF16' },
  );
}

/**
 * Exports a run's weights (best checkpoint by default) as a Hugging Face Llama folder at
 * `opts.out`, which must not exist or be an empty folder. Written into a temp folder and renamed
 * into place at the end. `notes` carries the fallback notice when `best` was asked for and the
 * run has none yet.
 */
export async function exportHf(
  runDir: string,
  opts: { checkpoint?: CheckpointChoice; dtype?: ExportDtype; out: string },
): Promise<ExportReport & { notes: string[] }> {
  const t0 = performance.now();
  const dtype = opts.dtype ?? 'f32';
  const w = await readRunWeights(runDir, opts.checkpoint ?? 'best');
  requireLlamaModel(w.model);
  const tensors = hfTensors(w.model, w.params, dtype);
  const bytes = await writeFolder(opts.out, '--out', (tmp) => {
    writeFileAtomicSync(path.join(tmp, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    for (const [name, text] of Object.entries(sideFiles(w, dtype))) writeFileAtomicSync(path.join(tmp, name), text);
    return folderBytes(tmp);
  });
  return { out: opts.out, bytes, tensors: tensors.length, seconds: (performance.now() - t0) / 1000, notes: w.notice ? [w.notice] : [] };
}

// ---------------------------------------------------------------- import

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${file} does not exist`);
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError(`${file} is not valid JSON`);
  }
}

/** The safetensors files of a folder: model.safetensors, or the shards a model.safetensors.index.json names. */
function weightFiles(dir: string): string[] {
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return [single];
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(indexFile)) {
    const index = readJson(indexFile) as { weight_map?: unknown };
    const map = index?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new UserError(`${indexFile}: weight_map is not an object`);
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const s of shards) {
      if (typeof s !== 'string' || s.includes('/') || s.includes('\\') || s.startsWith('.')) throw new UserError(`${indexFile}: weight_map names ${JSON.stringify(s)}, not a file in the folder`);
    }
    return (shards as string[]).map((s) => path.join(dir, s));
  }
  if (fs.existsSync(path.join(dir, 'pytorch_model.bin'))) throw new UserError(`${dir} holds pytorch_model.bin: only safetensors weights can be imported (convert with transformers' save_pretrained(..., safe_serialization=True))`);
  throw new UserError(`${dir} has no model.safetensors`);
}

/** The imported tokenizer: byte-level BPE (parseHfJson refuses the rest, naming the field) with <|endoftext|>. */
function importTokenizer(dir: string, model: ModelConfig): Tokenizer {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new UserError(`${dir} has no tokenizer.json (a byte-level BPE tokenizer is required)`);
  const tok = loadTokenizerJson(file);
  if (!tok.toSpec().specials.some((s) => s.content === END_OF_TEXT)) {
    throw new UserError(`${file}: added_tokens has no "${END_OF_TEXT}" (pocketlm separates documents with it)`);
  }
  if (tok.vocabSize > model.vocab_size) throw new UserError(`${file} has ${tok.vocabSize} ids but config.json vocab_size is ${model.vocab_size}`);
  return tok;
}

/** The run config of an imported model: the default preset's training settings, this model, its tokenizer. */
function importedRunConfig(model: ModelConfig, tokenizerPath: string): RunConfig {
  const base = loadConfig({ preset: 'default' });
  // The tokenizer path makes `train --resume --data FILE` prepare data with this model's own
  // tokenizer (a new BPE would not match the weights).
  return validateConfig({ ...base, model: { ...model }, data: { ...base.data, tokenizer: tokenizerPath } }, 'the imported config');
}

/**
 * Writes a pocketlm run folder for a model made by `fromTensors`: config.toml, tokenizer.json and
 * a step-0 checkpoint with the weights only. `train --resume` on it starts with fresh optimizer
 * state (the manifest's `imported` says where it came from). Shared with the GGUF importer.
 */
export async function writeImportedRun(
  outRunDir: string,
  model: ModelConfig,
  tokenizer: Tokenizer,
  source: { format: 'hf' | 'gguf'; from: string },
  fill: (params: Float32Array) => void,
): Promise<number> {
  const layout = planLayout(model);
  const params = new Float32Array(layout.numParams);
  fill(params);
  const finalDir = path.resolve(outRunDir);
  const config = importedRunConfig(model, runPaths(finalDir).tokenizer);
  await writeFolder(outRunDir, '--out', async (tmp) => {
    const paths = runPaths(tmp);
    writeFileAtomicSync(paths.config, stringifyConfig(config));
    await saveTokenizer(tokenizer, paths.tokenizer);
    saveCheckpoint(tmp, config.model as unknown as Record<string, number | boolean | string>, { tensors: layout.tensors, weights: params }, {
      step: 0,
      tokens: 0,
      elapsed_seconds: 0,
      loader: null,
      rng: null,
      optimizer: config.optim.name,
      optim_scalars: {},
      dataset: { dir: '', tokenizer_hash: tokenizer.hash() },
      imported: source,
    });
  });
  return layout.numParams;
}

/**
 * Imports a Hugging Face Llama folder (config.json, tokenizer.json, model.safetensors or shards
 * with an index) as a run folder that `sample`, `eval` and `train --resume` accept. Refuses in
 * one line what we cannot represent (config.json fields, a tokenizer other than byte-level BPE,
 * missing, extra or mis-shaped tensors, corrupt safetensors).
 */
export async function importHf(dir: string, outRunDir: string): Promise<ImportReport> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir} is not a folder (a Hugging Face model folder is expected)`);
  const cfgFile = path.join(dir, 'config.json');
  const model = modelConfigFromHf(readJson(cfgFile), cfgFile);
  const tokenizer = importTokenizer(dir, model);
  const notes: string[] = [];
  const tensors = new Map<string, LlamaTensorData>();
  const dtypes = new Set<string>();
  for (const file of weightFiles(dir)) {
    const st = readSafetensors(file);
    for (const [name, t] of st.tensors) {
      // Older transformers saved the RoPE frequencies as a buffer: recomputed from rope_theta, not weights.
      if (name.endsWith('.rotary_emb.inv_freq')) continue;
      if (t.dtype === 'I32' || t.dtype === 'U8') throw new UserError(`${file}: tensor "${name}" has dtype ${t.dtype}, not a float type`);
      if (tensors.has(name)) throw new UserError(`${file}: tensor "${name}" appears in two files`);
      dtypes.add(t.dtype);
      tensors.set(name, { shape: t.shape, data: toFloat32(t) });
    }
  }
  if (model.tie_embeddings && tensors.has('lm_head.weight')) {
    // Some tied checkpoints store the head anyway: accept it only when it is the embedding.
    const head = tensors.get('lm_head.weight')!.data;
    const emb = tensors.get('model.embed_tokens.weight')?.data;
    if (emb && head.length === emb.length && head.every((x, i) => Object.is(x, emb[i]))) {
      tensors.delete('lm_head.weight');
      notes.push('lm_head.weight equals the embedding (tie_word_embeddings): not stored twice');
    }
  }
  const where = dir;
  const params = await writeImportedRun(outRunDir, model, tokenizer, { format: 'hf', from: path.resolve(dir) }, (out) => {
    try {
      fromLlamaTensors(model, tensors, out);
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`);
      throw e;
    }
  });
  if ([...dtypes].some((d) => d !== 'F32')) notes.push(`weights stored as ${[...dtypes].join(', ')} were widened to float32`);
  notes.push('no optimizer state: `pocketlm train --resume` on this run starts with a fresh optimizer (fine-tuning from these weights)');
  return { runDir: outRunDir, params, notes };
}
