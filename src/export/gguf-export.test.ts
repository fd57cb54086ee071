// A small trained run exported to GGUF, checked by an independent runtime (llama.cpp through
// node-llama-cpp 3.21.1, its prebuilt CPU binary; nothing is downloaded or built) against our own
// forward and generator, imported back bit for bit, refused when bad, and driven through the CLI.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { loadConfig, stringifyConfig } from '../train/config.js';
import { evaluateRun, openRun } from '../train/inference.js';
import { readManifest, saveCheckpoint } from '../train/checkpoint.js';
import { runPaths } from '../train/run.js';
import { Generator } from '../model/generate.js';
import { planLayout } from '../model/layout.js';
import { mulberry32 } from '../util/rng.js';
import { saveTokenizer } from '../tokenizer/load.js';
import { trainBpe } from '../tokenizer/train.js';
import { splitDocuments } from '../tokenizer/text-io.js';
import { readGguf, writeGguf, ggufString, type GgufFile, type GgufKv, type GgufTensorIn } from './gguf.js';
import { permuteForGguf } from './gguf-llama.js';
import { toLlamaTensors } from './llama-weights.js';
import { readRunWeights } from './run-weights.js';
import { exportGguf } from './gguf-export.js';
import { importGguf } from './gguf-import.js';
import { trainTiedAndUntied } from './testing.js';

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';

const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
const SEQ = 64;
let work = '';
let savedCache: string | undefined;
const runs: Record<'untied' | 'tied', string> = { untied: '', tied: '' };
const files: Record<'untied' | 'tied' | 'f16', string> = { untied: '', tied: '', f16: '' };
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- node-llama-cpp's Llama, imported dynamically
let llama: any;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-gguf-export-'));
  savedCache = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(work, 'cache');
  // the tied run is Schedule-Free: the checkpoint must hold (and the export carry) the evaluation weights x
  Object.assign(runs, await trainTiedAndUntied(work, { seqLen: SEQ, steps: 40, set: ['optim.lr=0.01'] }));
  files.untied = path.join(work, 'untied.gguf');
  files.tied = path.join(work, 'tied.gguf');
  files.f16 = path.join(work, 'untied-f16.gguf');
  await exportGguf(runs.untied, { out: files.untied });
  await exportGguf(runs.tied, { out: files.tied });
  await exportGguf(runs.untied, { out: files.f16, dtype: 'f16' });
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  llama = await getLlama({ build: 'never', gpu: false, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
});

after(async () => {
  await llama?.dispose();
  if (savedCache === undefined) delete process.env.POCKETLM_CACHE;
  else process.env.POCKETLM_CACHE = savedCache;
  fs.rmSync(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------ llama.cpp

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function withModel<T>(file: string, fn: (model: any, seq: any) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap: false });
  try {
    const context = await model.createContext({
      contextSize: SEQ, batchSize: SEQ, threads: 2, flashAttention: false,
      // float32 KV cache: the default f16 cache would round k and v (llama.cpp's own precision choice).
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      return await fn(model, context.getSequence());
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's full next-token distribution after `ids` (temperature 1, topK = vocab, topP 1, minP 0). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function llamaProbs(seq: any, ids: number[], vocab: number): Promise<Float64Array> {
  await seq.clearHistory();
  const input = ids.map((id, i) => (i < ids.length - 1 ? id : [id, { generateNext: { probabilities: true, options: { temperature: 1, topK: vocab, topP: 1, minP: 0 } } }]));
  const out = await seq.controlledEvaluate(input);
  const probs: Map<number, number> = out[ids.length - 1].next.probabilities;
  const p = new Float64Array(vocab);
  for (const [id, v] of probs) p[id] = v;
  return p;
}

/** llama.cpp's greedy continuation of n tokens (it ends at an end-of-generation token, included). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function llamaGreedy(seq: any, ids: number[], n: number): Promise<number[]> {
  await seq.clearHistory();
  const out: number[] = [];
  for await (const t of seq.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
    out.push(t);
    if (out.length >= n) break;
  }
  return out;
}

// ------------------------------------------------------------------ pocketlm's own

function softmax(logits: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]!);
  const e = Float64Array.from(logits, (v) => Math.exp(v - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** Our next-token distribution after each prompt: the model's forward (a window padded after the prompt; attention is causal). */
async function ourProbs(runDir: string, prompts: number[][]): Promise<Float64Array[]> {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1, batchSize: 1, checkpoint: 'best' });
  try {
    const V = run.config.model.vocab_size;
    return prompts.map((ids) => {
      run.inputs.fill(0);
      run.inputs.set(ids);
      run.model.forward(run.inputs, null, 1);
      return softmax(run.model.logits().subarray((ids.length - 1) * V, ids.length * V));
    });
  } finally {
    await run.close();
  }
}

/** Our greedy continuation with the KV-cache Generator, ending at <|endoftext|> as llama.cpp does. */
async function ourGreedy(runDir: string, ids: number[], n: number): Promise<number[]> {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1, batchSize: 1, checkpoint: 'best' });
  try {
    const gen = new Generator(run.model, run.backend.kernels, run.backend.arena);
    let logits = gen.step(ids[0]!);
    for (const id of ids.slice(1)) logits = gen.step(id);
    const out: number[] = [];
    while (out.length < n) {
      const next = argmax(logits);
      out.push(next);
      if (next === run.tokenizer.eotId) break;
      logits = gen.step(next);
    }
    return out;
  } finally {
    await run.close();
  }
}

/** Logits of a run's model on a batch of ids from the data (wasm, one thread: deterministic). */
async function logitsOf(runDir: string, B: number): Promise<Float32Array> {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1, batchSize: B, checkpoint: 'best' });
  try {
    const ids = run.tokenizer.encode(fs.readFileSync(DATA, 'utf8').slice(0, 20000)).slice(0, B * SEQ);
    run.inputs.set(ids);
    run.model.forward(run.inputs, null, B);
    return Float32Array.from(run.model.logits());
  } finally {
    await run.close();
  }
}

const PROMPTS = ['Once upon a time, there was a little', 'The dog', 'Lily said, "I', ''];

const AWKWARD = [
  "I'm sure you're right, he'll say she'd've it's THEY'LL 's '' 're",
  'Numbers: 0 7 42 1234567 3.14159 1,000,000 2026-12-01 ٣٤ ½',
  'line one\r\nline two\r\n\r\nthree\rfour\n\n\n',
  'emoji 🙂🙂 👩‍👩‍👧‍👦 🇯🇵 ❤️ and café naïve e\u0301',
  'runs   of    spaces     and\ttabs\t\t here  \n  ',
  '<|endoftext|>Once upon a time<|endoftext|><|endoftext|> the end',
  '<|endoftext <| endoftext |> <|endoftext|',
];

// ------------------------------------------------------------------ tests

for (const kind of ['untied', 'tied'] as const) {
  test(`${kind}: the GGUF holds llama.cpp's names, shapes, types and metadata; q and k are permuted`, async () => {
    const w = await readRunWeights(runs[kind]);
    const g = readGguf(files[kind]);
    assert.equal(g.version, 3);
    assert.equal(ggufString(g, 'general.architecture'), 'llama');
    assert.equal(ggufString(g, 'general.name'), kind);
    const num = (k: string): unknown => (g.kv.get(k) as { value: unknown } | undefined)?.value;
    assert.equal(num('llama.context_length'), SEQ);
    assert.equal(num('llama.embedding_length'), 32);
    assert.equal(num('llama.block_count'), 2);
    assert.equal(num('llama.feed_forward_length'), 64);
    assert.equal(num('llama.attention.head_count'), 2);
    assert.equal(num('llama.attention.head_count_kv'), 2);
    assert.equal(num('llama.attention.layer_norm_rms_epsilon'), Math.fround(w.model.norm_eps));
    assert.equal(num('llama.rope.freq_base'), w.model.rope_theta);
    assert.equal(num('llama.rope.dimension_count'), 16);
    assert.equal(num('llama.vocab_size'), 512);
    assert.equal(num('general.file_type'), 0);
    assert.equal(ggufString(g, 'tokenizer.ggml.model'), 'gpt2');
    assert.equal(ggufString(g, 'tokenizer.ggml.pre'), 'gpt-2');
    assert.equal(num('tokenizer.ggml.eos_token_id'), w.tokenizer.eotId);
    const names = g.tensors.map((t) => t.name);
    const layer = (l: number): string[] => ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'].map((n) => `blk.${l}.${n}.weight`);
    assert.deepEqual(names, ['token_embd.weight', ...layer(0), ...layer(1), 'output_norm.weight', ...(kind === 'untied' ? ['output.weight'] : [])]);
    for (const t of g.tensors) assert.equal(t.type, 'F32', t.name);
    assert.deepEqual(g.tensor('blk.1.ffn_gate.weight').shape, [64, 32]);
    assert.deepEqual(g.tensor('blk.1.ffn_down.weight').shape, [32, 64]);
    // Exactly the checkpoint's weights (for Schedule-Free, the x it saves), q/k rows permuted.
    const hf = new Map(toLlamaTensors(w.model, w.params).map((t) => [t.name, t.data]));
    assert.deepEqual(g.readTensorF32('blk.1.attn_q.weight'), permuteForGguf(hf.get('model.layers.1.self_attn.q_proj.weight')!, 32, 32, 2));
    assert.deepEqual(g.readTensorF32('blk.0.attn_k.weight'), permuteForGguf(hf.get('model.layers.0.self_attn.k_proj.weight')!, 32, 32, 2));
    assert.deepEqual(g.readTensorF32('blk.0.attn_v.weight'), hf.get('model.layers.0.self_attn.v_proj.weight'));
    assert.deepEqual(g.readTensorF32('token_embd.weight'), hf.get('model.embed_tokens.weight'));
  });

  test(`${kind}: llama.cpp gives our token ids, our next-token probabilities within 1e-5 and our greedy continuation`, async () => {
    const w = await readRunWeights(runs[kind]);
    const tok = w.tokenizer;
    const prompts = PROMPTS.map((s) => [tok.eotId, ...tok.encode(s)]);
    const ours = await ourProbs(runs[kind], prompts);
    let worst = 0;
    await withModel(files[kind], async (model, seq) => {
      assert.equal(model.tokens.eos, tok.eotId);
      for (const s of AWKWARD) {
        assert.deepEqual([...model.tokenize(s, false)], tok.encode(s), `plain: ${JSON.stringify(s)}`);
        assert.deepEqual([...model.tokenize(s, true)], tok.encodeWithSpecial(s), `special: ${JSON.stringify(s)}`);
      }
      for (let p = 0; p < prompts.length; p++) {
        const got = await llamaProbs(seq, prompts[p]!, 512);
        for (let i = 0; i < 512; i++) worst = Math.max(worst, Math.abs(got[i]! - ours[p]![i]!));
        // A trained model's distribution is peaked, so agreement is not two flat distributions.
        assert.ok(Math.max(...ours[p]!) > 10 / 512, `prompt ${p} is nearly uniform (top probability ${Math.max(...ours[p]!)})`);
      }
      // The issue asks for 1e-3; measured 3e-8 (float32 both sides, different summation orders).
      // This briefly trained model leans little on attention: q/k rows left unpermuted give only
      // ~2e-3 (untied), so the bound is set where it catches that by far.
      assert.ok(worst < 1e-5, `largest probability difference ${worst}`);
      for (const ids of prompts.slice(0, 2)) {
        const expect = await ourGreedy(runs[kind], ids, 32);
        assert.deepEqual(await llamaGreedy(seq, ids, 32), expect);
      }
    });
  });
}

test('f16 GGUF: matrices F16, norms F32, llama.cpp probabilities within 2e-4 of our f32 model', async () => {
  const g = readGguf(files.f16);
  assert.equal(g.tensor('blk.0.attn_q.weight').type, 'F16');
  assert.equal(g.tensor('output.weight').type, 'F16');
  assert.equal(g.tensor('blk.0.attn_norm.weight').type, 'F32');
  assert.equal((g.kv.get('general.file_type') as { value: number }).value, 1);
  const f32Size = fs.statSync(files.untied).size;
  assert.ok(g.fileSize < 0.6 * f32Size, `f16 ${g.fileSize} bytes vs f32 ${f32Size}`);
  const tok = (await readRunWeights(runs.untied)).tokenizer;
  const prompts = PROMPTS.map((s) => [tok.eotId, ...tok.encode(s)]);
  const ours = await ourProbs(runs.untied, prompts);
  let worst = 0;
  await withModel(files.f16, async (_model, seq) => {
    for (let p = 0; p < prompts.length; p++) {
      const got = await llamaProbs(seq, prompts[p]!, 512);
      for (let i = 0; i < 512; i++) worst = Math.max(worst, Math.abs(got[i]! - ours[p]![i]!));
    }
  });
  // Weights rounded to f16 (11 significant bits), and llama.cpp's CPU kernels round the
  // activations multiplied with f16 weights to f16 as well: measured 1.9e-5 here (f32: 3e-8).
  // The bound leaves a factor of 10; above 0 or nothing was rounded.
  assert.ok(worst > 0 && worst < 2e-4, `largest probability difference ${worst}`);
});

test('round trip: export f32 -> import gives bit-identical logits, for both runs; Schedule-Free exports the evaluated x', async () => {
  for (const kind of ['untied', 'tied'] as const) {
    const imported = path.join(work, `${kind}-imported`);
    const r = await importGguf(files[kind], imported);
    assert.equal(r.runDir, imported);
    assert.equal(r.params, (await readRunWeights(runs[kind])).params.length);
    assert.ok(r.notes.some((n) => /fresh optimizer/.test(n)));
    const m = readManifest(imported)!;
    assert.equal(m.imported?.format, 'gguf');
    const orig = loadConfig({ file: runPaths(runs[kind]).config }).model;
    const back = loadConfig({ file: runPaths(imported).config }).model;
    assert.deepEqual({ ...back, init_std: orig.init_std }, orig, 'same model config (eps and rope base as written)');
    const a = await logitsOf(runs[kind], 2);
    const b = await logitsOf(imported, 2);
    assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(a.buffer), `${kind}: bit-identical logits`);
  }
  // The exported weights are the checkpoint's, and the checkpoint's are the ones the trainer
  // evaluated (Schedule-Free's x, not its y): re-evaluating them reproduces the recorded loss.
  const run = await openRun(runs.tied, { backend: 'wasm', threads: 1, checkpoint: 'best' });
  try {
    const ev = evaluateRun(run, {});
    assert.ok(Math.abs(ev.loss - run.manifest.val_loss!) < 1e-5, `eval ${ev.loss} vs recorded ${run.manifest.val_loss}`);
  } finally {
    await run.close();
  }
});

// ------------------------------------------------------------------ refusals

function refusedAsync(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

/** The file's metadata and tensors, to write an edited copy. */
function contents(g: GgufFile): { kv: GgufKv[]; tensors: GgufTensorIn[] } {
  const kv = [...g.kv].map(([key, v]) => ({ key, ...v }) as GgufKv);
  const tensors = g.tensors.map((t) => ({ name: t.name, shape: t.shape, data: g.readTensorF32(t.name), type: t.type }));
  return { kv, tensors };
}

test('export refuses bf16 and an existing --out in one line and writes nothing', async () => {
  await refusedAsync(exportGguf(runs.untied, { out: path.join(work, 'x.gguf'), dtype: 'bf16' }), /--dtype bf16 is not available for GGUF.*use f32 or f16/);
  assert.ok(!fs.existsSync(path.join(work, 'x.gguf')));
  const before = fs.readFileSync(files.tied);
  await refusedAsync(exportGguf(runs.untied, { out: files.tied }), /--out .*tied\.gguf already exists; choose a new file name/);
  assert.deepEqual(fs.readFileSync(files.tied), before, 'the existing file is untouched');
  await refusedAsync(exportGguf(runs.untied, { out: work }), /already exists \(a folder\)/);
  await refusedAsync(exportGguf(path.join(work, 'nope'), { out: path.join(work, 'y.gguf') }), /run folder .*nope does not exist/);
  assert.ok(!fs.existsSync(path.join(work, 'y.gguf')));
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp file left');
});

test('import refuses what it cannot represent in one line, naming the field, and writes nothing', async () => {
  const g = readGguf(files.untied);
  const base = contents(g);
  const edited = (name: string, edit: (c: { kv: GgufKv[]; tensors: GgufTensorIn[] }) => void): string => {
    const c = { kv: base.kv.map((x) => ({ ...x })) as GgufKv[], tensors: [...base.tensors] };
    edit(c);
    const file = path.join(work, `bad-${name}.gguf`);
    writeGguf(file, c.kv, c.tensors);
    return file;
  };
  const setKv = (c: { kv: GgufKv[] }, kv: GgufKv): void => {
    const i = c.kv.findIndex((x) => x.key === kv.key);
    if (i >= 0) c.kv[i] = kv;
    else c.kv.push(kv);
  };
  const bytes = fs.readFileSync(files.untied);
  const truncated = path.join(work, 'bad-truncated.gguf');
  fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 1000));
  const cases: Array<[string, string, RegExp]> = [
    ['arch', edited('arch', (c) => setKv(c, { key: 'general.architecture', type: 'string', value: 'gpt2' })), /general\.architecture = "gpt2": only "llama"/],
    ['kv-heads', edited('kvheads', (c) => setKv(c, { key: 'llama.attention.head_count_kv', type: 'uint32', value: 1 })), /llama\.attention\.head_count_kv = 1: grouped-query attention is not supported/],
    ['rope-scaling', edited('rope', (c) => setKv(c, { key: 'llama.rope.scaling.type', type: 'string', value: 'linear' })), /llama\.rope\.scaling\.type = "linear": RoPE scaling is not supported/],
    ['tokenizer', edited('tok', (c) => setKv(c, { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' })), /tokenizer\.ggml\.model is "llama"; only "gpt2"/],
    ['pre', edited('pre', (c) => setKv(c, { key: 'tokenizer.ggml.pre', type: 'string', value: 'llama3' })), /tokenizer\.ggml\.pre is "llama3"; only "gpt-2"/],
    ['missing', edited('missing', (c) => { c.tensors = c.tensors.filter((t) => t.name !== 'blk.1.ffn_up.weight'); }), /GGUF tensor "blk\.1\.ffn_up\.weight" is missing/],
    ['bias', edited('bias', (c) => { c.tensors.push({ name: 'blk.0.attn_q.bias', shape: [32], data: new Float32Array(32) }); }), /GGUF tensor "blk\.0\.attn_q\.bias": biases are not supported/],
    ['extra', edited('extra', (c) => { c.tensors.push({ name: 'rope_freqs.weight', shape: [8], data: new Float32Array(8) }); }), /"rope_freqs\.weight": RoPE frequency factors are not supported/],
    ['shape', edited('shape', (c) => { c.tensors = c.tensors.map((t) => (t.name === 'blk.0.ffn_gate.weight' ? { ...t, shape: [32, 64] } : t)); }), /"blk\.0\.ffn_gate\.weight" has shape \[32, 64\] \(row-major\), expected \[64, 32\]/],
    ['truncated', truncated, /not a usable GGUF file: tensor ".*" data .* runs past the end of the file/],
  ];
  for (const [name, file, pattern] of cases) {
    const out = path.join(work, `out-${name}`);
    await refusedAsync(importGguf(file, out), pattern);
    assert.ok(!fs.existsSync(out), `${name}: nothing written`);
  }
  await refusedAsync(importGguf(files.untied, runs.tied), /--out .*tied already exists and is not empty/);
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp folder left');
});

// ------------------------------------------------------------------ padding and the CLI

test('a model with more embedding rows than tokenizer ids: padded with unused tokens that llama.cpp loads; imports back', async () => {
  // Random weights suffice: this checks the vocabulary plumbing, the trained runs check the numbers.
  const dir = path.join(work, 'padded');
  const cfg = loadConfig({ preset: 'tiny', set: ['model.vocab_size=300', 'model.d_model=16', 'model.n_layer=1', 'model.n_head=2', `model.seq_len=${SEQ}`, 'model.ffn_hidden=32', 'train.batch_size=1'] });
  const layout = planLayout(cfg.model);
  const u = mulberry32(5);
  const params = Float32Array.from({ length: layout.numParams }, () => (u() - 0.5) * 0.5);
  fs.mkdirSync(dir);
  fs.writeFileSync(runPaths(dir).config, stringifyConfig(cfg));
  const tok = trainBpe(splitDocuments(fs.readFileSync(DATA, 'utf8').slice(0, 50_000)), { vocabSize: 290 });
  assert.equal(tok.vocabSize, 290);
  await saveTokenizer(tok, runPaths(dir).tokenizer);
  saveCheckpoint(dir, cfg.model as unknown as Record<string, number | boolean | string>, { tensors: layout.tensors, weights: params }, {
    step: 1, tokens: 64, elapsed_seconds: 1, loader: null, rng: null, optimizer: 'adamw', optim_scalars: {}, dataset: { dir: '', tokenizer_hash: '' },
  });
  const file = path.join(work, 'padded.gguf');
  const r = await exportGguf(dir, { out: file, checkpoint: 'last' });
  const g = readGguf(file);
  const tokens = g.kv.get('tokenizer.ggml.tokens') as { value: readonly string[] };
  assert.equal(tokens.value.length, 300);
  assert.equal(tokens.value[299], '[PAD299]');
  const ids = [tok.eotId, ...tok.encode('Once upon a time')];
  const ours = await ourProbs(dir, [ids]);
  await withModel(file, async (model, seq) => {
    assert.deepEqual([...model.tokenize('Once upon a time', false)], tok.encode('Once upon a time'));
    const got = await llamaProbs(seq, ids, 300);
    for (let i = 0; i < 300; i++) assert.ok(Math.abs(got[i]! - ours[0]![i]!) < 1e-3, `id ${i}`);
  });
  const imported = path.join(work, 'padded-imported');
  const ir = await importGguf(file, imported);
  assert.ok(ir.notes.some((n) => /ids 290\.\.299 are padding/.test(n)), ir.notes.join('; '));
  assert.equal(loadConfig({ file: runPaths(imported).config }).model.vocab_size, 300);
  assert.equal(r.tensors, g.tensors.length);
});

test('CLI: export --format gguf, import --from gguf, then sample on the imported run', () => {
  const bin = path.join(packageRoot(), 'bin', 'pocketlm.js');
  const cli = (args: string[]): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: work, env: { ...process.env, POCKETLM_CACHE: path.join(work, 'cache') } });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  };
  const file = path.join(work, 'cli.gguf');
  const e = cli(['export', '--run', runs.untied, '--format', 'gguf', '--dtype', 'f16', '--out', file]);
  assert.equal(e.code, 0, e.err);
  assert.match(e.out, /^wrote .*cli\.gguf: 21 tensors, [\d.]+ KiB \(f16\) in [\d.]+ s\n$/);
  const again = cli(['export', '--run', runs.untied, '--format', 'gguf', '--out', file]);
  assert.equal(again.code, 1);
  assert.match(again.err, /^pocketlm: --out .*cli\.gguf already exists; choose a new file name\n$/);
  const bf = cli(['export', '--run', runs.untied, '--format', 'gguf', '--dtype', 'bf16', '--out', path.join(work, 'bf.gguf')]);
  assert.equal(bf.code, 1);
  assert.match(bf.err, /^pocketlm: --dtype bf16 is not available for GGUF[^\n]*\n$/);
  const i = cli(['import', '--from', 'gguf', file, '--out', path.join(work, 'cli-run')]);
  assert.equal(i.code, 0, i.err);
  assert.match(i.out, /^imported .*cli\.gguf into .*cli-run: [\d,]+ parameters\nnote: \d+ F16 tensors were widened to float32\nnote: no optimizer state/);
  const s = cli(['sample', '--run', path.join(work, 'cli-run'), '--max-tokens', '8', '--temperature', '0', '--prompt', 'Once upon', '--backend', 'js']);
  assert.equal(s.code, 0, s.err);
  assert.match(s.out, /^Once upon[\s\S]{3,}/, "the continuation follows the prompt");
});
