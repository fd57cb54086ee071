import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import { isUserError } from '../util/errors.js';
import { GPT } from './gpt.js';
import { activationFloats, keepsRecomputable, layerActivationFloats } from './activations.js';
import { defaultFfnHidden, validateModelConfig, type ModelConfig } from './config.js';
import { attentionFlopsPerToken, flopsPerToken } from './flops.js';
import { countParams, planLayout } from './layout.js';
import { DEFAULT, SEED_SMALL, randomIds, randomizeParams, tinyConfig } from './testutil.js';


test('parameter counts match the Python original exactly (seed-small 1,311,872; default 3,934,656)', () => {
  assert.equal(countParams(SEED_SMALL), 1_311_872);
  assert.equal(countParams(DEFAULT), 3_934_656);
  // tying removes exactly the [V, C] head
  assert.equal(countParams({ ...DEFAULT, tie_embeddings: true }), 3_934_656 - 1024 * 192);
});

test('layout: contiguous, named, shaped, decay only on matrices other than embeddings', () => {
  for (const cfg of [SEED_SMALL, { ...SEED_SMALL, tie_embeddings: true }]) {
    const { tensors, numParams } = planLayout(cfg);
    let off = 0;
    for (const t of tensors) {
      assert.equal(t.offset, off, t.name);
      assert.equal(t.size, t.shape.reduce((a, b) => a * b, 1), t.name);
      off += t.size;
      assert.equal(t.decay, t.shape.length === 2 && t.name !== 'wte', t.name);
    }
    assert.equal(off, numParams);
    const names = tensors.map((t) => t.name);
    assert.equal(names[0], 'wte');
    assert.deepEqual(names.slice(1, 7), ['blocks.0.attn_norm', 'blocks.0.wqkv', 'blocks.0.wo', 'blocks.0.mlp_norm', 'blocks.0.w_gate_up', 'blocks.0.w_down']);
    assert.equal(names.includes('lm_head'), !cfg.tie_embeddings);
    assert.deepEqual(tensors.find((t) => t.name === 'blocks.3.w_gate_up')!.shape, [128, 1024]);
  }
});

test('defaultFfnHidden: 8/3 d rounded to a multiple of 32', () => {
  assert.equal(defaultFfnHidden(192), 512);
  assert.equal(defaultFfnHidden(128), 352); // 341.3 -> 352
  assert.equal(defaultFfnHidden(768), 2048);
  for (const d of [8, 64, 100, 256, 300]) {
    const f = defaultFfnHidden(d);
    assert.equal(f % 32, 0);
    assert.ok(Math.abs(f - (8 * d) / 3) <= 16 || f === 32, `d=${d} f=${f}`);
  }
});

test('config validation names the bad field in a one-line UserError', () => {
  const bad: [Partial<ModelConfig>, RegExp][] = [
    [{ d_model: 130 }, /d_model \(130\) must be a multiple of model.n_head/],
    [{ n_layer: 0 }, /model.n_layer must be a positive integer/],
    [{ d_model: 12, n_head: 4 }, /even for RoPE/],
    [{ norm_eps: -1 }, /model.norm_eps must be a positive number/],
    [{ vocab_size: 1.5 }, /model.vocab_size/],
  ];
  for (const [over, re] of bad) {
    assert.throws(() => validateModelConfig({ ...SEED_SMALL, ...over }), (e: unknown) => isUserError(e) && re.test((e as Error).message) && !(e as Error).message.includes('\n'));
  }
  validateModelConfig(DEFAULT);
});

test('activation plan of the default preset: 38,244,352 floats (153.0 MB) as documented, no T x T matrix left', () => {
  assert.equal(layerActivationFloats(DEFAULT, 8), 5_521_408);
  assert.equal(activationFloats(DEFAULT, 8), 38_244_352);
  // the fused attention keeps B*H*T log-sum-exps per layer where the probabilities took B*H*T^2,
  // the gate|up gradient goes over h instead of an [N, 2F] scratch (which the attention's
  // [B, H, T, T] gradient used to share), and the logits [N, V] share the s | dqkv scratch:
  // 62,287,872 floats (249.2 MB) before, 24,043,520 floats (96.2 MB) less now
  const { n_layer: L, n_head: H, seq_len: T, ffn_hidden: F, vocab_size: V } = DEFAULT;
  assert.equal(62_287_872 - activationFloats(DEFAULT, 8), L * 8 * H * (T * T - T) + 2 * 8 * T * F + 8 * T * V);
  // no term is quadratic in seq_len: doubling T and halving B (the same tokens) plans the same floats
  assert.equal(activationFloats({ ...DEFAULT, seq_len: 2 * T }, 4), activationFloats(DEFAULT, 8));
});

test('flops per token = 6 params + 6 L T C (causal half of the attention products)', () => {
  assert.equal(attentionFlopsPerToken(DEFAULT), 6 * 6 * 256 * 192);
  assert.equal(flopsPerToken(SEED_SMALL), 6 * 1_311_872 + 6 * 4 * 128 * 128);
});

test('the GPT allocates exactly params + grads + the planned activations (+ RoPE tables and id buffers)', () => {
  const arena = new HeapArena('f32');
  const m = new GPT(SEED_SMALL, createJsKernels(), arena, 4);
  const T = SEED_SMALL.seq_len;
  const D = SEED_SMALL.d_model / SEED_SMALL.n_head;
  const floats = 2 * m.numParams + activationFloats(SEED_SMALL, 4) + T * D;
  assert.equal(arena.bytesUsed(), 4 * floats + 4 * 2 * 4 * T);
});

test('normed inputs and SwiGLU outputs: kept within the budget (seed-small), recomputed beyond it (default)', () => {
  assert.equal(keepsRecomputable(SEED_SMALL, 4), true);
  assert.equal(keepsRecomputable(DEFAULT, 8), false);
  assert.equal(keepsRecomputable(SEED_SMALL, 4, 0), false);
  // kept: + (2NC + NF) per layer and no shared ln scratch (N = 512, C = 128, F = 512)
  const N = 512, C = 128, F = 512;
  assert.equal(layerActivationFloats(SEED_SMALL, 4) - layerActivationFloats(SEED_SMALL, 4, 0), 2 * N * C + N * F);
  assert.equal(activationFloats(SEED_SMALL, 4) - activationFloats(SEED_SMALL, 4, 0), 4 * (2 * N * C + N * F) - N * C);
});

test('keeping or recomputing the normed inputs and SwiGLU outputs gives bit-identical loss and gradients', () => {
  const cfg = tinyConfig();
  const B = 2;
  const N = B * cfg.seq_len;
  const run = (keepBudgetBytes: number): { loss: number; grads: Float64Array } => {
    const m = new GPT(cfg, createJsKernels(), new HeapArena('f64'), B, { keepBudgetBytes });
    randomizeParams(m, 5);
    m.zeroGrad();
    const loss = m.forward(randomIds(N, cfg.vocab_size, 1), randomIds(N, cfg.vocab_size, 2), B);
    m.backward(0.5);
    return { loss, grads: Float64Array.from(m.grads) };
  };
  const kept = run(1 << 30);
  const recomputed = run(0);
  assert.ok(Number.isFinite(kept.loss));
  assert.equal(kept.loss, recomputed.loss);
  assert.deepEqual(kept.grads, recomputed.grads);
  assert.ok(kept.grads.some((g) => g !== 0));
});
