// The GGUF we write, checked by an independent runtime: llama.cpp (through node-llama-cpp, a dev
// dependency with its prebuilt CPU binary; nothing is downloaded or built). A tiny random-weight
// Llama with a BPE tokenizer trained on TinyStories is written in GGUF naming; llama.cpp must
// tokenize awkward strings to our ids, give next-token probabilities equal to a float64 reference
// forward, and continue greedily exactly as the reference does.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeGguf, readGguf, type GgufKv, type GgufTensorIn } from './gguf.js';
import { ggufTokenizerKv, tokenizerFromGguf } from './gguf-tokenizer.js';
import { permuteForGguf } from './gguf-llama.js';
import { trainBpe } from '../tokenizer/train.js';
import { splitDocuments } from '../tokenizer/text-io.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { mulberry32 } from '../util/rng.js';
import type { BpeTokenizer } from '../tokenizer/bpe-tokenizer.js';

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';

interface TinyLlama {
  vocab: number; d: number; nLayer: number; nHead: number; ffn: number; ctx: number; eps: number; theta: number;
  tied: boolean;
  /** Hugging Face orientation: [out, in] row-major; q/k rows in rotate-half order (ours). */
  w: Map<string, Float32Array>;
}

function randn(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function randomLlama(vocab: number, tied: boolean, seed: number): TinyLlama {
  const m: TinyLlama = { vocab, d: 64, nLayer: 2, nHead: 4, ffn: 96, ctx: 256, eps: 1e-5, theta: 10000, tied, w: new Map() };
  const rand = mulberry32(seed);
  const mat = (rows: number, cols: number, std: number): Float32Array => Float32Array.from({ length: rows * cols }, () => std * randn(rand));
  const norm = (n: number): Float32Array => Float32Array.from({ length: n }, () => 1 + 0.2 * randn(rand));
  const { d, ffn } = m;
  m.w.set('embed', mat(vocab, d, 1));
  for (let l = 0; l < m.nLayer; l++) {
    m.w.set(`${l}.attn_norm`, norm(d));
    for (const p of ['q', 'k', 'v', 'o']) m.w.set(`${l}.${p}`, mat(d, d, 0.6 / Math.sqrt(d)));
    m.w.set(`${l}.ffn_norm`, norm(d));
    m.w.set(`${l}.gate`, mat(ffn, d, 1 / Math.sqrt(d)));
    m.w.set(`${l}.up`, mat(ffn, d, 1 / Math.sqrt(d)));
    m.w.set(`${l}.down`, mat(d, ffn, 1 / Math.sqrt(ffn)));
  }
  m.w.set('final_norm', norm(d));
  if (!tied) m.w.set('lm_head', mat(vocab, d, 1.5 / Math.sqrt(d)));
  return m;
}

/** The model in GGUF naming and llama.cpp's conventions (q/k rows permuted), with our tokenizer. */
function writeTinyLlamaGguf(file: string, m: TinyLlama, tok: BpeTokenizer, dtype: 'F32' | 'F16'): void {
  const W = (k: string): Float32Array => m.w.get(k)!;
  const kv: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: 'pocketlm gguf test' },
    { key: 'llama.context_length', type: 'uint32', value: m.ctx },
    { key: 'llama.embedding_length', type: 'uint32', value: m.d },
    { key: 'llama.block_count', type: 'uint32', value: m.nLayer },
    { key: 'llama.feed_forward_length', type: 'uint32', value: m.ffn },
    { key: 'llama.attention.head_count', type: 'uint32', value: m.nHead },
    { key: 'llama.attention.head_count_kv', type: 'uint32', value: m.nHead },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'float32', value: m.eps },
    { key: 'llama.rope.freq_base', type: 'float32', value: m.theta },
    { key: 'llama.rope.dimension_count', type: 'uint32', value: m.d / m.nHead },
    { key: 'llama.vocab_size', type: 'uint32', value: m.vocab },
    ...ggufTokenizerKv(tok),
  ];
  const { d, ffn } = m;
  const tensors: GgufTensorIn[] = [{ name: 'token_embd.weight', shape: [m.vocab, d], data: W('embed') }];
  for (let l = 0; l < m.nLayer; l++) {
    const b = `blk.${l}`;
    tensors.push(
      { name: `${b}.attn_norm.weight`, shape: [d], data: W(`${l}.attn_norm`) },
      { name: `${b}.attn_q.weight`, shape: [d, d], data: permuteForGguf(W(`${l}.q`), d, d, m.nHead) },
      { name: `${b}.attn_k.weight`, shape: [d, d], data: permuteForGguf(W(`${l}.k`), d, d, m.nHead) },
      { name: `${b}.attn_v.weight`, shape: [d, d], data: W(`${l}.v`) },
      { name: `${b}.attn_output.weight`, shape: [d, d], data: W(`${l}.o`) },
      { name: `${b}.ffn_norm.weight`, shape: [d], data: W(`${l}.ffn_norm`) },
      { name: `${b}.ffn_gate.weight`, shape: [ffn, d], data: W(`${l}.gate`) },
      { name: `${b}.ffn_up.weight`, shape: [ffn, d], data: W(`${l}.up`) },
      { name: `${b}.ffn_down.weight`, shape: [d, ffn], data: W(`${l}.down`) },
    );
  }
  tensors.push({ name: 'output_norm.weight', shape: [d], data: W('final_norm') });
  if (!m.tied) tensors.push({ name: 'output.weight', shape: [m.vocab, d], data: W('lm_head') });
  writeGguf(file, kv, tensors, { dtype });
}

// ------------------------------------------------------------------ float64 reference forward

type Rope = 'rotate-half' | 'interleaved';

interface RefWeights { get(name: string): Float32Array }

/** Next-token logits after `ids`, in float64. `w` names follow GGUF; `rope` picks the pairing. */
function referenceLogits(m: TinyLlama, w: RefWeights, ids: readonly number[], rope: Rope): Float64Array {
  const { d, nHead, ffn, eps, theta } = m;
  const D = d / nHead;
  const T = ids.length;
  const matvec = (W: Float32Array, rows: number, cols: number, x: Float64Array): Float64Array => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += W[r * cols + c]! * x[c]!;
      y[r] = s;
    }
    return y;
  };
  const rms = (x: Float64Array, g: Float32Array): Float64Array => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const s = 1 / Math.sqrt(ss / x.length + eps);
    return x.map((v, i) => v * s * g[i]!);
  };
  const rot = (v: Float64Array, pos: number): void => {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < D / 2; i++) {
        const [ia, ib] = rope === 'interleaved' ? [h * D + 2 * i, h * D + 2 * i + 1] : [h * D + i, h * D + i + D / 2];
        const a = v[ia]!;
        const b = v[ib]!;
        const t = pos * Math.pow(theta, (-2 * i) / D);
        v[ia] = a * Math.cos(t) - b * Math.sin(t);
        v[ib] = a * Math.sin(t) + b * Math.cos(t);
      }
    }
  };
  const emb = w.get('token_embd.weight');
  let xs = ids.map((id) => Float64Array.from(emb.subarray(id * d, (id + 1) * d)));
  for (let l = 0; l < m.nLayer; l++) {
    const b = `blk.${l}`;
    const hs = xs.map((x) => rms(x, w.get(`${b}.attn_norm.weight`)));
    const q = hs.map((h, t) => { const v = matvec(w.get(`${b}.attn_q.weight`), d, d, h); rot(v, t); return v; });
    const k = hs.map((h, t) => { const v = matvec(w.get(`${b}.attn_k.weight`), d, d, h); rot(v, t); return v; });
    const v = hs.map((h) => matvec(w.get(`${b}.attn_v.weight`), d, d, h));
    xs = xs.map((x, t) => {
      const att = new Float64Array(d);
      for (let h = 0; h < nHead; h++) {
        const s = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += q[t]![h * D + e]! * k[j]![h * D + e]!;
          s[j] = dot / Math.sqrt(D);
          mx = Math.max(mx, s[j]!);
        }
        let z = 0;
        for (let j = 0; j <= t; j++) { s[j] = Math.exp(s[j]! - mx); z += s[j]!; }
        for (let j = 0; j <= t; j++) for (let e = 0; e < D; e++) att[h * D + e] += (s[j]! / z) * v[j]![h * D + e]!;
      }
      const o = matvec(w.get(`${b}.attn_output.weight`), d, d, att);
      const x1 = x.map((xv, i) => xv + o[i]!);
      const h2 = rms(x1, w.get(`${b}.ffn_norm.weight`));
      const g = matvec(w.get(`${b}.ffn_gate.weight`), ffn, d, h2);
      const u = matvec(w.get(`${b}.ffn_up.weight`), ffn, d, h2);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const dn = matvec(w.get(`${b}.ffn_down.weight`), d, ffn, a);
      return x1.map((xv, i) => xv + dn[i]!);
    });
  }
  const last = rms(xs[T - 1]!, w.get('output_norm.weight'));
  return matvec(m.tied ? emb : w.get('output.weight'), m.vocab, d, last);
}

/** Weights by GGUF name from our in-memory model (rotate-half order, not permuted). */
function hfOrderWeights(m: TinyLlama): RefWeights {
  const map = new Map<string, Float32Array>();
  map.set('token_embd.weight', m.w.get('embed')!);
  map.set('output_norm.weight', m.w.get('final_norm')!);
  if (!m.tied) map.set('output.weight', m.w.get('lm_head')!);
  const names: Record<string, string> = { attn_norm: 'attn_norm', attn_q: 'q', attn_k: 'k', attn_v: 'v', attn_output: 'o', ffn_norm: 'ffn_norm', ffn_gate: 'gate', ffn_up: 'up', ffn_down: 'down' };
  for (let l = 0; l < m.nLayer; l++) for (const [g, o] of Object.entries(names)) map.set(`blk.${l}.${g}.weight`, m.w.get(`${l}.${o}`)!);
  return { get: (n) => map.get(n)! };
}

function softmax(logits: Float64Array): Float64Array {
  let mx = -Infinity;
  for (const v of logits) mx = Math.max(mx, v);
  const e = logits.map((v) => Math.exp(v - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

function argmax(a: Float64Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

// ------------------------------------------------------------------ the runtime

// Awkward strings for the tokenizer comparison (no U+0085 / U+FEFF: see gguf-tokenizer.ts).
const AWKWARD = [
  "I'm sure you're right, he'll say she'd've it's THEY'LL 's '' 're",
  'Numbers: 0 7 42 1234567 3.14159 1,000,000 2026-12-01 ٣٤ ½',
  'line one\r\nline two\r\n\r\nthree\rfour\n\n\n',
  'emoji 🙂🙂 👩‍👩‍👧‍👦 🇯🇵 ❤️ and café naïve e\u0301',
  'runs   of    spaces     and\ttabs\t\t here  \n  ',
  '   leading and trailing   ',
  'Once upon a time, there was a little girl named Lily.',
  '中文 日本語 한국어 שלום مرحبا',
  '<|endoftext|>',
  'a<|endoftext|>b <|endoftext|> <|endoftext|><|endoftext|>',
  '<|endoftext <| endoftext |> <|endoftext|',
];

let dir = '';
let tok: BpeTokenizer;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- node-llama-cpp's Llama, imported dynamically
let llama: any;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-gguf-rt-'));
  const text = fs.readFileSync(path.join(tinystoriesSampleDir(), 'valid-00.txt'), 'utf8');
  tok = trainBpe(splitDocuments(text.slice(0, 400_000)), { vocabSize: 512 });
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  llama = await getLlama({ build: 'never', gpu: false, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
});

after(async () => {
  await llama?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function withModel<T>(file: string, fn: (model: any, context: any) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap: false });
  try {
    const context = await model.createContext({
      contextSize: 256, batchSize: 64, threads: 2, flashAttention: false,
      // float32 KV cache: the default f16 cache would round k and v (llama.cpp's own precision choice).
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      // One sequence, its history cleared before each use (a disposed sequence is not free at once).
      return await fn(model, context.getSequence());
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Full next-token distribution after `ids` (temperature 1, topK = vocab, topP 1, minP 0). */
async function llamaProbs(seq: any, ids: number[], vocab: number): Promise<Float64Array> {
  await seq.clearHistory();
  {
    const input = ids.map((id, i) => (i < ids.length - 1 ? id : [id, { generateNext: { probabilities: true, options: { temperature: 1, topK: vocab, topP: 1, minP: 0 } } }]));
    const out = await seq.controlledEvaluate(input);
    const probs: Map<number, number> = out[ids.length - 1].next.probabilities;
    const p = new Float64Array(vocab);
    for (const [id, v] of probs) p[id] = v;
    return p;
  }
}

/** Greedy continuation of n tokens (temperature 0), end-of-generation tokens included. */
async function llamaGreedy(seq: any, ids: number[], n: number): Promise<number[]> {
  await seq.clearHistory();
  {
    const out: number[] = [];
    for await (const t of seq.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
      out.push(t);
      if (out.length >= n) break;
    }
    return out;
  }
}

for (const tied of [false, true]) {
  test(`llama.cpp runs our GGUF f32 (${tied ? 'tied' : 'untied'} embeddings): same tokens, probabilities within 1e-5, same greedy continuation`, async () => {
    const m = randomLlama(tok.vocabSize, tied, tied ? 11 : 12);
    const file = path.join(dir, `tiny-${tied}.gguf`);
    writeTinyLlamaGguf(file, m, tok, 'F32');

    // Our reader gives back the tokenizer and the tensors; the reference forward on the file's
    // permuted tensors with interleaved RoPE equals the one on ours with rotate-half RoPE.
    const g = readGguf(file);
    assert.deepEqual(tokenizerFromGguf(g).tokenizer.toSpec(), tok.toSpec());
    const fromFile: RefWeights = { get: (n) => g.readTensorF32(n) };
    const prompt = tok.encode('Once upon a time, there was a little');
    const refHalf = referenceLogits(m, hfOrderWeights(m), prompt, 'rotate-half');
    const refFile = referenceLogits(m, fromFile, prompt, 'interleaved');
    for (let i = 0; i < refHalf.length; i++) assert.ok(Math.abs(refHalf[i]! - refFile[i]!) < 1e-9);

    await withModel(file, async (model, seq) => {
      assert.equal(model.tokens.bos, tok.eotId);
      assert.equal(model.tokens.eos, tok.eotId);
      for (const s of AWKWARD) {
        assert.deepEqual([...model.tokenize(s, false)], tok.encode(s), `plain: ${JSON.stringify(s)}`);
        assert.deepEqual([...model.tokenize(s, true)], tok.encodeWithSpecial(s), `special: ${JSON.stringify(s)}`);
      }
      const prompts = ['Once upon a time, there was a little', 'The dog', 'Lily said, "I'].map((s) => tok.encode(s));
      let worst = 0;
      for (const ids of prompts) {
        const ref = softmax(referenceLogits(m, hfOrderWeights(m), ids, 'rotate-half'));
        const got = await llamaProbs(seq, ids, m.vocab);
        let sum = 0;
        for (let i = 0; i < m.vocab; i++) {
          worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
          sum += got[i]!;
        }
        assert.ok(Math.abs(sum - 1) < 1e-3, `llama.cpp's distribution sums to ${sum}`);
        // The distribution is not flat, so agreement means something.
        assert.ok(Math.max(...ref) > 5 / m.vocab);
      }
      // The issue asks for 1e-3; measured ~1e-7 (float32 arithmetic in llama.cpp vs float64 here).
      assert.ok(worst < 1e-5, `largest probability difference ${worst}`);

      const ids = prompts[0]!;
      const got = await llamaGreedy(seq, ids, 32);
      const ref: number[] = [];
      const ctx = [...ids];
      while (ref.length < 32) {
        const next = argmax(referenceLogits(m, hfOrderWeights(m), ctx, 'rotate-half'));
        ref.push(next);
        ctx.push(next);
        if (next === tok.eotId) break; // llama.cpp ends generation at an end-of-generation token
      }
      assert.deepEqual(got, ref);
    });
  });
}

test('llama.cpp runs our GGUF f16: probabilities within 5e-4 of the float64 reference', async () => {
  const m = randomLlama(tok.vocabSize, false, 13);
  const file = path.join(dir, 'tiny-f16.gguf');
  writeTinyLlamaGguf(file, m, tok, 'F16');
  const g = readGguf(file);
  assert.equal(g.tensor('blk.0.attn_q.weight').type, 'F16');
  assert.equal(g.tensor('blk.0.attn_norm.weight').type, 'F32');
  await withModel(file, async (_model, seq) => {
    const ids = tok.encode('Once upon a time, there was a little');
    const ref = softmax(referenceLogits(m, hfOrderWeights(m), ids, 'rotate-half'));
    const got = await llamaProbs(seq, ids, m.vocab);
    let worst = 0;
    for (let i = 0; i < m.vocab; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    // Measured ~3e-5; q/k rows left unpermuted give ~3e-3 here, so the bound still has teeth.
    assert.ok(worst < 5e-4, `largest probability difference ${worst}`);
  });
});
