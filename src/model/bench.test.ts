import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend } from '../kernels/index.js';
import { runModelBench } from './bench.js';
import { runDecodeBench } from './decode-bench.js';
import { flopsPerToken } from './flops.js';
import { GPT } from './gpt.js';
import { countParams } from './layout.js';
import { DEFAULT, randomIds, tinyConfig } from './testutil.js';

test('runModelBench reports consistent numbers and a per-kernel profile (tiny model, js backend)', async () => {
  const config = tinyConfig({ vocab_size: 64, d_model: 32, n_head: 2, seq_len: 16, ffn_hidden: 64 });
  const r = await runModelBench({ config, batchSize: 2, gradAccum: 2, backend: 'js', steps: 10, warmup: 1, profile: true, peakGflops: 10 });
  assert.equal(r.backend, 'js');
  assert.equal(r.params, countParams(config));
  assert.equal(r.tokens_per_step, 2 * 16 * 2);
  assert.equal(r.flops_per_token, flopsPerToken(config));
  assert.ok(r.step_ms > 0 && r.forward_ms > 0 && r.backward_ms > 0 && r.optimizer_ms >= 0);
  // medians of the parts need not add up exactly, but cannot exceed the step by much
  assert.ok(r.forward_ms + r.backward_ms <= r.step_ms * 1.5, JSON.stringify(r));
  assert.ok(Math.abs(r.tokens_per_second - r.tokens_per_step / (r.step_ms / 1000)) < 1e-6 * r.tokens_per_second);
  assert.ok(Math.abs(r.gflops - (r.flops_per_token * r.tokens_per_second) / 1e9) < 1e-9 * r.gflops);
  assert.equal(r.mfu, r.gflops / 10);
  assert.ok(r.peak_rss_mb > 10);
  const names = new Set(r.profile!.map((e) => e.name));
  for (const n of ['gemm.nn', 'gemm.tn', 'gemm.nt', 'attentionCausalForward', 'attentionCausalBackward', 'crossEntropyForwardBackward', 'adamwUpdate']) assert.ok(names.has(n), n);
  // per optimizer step: 2 micro-batches x 2 layers x (qkv, wo, gate_up, down) forward gemms + LM head = 2 x (8 + 0)
  assert.equal(r.profile!.find((e) => e.name === 'gemm.nn')!.calls, 2 * 2 * 4 + 2 /* dx of the LM head is nn */);
});

test('default preset (batch 8): one training step with AdamW state fits in 400 MB peak RSS', async (t) => {
  const be = await createBackend({ backend: 'auto' });
  try {
    const m = new GPT(DEFAULT, be.kernels, be.arena, 8);
    m.init(1);
    const mAdam = be.arena.floats(m.numParams);
    const vAdam = be.arena.floats(m.numParams);
    const n = 8 * DEFAULT.seq_len;
    const x = be.arena.ints(n);
    const y = be.arena.ints(n);
    x.set(randomIds(n, DEFAULT.vocab_size, 1));
    y.set(randomIds(n, DEFAULT.vocab_size, 2));
    m.zeroGrad();
    const loss = m.forward(x, y, 8);
    m.backward(0.25);
    be.kernels.adamwUpdate(m.params, m.grads, mAdam, vAdam, m.numParams, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05);
    assert.ok(Math.abs(loss - Math.log(DEFAULT.vocab_size)) < 0.1, `initial loss ${loss} should be ~ln(V)`);
    const rss = process.resourceUsage().maxRSS / 1024;
    t.diagnostic(`backend ${be.info.name}: arena ${(be.arena.bytesUsed() / 1e6).toFixed(1)} MB, peak RSS ${rss.toFixed(1)} MB`);
    assert.ok(rss <= 400, `peak RSS ${rss.toFixed(1)} MB > 400 MB`);
  } finally {
    await be.dispose();
  }
});

test('runModelBench times the optimizer it is given, once per step, on the model buffers', async () => {
  const config = tinyConfig({ vocab_size: 64, d_model: 32, n_head: 2, seq_len: 16, ffn_hidden: 64 });
  let built = 0;
  const lrs: number[] = [];
  const r = await runModelBench({
    config, batchSize: 2, gradAccum: 1, backend: 'js', steps: 10, warmup: 2, peakGflops: 10,
    optimizer: (_k, _arena, params, grads, tensors) => {
      built++;
      assert.equal(params.length, countParams(config));
      assert.equal(grads.length, params.length);
      assert.ok(tensors.some((t) => t.name === 'wte'));
      return { step: (lr: number) => void lrs.push(lr) };
    },
  });
  assert.equal(built, 1);
  assert.equal(lrs.length, 12, 'warm-up and timed steps');
  assert.ok(lrs.every((lr) => lr > 0));
  assert.ok(r.optimizer_ms >= 0);
});

test('runDecodeBench: tokens/s of 1 and 3 sequences at each context, consistent with the time per round (tiny model, js)', async () => {
  const config = tinyConfig({ vocab_size: 64, d_model: 32, n_head: 2, seq_len: 16, ffn_hidden: 64 });
  const r = await runDecodeBench({ config, backend: 'js', sequences: [1, 3], tokens: 4 });
  assert.equal(r.backend, 'js');
  assert.equal(r.params, countParams(config));
  // default contexts: 1, seq_len / 2 and seq_len - tokens
  assert.deepEqual(r.rows.map((x) => [x.sequences, x.context, x.mode]), [
    [1, 1, 'single'], [1, 8, 'single'], [1, 12, 'single'], [3, 1, 'batched'], [3, 8, 'batched'], [3, 12, 'batched'],
  ]);
  for (const row of r.rows) {
    assert.equal(row.tokens, 4);
    assert.ok(row.tokens_per_second > 0 && Number.isFinite(row.tokens_per_second));
    assert.ok(Math.abs(row.tokens_per_second - (row.sequences * 1000) / row.ms_per_round) < 1e-6 * row.tokens_per_second);
  }
  await assert.rejects(runDecodeBench({ config, backend: 'js', contexts: [14], tokens: 4 }), /context 14 plus 4 timed tokens must fit model.seq_len 16/);
});
