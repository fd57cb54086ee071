import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import { createBackend } from '../kernels/index.js';
import { GPT } from './gpt.js';
import { Generator, sampleToken } from './generate.js';
import { mulberry32 } from './rng.js';
import { randomIds, randomizeParams, tinyConfig } from './testutil.js';

function maxDiff(a: ArrayLike<number>, aOff: number, b: ArrayLike<number>, n: number): number {
  let d = 0;
  for (let i = 0; i < n; i++) d = Math.max(d, Math.abs(a[aOff + i]! - b[i]!));
  return d;
}

test('KV-cache logits equal the full forward logits at every position (float64: <= 1e-10; tied and untied)', () => {
  for (const tie of [false, true]) {
    const cfg = tinyConfig({ seq_len: 9, vocab_size: 13, d_model: 12, n_head: 3, tie_embeddings: tie });
    const k = createJsKernels();
    const arena = new HeapArena('f64');
    const m = new GPT(cfg, k, arena, 1);
    randomizeParams(m, 21);
    const x = randomIds(cfg.seq_len, cfg.vocab_size, 5);
    m.forward(x, null, 1);
    const full = Float64Array.from(m.logits());
    const gen = new Generator(m, k, arena);
    for (let t = 0; t < cfg.seq_len; t++) {
      const lg = gen.step(x[t]!);
      const d = maxDiff(full, t * cfg.vocab_size, lg, cfg.vocab_size);
      assert.ok(d <= 1e-10, `tie=${tie} position ${t}: max |diff| ${d}`);
    }
    // reset starts over at position 0
    gen.reset();
    assert.ok(maxDiff(full, 0, gen.step(x[0]!), cfg.vocab_size) <= 1e-10);
  }
});

test('past the capacity the window slides: logits equal a fresh forward over the last capacity/2 tokens', () => {
  const cfg = tinyConfig({ seq_len: 8, vocab_size: 10 });
  const k = createJsKernels();
  const arena = new HeapArena('f64');
  const m = new GPT(cfg, k, arena, 1);
  randomizeParams(m, 22);
  const seq = randomIds(13, cfg.vocab_size, 6);
  const gen = new Generator(m, k, arena, 6); // capacity 6 < seq_len
  assert.equal(gen.capacity, 6);
  let last = new Float64Array(0);
  for (let i = 0; i < 7; i++) last = Float64Array.from(gen.step(seq[i]!));
  // after 6 tokens the cache was full: tokens 3,4,5 were re-encoded at 0..2, token 6 at 3
  assert.equal(gen.position, 4);
  const window = new Int32Array(cfg.seq_len); // later positions are padding: causality makes them irrelevant
  window.set([seq[3]!, seq[4]!, seq[5]!, seq[6]!]);
  m.forward(window, null, 1);
  assert.ok(maxDiff(m.logits(), 3 * cfg.vocab_size, last, cfg.vocab_size) <= 1e-10);
});

test('float32 KV-cache decoding matches the float32 full forward (<= 1e-4 relative to max |logit|)', () => {
  const cfg = tinyConfig({ seq_len: 16, vocab_size: 20, d_model: 16, n_head: 2, ffn_hidden: 32, init_std: 0.2 });
  const k = createJsKernels();
  const arena = new HeapArena('f32');
  const m = new GPT(cfg, k, arena, 1);
  m.init(3);
  const x = randomIds(cfg.seq_len, cfg.vocab_size, 7);
  m.forward(x, null, 1);
  const full = Float64Array.from(m.logits());
  const scale = Math.max(...full.map(Math.abs));
  const gen = new Generator(m, k, arena);
  for (let t = 0; t < cfg.seq_len; t++) {
    const d = maxDiff(full, t * cfg.vocab_size, gen.step(x[t]!), cfg.vocab_size);
    assert.ok(d <= 1e-4 * scale, `position ${t}: ${d} vs scale ${scale}`);
  }
});

test('sampleToken: greedy, top-k, top-p and the sampled frequencies follow softmax(logits / T)', () => {
  const logits = Float64Array.from([0.5, 2.0, -1.0, 1.5, 0.0]);
  const rng = mulberry32(9);
  assert.equal(sampleToken(logits, { temperature: 0 }, rng), 1);
  for (let i = 0; i < 50; i++) assert.equal(sampleToken(logits, { temperature: 5, topK: 1 }, rng), 1);
  for (let i = 0; i < 200; i++) assert.ok([1, 3].includes(sampleToken(logits, { temperature: 1, topK: 2 }, rng)));
  // p(1) = 0.49 at T = 1 over all five: top_p 0.4 keeps token 1 alone; 0.6 adds token 3
  for (let i = 0; i < 50; i++) assert.equal(sampleToken(logits, { temperature: 1, topP: 0.4 }, rng), 1);
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.6 }, rng));
  assert.deepEqual([...seen].sort(), [1, 3]);
  const temp = 2;
  const z = Array.from(logits, (v) => Math.exp(v / temp));
  const tot = z.reduce((a, b) => a + b, 0);
  const counts = new Array<number>(5).fill(0);
  const n = 40000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: temp }, rng)]!++;
  for (let i = 0; i < 5; i++) {
    const p = z[i]! / tot;
    const sd = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(counts[i]! / n - p) < 5 * sd, `token ${i}: ${counts[i]! / n} vs ${p}`);
  }
  // same seed, same draws
  const a = mulberry32(4), b = mulberry32(4);
  for (let i = 0; i < 20; i++) assert.equal(sampleToken(logits, { temperature: 1 }, a), sampleToken(logits, { temperature: 1 }, b));
});

test('KV-cache decoding on the wasm backend matches its own full forward (float32, <= 1e-4 of max |logit|)', async (t) => {
  let be;
  try {
    be = await createBackend({ backend: 'wasm', threads: 2 });
  } catch (e) {
    t.skip(`wasm unavailable: ${(e as Error).message}`);
    return;
  }
  try {
    const cfg = tinyConfig({ seq_len: 24, vocab_size: 40, d_model: 32, n_head: 4, ffn_hidden: 64, init_std: 0.2 });
    const m = new GPT(cfg, be.kernels, be.arena, 1);
    m.init(8);
    const x = be.arena.ints(cfg.seq_len);
    x.set(randomIds(cfg.seq_len, cfg.vocab_size, 9));
    m.forward(x, null, 1);
    const full = Float64Array.from(m.logits());
    const scale = Math.max(...full.map(Math.abs));
    const gen = new Generator(m, be.kernels, be.arena);
    for (let i = 0; i < cfg.seq_len; i++) {
      const d = maxDiff(full, i * cfg.vocab_size, gen.step(x[i]!), cfg.vocab_size);
      assert.ok(d <= 1e-4 * scale, `position ${i}: ${d} vs scale ${scale}`);
    }
  } finally {
    await be.dispose();
  }
});
