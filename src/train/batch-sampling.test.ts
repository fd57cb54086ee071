import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import { createBackend } from '../kernels/index.js';
import type { Arena } from '../kernels/arena.js';
import type { Kernels } from '../kernels/types.js';
import { GPT } from '../model/gpt.js';
import { BatchDecoder, Generator, sampleToken } from '../model/generate.js';
import { randomIds, tinyConfig } from '../model/testutil.js';
import { sampleBatch, sampleTokens } from './evaluate.js';
import { SeededRng } from './rng.js';

const cfg = tinyConfig({ seq_len: 32, vocab_size: 40, d_model: 32, n_head: 4, ffn_hidden: 64, init_std: 0.3 });
const settings = { temperature: 1, topK: 0, topP: 1 };
const STOP = 5;

/** 7 prompts of lengths 1..13, 3 rows at a time: chunks, rows of unequal lengths, early stops. */
function check(k: Kernels, arena: Arena): void {
  const m = new GPT(cfg, k, arena, 1);
  m.init(3);
  const prompts = Array.from({ length: 7 }, (_, i) => Array.from(randomIds(1 + 2 * i, cfg.vocab_size, 40 + i)).map((t) => (t === STOP ? 6 : t)));
  const seeds = prompts.map((_, i) => 1000 + i);
  const maxNew = 18;
  const single = new Generator(m, k, arena, cfg.seq_len);
  const want = prompts.map((p, i) => [...sampleTokens(single, sampleToken, p, maxNew, settings, new SeededRng(seeds[i]!).fn(), STOP)]);
  const batched = new BatchDecoder(m, k, arena, 3, cfg.seq_len);
  const got = sampleBatch(batched, sampleToken, prompts, maxNew, settings, seeds.map((s) => new SeededRng(s).fn()), STOP, cfg.vocab_size);
  assert.deepEqual(got, want);
  // the check is not vacuous: some rows stopped early, some ran to maxNew, and they differ
  assert.ok(want.some((w) => w.length < maxNew) && want.some((w) => w.length === maxNew), JSON.stringify(want.map((w) => w.length)));
  assert.ok(new Set(want.map((w) => w.join())).size > 3);
}

test('batched sampling gives exactly the tokens of one-at-a-time sampling for the same seeds (js, float32 and float64)', () => {
  check(createJsKernels(), new HeapArena('f32'));
  check(createJsKernels(), new HeapArena('f64'));
});

test('batched sampling gives exactly the one-at-a-time tokens on the wasm and native backends', async () => {
  for (const backend of ['wasm', 'native'] as const) {
    let be;
    try {
      be = await createBackend({ backend, threads: 2 });
    } catch {
      assert.equal(backend, 'native', 'wasm always loads');
      continue;
    }
    try {
      check(be.kernels, be.arena);
    } finally {
      await be.dispose();
    }
  }
});

test('batched decoder logits equal the full forward at every position of every row (float64)', () => {
  const k = createJsKernels();
  const arena = new HeapArena('f64');
  const small = tinyConfig({ seq_len: 9, vocab_size: 13, d_model: 12, n_head: 3, init_std: 0.4 });
  const m = new GPT(small, k, arena, 2);
  m.init(5);
  const x = randomIds(2 * small.seq_len, small.vocab_size, 9);
  m.forward(x, null, 2);
  const full = Float64Array.from(m.logits());
  const dec = new BatchDecoder(m, k, arena, 2, small.seq_len);
  const V = small.vocab_size;
  for (let t = 0; t < small.seq_len; t++) {
    const lg = dec.step([x[t]!, x[small.seq_len + t]!]);
    for (let r = 0; r < 2; r++) {
      for (let v = 0; v < V; v++) {
        const d = Math.abs(lg[r * V + v]! - full[(r * small.seq_len + t) * V + v]!);
        assert.ok(d <= 1e-10, `row ${r} position ${t}: ${d}`);
      }
    }
  }
  assert.throws(() => dec.step([1, 1]), /full/);
});
