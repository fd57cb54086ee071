import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import type { Kernels } from '../kernels/types.js';
import { isUserError } from '../util/errors.js';
import { GPT } from './gpt.js';
import { finiteDifferenceReport, randomIds, randomizeParams, tinyConfig, type TensorGradReport } from './testutil.js';
import type { ModelConfig } from './config.js';

/**
 * Thresholds: in float64 with h = 1e-5 the central-difference error is ~1e-9 relative, so
 * analytic and numeric gradients agree to < 1e-6 (normalised per tensor). A wrong factor of 2
 * gives 0.5, a missing term typically > 1e-2: the bound 1e-5 catches both with a wide margin.
 */
const GRAD_TOL = 1e-5;

function f64Model(cfg: ModelConfig, B: number, kernels: Kernels = createJsKernels()): GPT {
  return new GPT(cfg, kernels, new HeapArena('f64'), B);
}

function gradCheck(model: GPT, B: number, seed: number, scale = 1): TensorGradReport[] {
  const T = model.config.seq_len;
  const inputs = randomIds(model.batchSize * T, model.config.vocab_size, seed);
  const targets = randomIds(model.batchSize * T, model.config.vocab_size, seed + 1);
  model.zeroGrad();
  model.forward(inputs, targets, B);
  model.backward(scale);
  return finiteDifferenceReport(model, () => scale * model.forward(inputs, targets, B));
}

function assertGradsOk(reports: TensorGradReport[], expectTensors: number): void {
  assert.equal(reports.length, expectTensors);
  for (const r of reports) {
    assert.ok(r.maxNumeric > 1e-6, `${r.name}: numeric gradient is ~0 (${r.maxNumeric}); the check would be vacuous`);
    assert.ok(r.relErr < GRAD_TOL, `${r.name}: relative gradient error ${r.relErr.toExponential(3)} >= ${GRAD_TOL} (${r.checked} elements)`);
  }
}

test('whole model, untied: every element of every parameter tensor matches finite differences (float64)', () => {
  const cfg = tinyConfig();
  const m = f64Model(cfg, 2);
  randomizeParams(m, 11);
  const reports = gradCheck(m, 2, 100);
  assertGradsOk(reports, 1 + 6 * cfg.n_layer + 2);
  assert.ok(reports.some((r) => r.name === 'lm_head'));
});

test('whole model, tied: every element matches finite differences, wte gets both embedding and head terms', () => {
  const cfg = tinyConfig({ tie_embeddings: true });
  const m = f64Model(cfg, 2);
  randomizeParams(m, 12);
  const reports = gradCheck(m, 2, 200);
  assertGradsOk(reports, 1 + 6 * cfg.n_layer + 1);
  assert.ok(!reports.some((r) => r.name === 'lm_head'));
});

test('gradient check with B < batchSize, loss scale 0.25, 3 layers, 4 heads', () => {
  const cfg = tinyConfig({ n_layer: 3, n_head: 4, d_model: 16, seq_len: 4, ffn_hidden: 8, vocab_size: 7 });
  const m = f64Model(cfg, 3);
  randomizeParams(m, 13);
  assertGradsOk(gradCheck(m, 2, 300, 0.25), 1 + 6 * 3 + 2);
});

test('a missing 1/rms factor in the RMSNorm backward is caught by the gradient check', () => {
  const js = createJsKernels();
  // the Python original's bug: dinp without the leading rstd factor
  const buggy: Kernels = {
    ...js,
    rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C) {
      // dinp = w*dout - x*rstd^2*mean(w dout x): the correct result divided by rstd
      const tmp = new Float64Array(N * C);
      js.rmsnormBackward(tmp, dweight, dout, inp, weight, rstd, N, C);
      for (let i = 0; i < N; i++) for (let j = 0; j < C; j++) dinp[i * C + j]! += tmp[i * C + j]! / rstd[i]!;
    },
  };
  const cfg = tinyConfig();
  const m = f64Model(cfg, 2, buggy);
  randomizeParams(m, 14);
  const reports = gradCheck(m, 2, 400);
  const bad = reports.filter((r) => r.relErr >= GRAD_TOL).map((r) => r.name);
  assert.ok(bad.includes('wte'), `expected the wte gradient to be flagged, flagged: ${bad.join(', ')}`);
  assert.ok(bad.includes('blocks.0.wqkv'), `expected blocks.0.wqkv to be flagged, flagged: ${bad.join(', ')}`);
});

test('grads accumulate across backward calls and zeroGrad resets every term (tied wte included)', () => {
  const cfg = tinyConfig({ tie_embeddings: true });
  const m = f64Model(cfg, 2);
  randomizeParams(m, 15);
  const T = cfg.seq_len;
  const xa = randomIds(2 * T, cfg.vocab_size, 1);
  const ya = randomIds(2 * T, cfg.vocab_size, 2);
  const xb = randomIds(2 * T, cfg.vocab_size, 3);
  const yb = randomIds(2 * T, cfg.vocab_size, 4);
  const step = (x: Int32Array, y: Int32Array, s = 1): Float64Array => {
    m.zeroGrad();
    m.forward(x, y);
    m.backward(s);
    return Float64Array.from(m.grads);
  };
  const ga = step(xa, ya);
  const gb = step(xb, yb);
  // the same batch after zeroGrad gives bit-identical grads: nothing leaks between steps
  assert.deepEqual(step(xa, ya), ga);
  m.zeroGrad();
  m.forward(xa, ya);
  m.backward(0.5);
  m.forward(xb, yb);
  m.backward(0.5);
  for (let i = 0; i < m.numParams; i++) {
    assert.ok(Math.abs(m.grads[i]! - 0.5 * (ga[i]! + gb[i]!)) <= 1e-12 * (1 + Math.abs(ga[i]!) + Math.abs(gb[i]!)), `element ${i}`);
  }
});

test('causality: the loss at position t ignores later tokens, and its gradient never reaches them', () => {
  const cfg = tinyConfig({ vocab_size: 12, seq_len: 6 });
  const m = f64Model(cfg, 1);
  randomizeParams(m, 16);
  const T = cfg.seq_len;
  const t = 2;
  // tokens 0..5 up to position t, tokens 6..11 after it: a token's embedding row is then only
  // ever read at positions <= t or only at positions > t
  const x = Int32Array.from([0, 3, 5, 7, 9, 11]);
  const y = Int32Array.from([1, 2, 3, 4, 5, 6]);
  m.forward(x, y, 1);
  const before = Float64Array.from(m.tokenLosses().subarray(0, T));
  const x2 = Int32Array.from([0, 3, 5, 6, 10, 8]);
  m.forward(x2, y, 1);
  for (let i = 0; i <= t; i++) assert.equal(m.tokenLosses()[i], before[i], `loss at ${i} changed when tokens after ${t} changed`);
  assert.notEqual(m.tokenLosses()[t + 1], before[t + 1]);
  // back-propagate the loss at position t alone
  m.zeroGrad();
  m.forward(x, y, 1);
  const dl = m.dlogits();
  dl.fill(0, 0, t * cfg.vocab_size);
  dl.fill(0, (t + 1) * cfg.vocab_size);
  m.backward();
  const C = cfg.d_model;
  const wte = m.tensors.find((q) => q.name === 'wte')!;
  // untied: wte's gradient is the embedding backward only
  for (const tok of [7, 9, 11]) {
    for (let j = 0; j < C; j++) assert.equal(m.grads[wte.offset + tok * C + j], 0, `gradient reached future token ${tok}`);
  }
  let past = 0;
  for (const tok of [0, 3, 5]) for (let j = 0; j < C; j++) past += Math.abs(m.grads[wte.offset + tok * C + j]!);
  assert.ok(past > 1e-8, 'the loss at t must depend on the tokens up to t');
});

test('whole model at seq_len 128 (causal-blocked attention): 4 sampled elements per tensor match finite differences', () => {
  const cfg = tinyConfig({ seq_len: 128, vocab_size: 11 });
  const m = f64Model(cfg, 1);
  randomizeParams(m, 17);
  const T = cfg.seq_len;
  const inputs = randomIds(T, cfg.vocab_size, 500);
  const targets = randomIds(T, cfg.vocab_size, 501);
  m.zeroGrad();
  m.forward(inputs, targets, 1);
  m.backward();
  assertGradsOk(finiteDifferenceReport(m, () => m.forward(inputs, targets, 1), 4), 1 + 6 * cfg.n_layer + 2);
});

test('init: deterministic per seed, normal(0, init_std), residual projections scaled by 1/sqrt(2 n_layer), norms 1', () => {
  const cfg = tinyConfig({ vocab_size: 256, d_model: 64, n_head: 4, ffn_hidden: 128, n_layer: 2, init_std: 0.02 });
  const a = f64Model(cfg, 1);
  const b = f64Model(cfg, 1);
  a.init(5);
  b.init(5);
  assert.deepEqual(a.params, b.params);
  b.init(6);
  assert.notDeepEqual(a.params, b.params);
  const stats = (name: string): { mean: number; std: number } => {
    const t = a.tensors.find((x) => x.name === name)!;
    let s = 0, s2 = 0;
    for (let i = t.offset; i < t.offset + t.size; i++) { s += a.params[i]!; s2 += a.params[i]! ** 2; }
    const mean = s / t.size;
    return { mean, std: Math.sqrt(s2 / t.size - mean * mean) };
  };
  for (const [name, std] of [['wte', 0.02], ['blocks.1.wqkv', 0.02], ['blocks.0.w_gate_up', 0.02], ['lm_head', 0.02], ['blocks.0.wo', 0.01], ['blocks.1.w_down', 0.01]] as const) {
    const st = stats(name);
    assert.ok(Math.abs(st.std / std - 1) < 0.05, `${name}: std ${st.std} vs ${std}`);
    assert.ok(Math.abs(st.mean) < 0.1 * std, `${name}: mean ${st.mean}`);
  }
  for (const name of ['blocks.0.attn_norm', 'blocks.1.mlp_norm', 'final_norm']) {
    const t = a.tensors.find((x) => x.name === name)!;
    for (let i = t.offset; i < t.offset + t.size; i++) assert.equal(a.params[i], 1);
  }
});

test('API misuse is reported: bad ids and B are UserErrors, backward/logits out of order throw', () => {
  const cfg = tinyConfig();
  const m = f64Model(cfg, 2);
  m.init(1);
  const T = cfg.seq_len;
  const x = randomIds(2 * T, cfg.vocab_size, 1);
  assert.throws(() => m.backward(), /forward\(inputs, targets\) first/);
  assert.ok(Number.isNaN(m.forward(x, null)));
  assert.equal(m.logits().length, 2 * T * cfg.vocab_size);
  assert.equal((m.forward(x, null, 1), m.logits()).length, T * cfg.vocab_size);
  const loss = m.forward(x, x, 2);
  assert.ok(Math.abs(loss - Math.log(cfg.vocab_size)) < 0.05, `init loss ${loss} ~ ln V`);
  assert.throws(() => m.logits(), /only valid right after forward\(inputs, null\)/);
  m.backward();
  assert.throws(() => m.backward(), /first/);
  const bad = Int32Array.from(x);
  bad[3] = cfg.vocab_size;
  assert.throws(() => m.forward(bad, null), (e: unknown) => isUserError(e) && /token id 11 at index 3/.test((e as Error).message));
  assert.throws(() => m.forward(x, null, 3), (e: unknown) => isUserError(e) && /B must be in 1..2/.test((e as Error).message));
  assert.throws(() => m.forward(x.subarray(0, T), null, 2), (e: unknown) => isUserError(e));
});
