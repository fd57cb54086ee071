import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { loadConfig } from '../train/config.js';
import { train, type TrainEvent } from '../train/trainer.js';
import { openRun } from '../train/inference.js';
import { readLog } from '../train/log.js';
import { readManifest } from '../train/checkpoint.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { exportHf, importHf } from './hf.js';
import { llamaTensorShapes, toLlamaTensors } from './llama-weights.js';
import { readSafetensors } from './safetensors.js';
import { readRunWeights } from './run-weights.js';
import { trainTiedAndUntied } from './testing.js';

// Export a small trained run as a Hugging Face folder and import it back (wasm, one thread).

const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
let work = '';
let savedCache: string | undefined;
const runs: Record<'untied' | 'tied', string> = { untied: '', tied: '' };

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-hf-'));
  savedCache = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(work, 'cache');
  Object.assign(runs, await trainTiedAndUntied(work, { seqLen: 32, steps: 30 }));
});

after(() => {
  if (savedCache === undefined) delete process.env.POCKETLM_CACHE;
  else process.env.POCKETLM_CACHE = savedCache;
  fs.rmSync(work, { recursive: true, force: true });
});

/** Logits of both runs' models on the same batch of ids (wasm, one thread: deterministic). */
async function logitsOf(runDir: string, ids: Int32Array, B: number): Promise<Float32Array> {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1, batchSize: B, checkpoint: 'best' });
  try {
    run.inputs.set(ids);
    run.model.forward(run.inputs, null, B);
    return Float32Array.from(run.model.logits());
  } finally {
    await run.close();
  }
}

async function batchIds(runDir: string, B: number): Promise<Int32Array> {
  const tok = await loadTokenizer(path.join(runDir, 'tokenizer.json'));
  const text = fs.readFileSync(DATA, 'utf8').slice(0, 20000);
  const ids = tok.encode(text);
  const T = 32;
  return Int32Array.from(ids.slice(0, B * T));
}

const LLAMA_KEYS = [
  'architectures', 'model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'vocab_size', 'tie_word_embeddings', 'hidden_act',
  'attention_bias', 'attention_dropout', 'mlp_bias', 'pretraining_tp', 'initializer_range', 'torch_dtype', 'bos_token_id', 'eos_token_id', 'use_cache',
].sort();

for (const kind of ['untied', 'tied'] as const) {
  test(`${kind}: export f32 -> import gives bit-identical logits; names, shapes and config keys are Llama's`, async () => {
    const out = path.join(work, `${kind}-hf`);
    const r = await exportHf(runs[kind], { out });
    assert.equal(r.out, out);
    assert.deepEqual(fs.readdirSync(out).sort(), ['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp folder left');
    assert.equal(r.bytes, fs.readdirSync(out).reduce((a, f) => a + fs.statSync(path.join(out, f)).size, 0));

    const w = await readRunWeights(runs[kind]);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(cfg).sort(), LLAMA_KEYS);
    assert.equal(cfg.tie_word_embeddings, kind === 'tied');
    assert.equal(cfg.hidden_size, 32);
    assert.equal(cfg.num_hidden_layers, 2);
    assert.equal(cfg.intermediate_size, 64);
    assert.equal(cfg.max_position_embeddings, 32);
    assert.equal(cfg.vocab_size, 512);
    assert.equal(cfg.eos_token_id, w.tokenizer.eotId);
    assert.equal(cfg.torch_dtype, 'float32');

    const st = readSafetensors(path.join(out, 'model.safetensors'));
    assert.deepEqual(st.metadata, { format: 'pt' });
    assert.deepEqual([...st.tensors].map(([name, t]) => ({ name, shape: t.shape })), llamaTensorShapes(w.model));
    assert.equal(r.tensors, st.tensors.size);
    assert.equal(st.tensors.has('lm_head.weight'), kind === 'untied');
    assert.ok([...st.tensors.values()].every((t) => t.dtype === 'F32'));

    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /Tokens seen \| 3,840 \|/); // 30 steps x 4 x 32
    assert.match(card, new RegExp(`Validation loss \\| ${w.manifest.val_loss!.toFixed(4)} nats/token`));
    assert.match(card, /Validation bits per byte \| \d\.\d{4} \|/);
    assert.match(card, /valid-00\.txt/);

    const imported = path.join(work, `${kind}-imported`);
    const ir = await importHf(out, imported);
    assert.equal(ir.params, w.params.length);
    assert.ok(ir.notes.some((n) => /fresh optimizer/.test(n)));
    const ids = await batchIds(runs[kind], 3);
    const a = await logitsOf(runs[kind], ids, 3);
    const b = await logitsOf(imported, ids, 3);
    assert.equal(a.length, 3 * 32 * 512);
    assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(a.buffer), 'bit-identical logits');
  });
}

test('f16 and bf16 exports import back within a stated bound of the f32 logits', async () => {
  const ids = await batchIds(runs.untied, 2);
  const ref = await logitsOf(runs.untied, ids, 2);
  // Bounds: f16 keeps 11 significant bits (relative error 2^-12 per weight), bf16 8 bits (2^-9).
  // On this model the measured max |logit difference| is 2.1e-4 (f16) and 1.5e-3 (bf16): the
  // bounds leave a factor of 10.
  for (const [dtype, bound] of [['f16', 2e-3], ['bf16', 1.5e-2]] as const) {
    const out = path.join(work, `untied-${dtype}`);
    await exportHf(runs.untied, { out, dtype });
    const st = readSafetensors(path.join(out, 'model.safetensors'));
    assert.ok([...st.tensors.values()].every((t) => t.dtype === (dtype === 'f16' ? 'F16' : 'BF16')));
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { torch_dtype: string };
    assert.equal(cfg.torch_dtype, dtype === 'f16' ? 'float16' : 'bfloat16');
    const imported = path.join(work, `untied-${dtype}-imported`);
    const ir = await importHf(out, imported);
    assert.ok(ir.notes.some((n) => /widened to float32/.test(n)));
    const got = await logitsOf(imported, ids, 2);
    let maxErr = 0;
    for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i]! - ref[i]!));
    assert.ok(maxErr > 0, `${dtype} changed nothing: not rounded?`);
    assert.ok(maxErr < bound, `${dtype}: max |logit difference| ${maxErr} >= ${bound}`);
  }
});

test('the exported tokenizer.json gives the same ids in Hugging Face tokenizers.js for awkward strings', async () => {
  const out = path.join(work, 'untied-hf');
  const tok = await loadTokenizer(path.join(runs.untied, 'tokenizer.json'));
  const hf = new HfTokenizer(JSON.parse(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')), JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')));
  const strings = [
    "I'm sure you'll say it's what they've done, isn't it? We'd. YOU'RE",
    'Call 555-0123 at 10:45, or 3.14159; 1234567890 and ٣٤٥',
    'line one\r\nline two\r\n\r\nend\n',
    'emoji 👋🏽 family 👨‍👩‍👧 flag 🇫🇷 and é vs é',
    'runs   of    spaces\t\ttabs  \n   trailing   ',
    '<|endoftext|>Once upon a time<|endoftext|><|endoftext|> the end',
    '',
  ];
  for (const s of strings) {
    assert.deepEqual(hf.encode(s, { add_special_tokens: false }).ids, tok.encodeWithSpecial(s), JSON.stringify(s));
    assert.deepEqual(hf.encode(s).ids, tok.encodeWithSpecial(s), `${JSON.stringify(s)} with special tokens added: none are`);
  }
  assert.deepEqual(tok.encodeWithSpecial('<|endoftext|>'), [tok.eotId]);
});

test('numpy reads model.safetensors in f32 and f16 with the Hugging Face names and shapes', async (t) => {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('python3 with numpy not available');
  const w = await readRunWeights(runs.untied);
  const q = toLlamaTensors(w.model, w.params).find((x) => x.name === 'model.layers.1.self_attn.q_proj.weight')!;
  const py = `
import json, struct, numpy as np, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8+n])
e = h['model.layers.1.self_attn.q_proj.weight']
s, f = e['data_offsets']
dt = {'F32': '<f4', 'F16': '<f2'}[e['dtype']]
a = np.frombuffer(b[8+n+s:8+n+f], dtype=dt).reshape(e['shape']).astype(np.float64)
print(json.dumps({'meta': h['__metadata__'], 'dtype': e['dtype'], 'shape': list(a.shape), 'row3': a[3].tolist(), 'names': len([k for k in h if k != '__metadata__'])}))`;
  for (const [folder, dtype] of [['untied-hf', 'F32'], ['untied-f16', 'F16']] as const) {
    const r = spawnSync('python3', ['-c', py, path.join(work, folder, 'model.safetensors')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { meta: unknown; dtype: string; shape: number[]; row3: number[]; names: number };
    assert.deepEqual(got.meta, { format: 'pt' });
    assert.equal(got.dtype, dtype);
    assert.deepEqual(got.shape, [32, 32]);
    assert.equal(got.names, llamaTensorShapes(w.model).length);
    const want = Array.from(q.data.subarray(3 * 32, 4 * 32));
    if (dtype === 'F32') assert.deepEqual(got.row3, want);
    else got.row3.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= Math.abs(want[i]!) * 2 ** -11 + 2 ** -24, `${x} vs ${want[i]}`));
  }
});

test('train --resume on an imported run fine-tunes from its weights with fresh optimizer state', async () => {
  const imported = path.join(work, 'untied-imported');
  const m = readManifest(imported)!;
  assert.equal(m.step, 0);
  assert.equal(m.imported?.format, 'hf');
  const cfg = loadConfig({ file: path.join(imported, 'config.toml'), set: [`data.paths=[${JSON.stringify(DATA)}]`, 'train.steps=3', 'train.eval_every=0', 'train.backend="wasm"', 'train.threads=1', 'train.time_seconds=0', 'train.sample_tokens=0', 'train.batch_size=4', 'train.grad_accum=1', 'train.log_every=1'] });
  const events: TrainEvent[] = [];
  const r = await train({ config: cfg, runDir: imported, resume: true }, (e) => events.push(e), () => false);
  const start = events.find((e) => e.type === 'start') as Extract<TrainEvent, { type: 'start' }>;
  assert.equal(start.importedFrom, path.join(work, 'untied-hf'));
  assert.equal(r.step, 3);
  // The first step's loss is the trained model's (about its validation loss), far below a fresh
  // model's ln(512) = 6.24: the weights were used, not re-initialized.
  const first = readLog(path.join(imported, 'log.jsonl'))[0]!;
  assert.equal(first.step, 1);
  const orig = readManifest(path.join(runs.untied, 'best'))!;
  assert.ok(first.loss < orig.val_loss! + 0.5, `first loss ${first.loss} vs the original's val loss ${orig.val_loss}`);
  assert.ok(readManifest(imported)!.files['optim.safetensors'], 'its own checkpoint now has optimizer state');
});

function refusedAsync(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('export and import refuse bad input in one line and write nothing', async () => {
  const good = path.join(work, 'untied-hf');
  await refusedAsync(exportHf(path.join(work, 'nope'), { out: path.join(work, 'x1') }), /run folder .*nope does not exist/);
  await refusedAsync(exportHf(runs.untied, { out: good }), /--out .*untied-hf already exists and is not empty/);
  await refusedAsync(importHf(good, runs.tied), /--out .*tied already exists and is not empty/);
  await refusedAsync(importHf(path.join(work, 'nope'), path.join(work, 'x2')), /nope is not a folder/);

  const bad = (name: string, edit: (dir: string) => void): string => {
    const dir = path.join(work, `bad-${name}`);
    fs.cpSync(good, dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const editJson = (dir: string, file: string, f: (j: Record<string, unknown>) => void) => {
    const j = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
    f(j);
    fs.writeFileSync(path.join(dir, file), JSON.stringify(j));
  };
  const st = path.join(good, 'model.safetensors');
  const bytes = fs.readFileSync(st);
  const cases: Array<[string, (dir: string) => void, RegExp]> = [
    ['truncated', (d) => fs.writeFileSync(path.join(d, 'model.safetensors'), bytes.subarray(0, bytes.length - 100)), /model\.safetensors is not a valid safetensors file: .*truncated/],
    ['header-length', (d) => { const b = Buffer.from(bytes); b.writeBigUInt64LE(1n << 50n, 0); fs.writeFileSync(path.join(d, 'model.safetensors'), b); }, /header length \d+ is implausible/],
    ['header-lies', (d) => {
      const n = Number(bytes.readBigUInt64LE(0));
      const header = bytes.subarray(8, 8 + n).toString('utf8').replace('"shape":[512,32]', '"shape":[512,33]');
      fs.writeFileSync(path.join(d, 'model.safetensors'), Buffer.concat([bytes.subarray(0, 8), Buffer.from(header), bytes.subarray(8 + n)]));
    }, /spans \d+ bytes but F32\[512, 33\] needs/],
    ['no-weights', (d) => fs.rmSync(path.join(d, 'model.safetensors')), /has no model\.safetensors/],
    ['gqa', (d) => editJson(d, 'config.json', (j) => { j.num_key_value_heads = 1; }), /config\.json: num_key_value_heads = 1: grouped-query attention/],
    ['bias', (d) => editJson(d, 'config.json', (j) => { j.attention_bias = true; }), /attention_bias = true: biases are not supported/],
    ['arch', (d) => editJson(d, 'config.json', (j) => { j.model_type = 'gpt2'; }), /model_type = "gpt2"/],
    ['unigram', (d) => editJson(d, 'tokenizer.json', (j) => { (j.model as Record<string, unknown>).type = 'Unigram'; }), /tokenizer\.json: model type "Unigram" is not supported/],
    ['metaspace', (d) => editJson(d, 'tokenizer.json', (j) => { j.pre_tokenizer = { type: 'Metaspace' }; }), /pre_tokenizer type "Metaspace" is not supported/],
    ['no-tokenizer', (d) => fs.rmSync(path.join(d, 'tokenizer.json')), /has no tokenizer\.json/],
    ['tied-but-head', (d) => editJson(d, 'config.json', (j) => { j.tie_word_embeddings = true; }), /tensor "lm_head\.weight" is not part of this Llama model \(tie_word_embeddings is true\)/],
    ['wider', (d) => editJson(d, 'config.json', (j) => { j.intermediate_size = 96; }), /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[64, 32\], expected \[96, 32\]/],
  ];
  for (const [name, edit, pattern] of cases) {
    const dir = bad(name, edit);
    const out = path.join(work, `out-${name}`);
    await refusedAsync(importHf(dir, out), pattern);
    assert.ok(!fs.existsSync(out), `${name}: nothing written`);
  }
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp folder left');
});
