import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createBackend, type Backend } from '../kernels/index.js';
import { createJsKernels } from '../kernels/js/index.js';
import type { FloatArray } from '../kernels/types.js';
import { GPT } from '../model/gpt.js';
import type { ModelConfig } from '../model/config.js';
import { clipGradNorm, createOptimizer, type OptimConfig, type OptimizerName, type ParamTensor } from './index.js';

// The optimizers through the fast backends (wasm, native) match the js oracle, with the
// state views placed inside the shared arena at non-zero offsets; and each optimizer
// trains the real model.

const NAMES: OptimizerName[] = ['adamw', 'lion', 'sfadamw'];
const LEN = 3001;
const TENSORS: ParamTensor[] = [
  { name: 'a', offset: 0, size: 1000, shape: [1000], decay: true },
  { name: 'n', offset: 1000, size: 17, shape: [17], decay: false },
  { name: 'b', offset: 1024, size: 1977, shape: [1977], decay: true }, // 7 floats of padding before it
];

function cfg(name: OptimizerName): OptimConfig {
  return { name, lr: 1e-2, min_lr: 0, warmup_steps: 0, schedule: 'constant', beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

/** Grads keep one sign per coordinate across steps, so Lion's sign is never a rounding coin toss. */
function fillGrads(g: FloatArray, step: number): void {
  const r = lcg(1000 + step);
  const signs = lcg(7);
  for (let i = 0; i < g.length; i++) g[i] = (signs() < 0.5 ? -1 : 1) * (0.05 + r());
}

function run(kernelsArena: { kernels: Backend['kernels']; arena: Backend['arena'] }, name: OptimizerName) {
  const { kernels, arena } = kernelsArena;
  arena.floats(5); // push everything to an awkward offset
  const params = arena.floats(LEN);
  const grads = arena.floats(LEN);
  const init = lcg(3);
  for (let i = 0; i < LEN; i++) params[i] = init() - 0.5;
  const opt = createOptimizer(cfg(name), kernels, arena, params, grads, TENSORS);
  for (let s = 0; s < 3; s++) {
    fillGrads(grads, s);
    opt.step([0.01, 0.02, 0.015][s]);
  }
  opt.evalParams();
  const x = Float64Array.from(params);
  opt.trainParams();
  return { y: Float64Array.from(params), x, state: opt.state() };
}

for (const backend of ['wasm', 'native'] as const) {
  test(`optimizers on the ${backend} backend match the js oracle`, async (t) => {
    let b: Backend;
    try {
      b = await createBackend({ backend, threads: 1 });
    } catch (e) {
      t.skip(`${backend} backend unavailable: ${(e as Error).message}`);
      return;
    }
    try {
      for (const name of NAMES) {
        const ref = run({ kernels: createJsKernels(), arena: new HeapArena('f32') }, name);
        const got = run(b, name);
        for (const [what, a, e] of [['params', got.y, ref.y], ['eval params', got.x, ref.x]] as const) {
          for (let i = 0; i < LEN; i++) {
            // float32 state, different operation order / FMA: a few ulps of the step size
            assert.ok(Math.abs(a[i] - e[i]) <= 1e-6 + 1e-5 * Math.abs(e[i]), `${name} ${what}[${i}]: ${a[i]} vs ${e[i]}`);
          }
        }
      }
    } finally {
      await b.dispose();
    }
  });
}

test('each optimizer trains the real model: loss on a fixed batch falls', () => {
  const config: ModelConfig = {
    vocab_size: 300, d_model: 16, n_layer: 1, n_head: 2, seq_len: 8, ffn_hidden: 32,
    tie_embeddings: false, rope_theta: 10000, norm_eps: 1e-5, init_std: 0.02,
  };
  const B = 2;
  const inputs = new Int32Array(B * config.seq_len);
  const targets = new Int32Array(B * config.seq_len);
  const r = lcg(11);
  for (let i = 0; i < inputs.length; i++) inputs[i] = Math.floor(r() * 300);
  for (let i = 0; i < targets.length; i++) targets[i] = Math.floor(r() * 300);
  // muon: AdamW at 1e-2 for embedding, head and norms, the hidden matrices at its default muon_lr
  for (const name of [...NAMES, 'muon'] as const) {
    const kernels = createJsKernels();
    const arena = new HeapArena('f32');
    const model = new GPT(config, kernels, arena, B);
    const opt = createOptimizer({ ...cfg(name), lr: name === 'lion' ? 3e-3 : 1e-2 }, kernels, arena, model.params, model.grads, model.tensors);
    model.init(1);
    let first = NaN;
    for (let s = 0; s < 40; s++) {
      model.zeroGrad();
      const loss = model.forward(inputs, targets, B);
      if (s === 0) first = loss;
      model.backward();
      clipGradNorm(kernels, model.grads, 1);
      opt.step(Math.min(1, (s + 1) / 5) * (name === 'lion' ? 3e-3 : 1e-2));
    }
    opt.evalParams();
    const last = model.forward(inputs, targets, B);
    assert.ok(Math.abs(first - Math.log(300)) < 0.1, `${name}: initial loss ${first} ~ ln(300)`);
    assert.ok(last < first - 2, `${name}: loss ${first} -> ${last} after 40 steps on one batch`);
  }
});
