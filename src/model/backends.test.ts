/**
 * The same model on different precisions and backends: float32 js against float64 js (the
 * oracle), and float32 wasm / native against float32 js (skipped when a backend is unavailable).
 */
import { test } from 'node:test';
import { HeapArena, type Arena } from '../kernels/arena.js';
import { createBackend, type Backend } from '../kernels/index.js';
import { createJsKernels } from '../kernels/js/index.js';
import type { Kernels } from '../kernels/types.js';
import type { ModelConfig } from './config.js';
import { GPT } from './gpt.js';
import { assertRunsClose, runOnce, tinyConfig, type BackendRun } from './testutil.js';

const CFG: ModelConfig = tinyConfig({ vocab_size: 64, d_model: 32, n_layer: 2, n_head: 2, seq_len: 16, ffn_hidden: 64, init_std: 0.1 });
const B = 3;
/** seq_len 128: the attention products run in 2 causal blocks (defaultCausalBlock). */
const CFG_LONG: ModelConfig = tinyConfig({ vocab_size: 32, d_model: 16, n_layer: 1, n_head: 2, seq_len: 128, ffn_hidden: 32, init_std: 0.3 });

function run(cfg: ModelConfig, k: Kernels, arena: Arena, tied = false): BackendRun {
  const m = new GPT({ ...cfg, tie_embeddings: tied }, k, arena, B);
  m.init(42);
  return runOnce(m, arena, B);
}

test('float32 model on js matches the float64 model (loss 1e-5 rel, grads 5e-5 of each tensor\'s scale (measured <= 1e-6))', () => {
  for (const tied of [false, true]) {
    const ref = run(CFG, createJsKernels(), new HeapArena('f64'), tied);
    const f32 = run(CFG, createJsKernels(), new HeapArena('f32'), tied);
    assertRunsClose(f32, ref, 1e-5, 5e-5, `f32 tied=${tied}`);
  }
  const ref = run(CFG_LONG, createJsKernels(), new HeapArena('f64'));
  assertRunsClose(run(CFG_LONG, createJsKernels(), new HeapArena('f32')), ref, 1e-5, 5e-5, 'f32 T=128');
});

for (const name of ['wasm', 'native'] as const) {
  test(`float32 model on ${name} matches float32 js (loss 1e-5 rel, grads 5e-5 of each tensor's scale (measured <= 1e-6))`, async (t) => {
    let be: Backend;
    try {
      be = await createBackend({ backend: name, threads: 2 });
    } catch (e) {
      t.skip(`${name} backend unavailable: ${(e as Error).message}`);
      return;
    }
    try {
      for (const tied of [false, true]) {
        const ref = run(CFG, createJsKernels(), new HeapArena('f32'), tied);
        const got = run(CFG, be.kernels, be.arena, tied);
        assertRunsClose(got, ref, 1e-5, 5e-5, `${name} tied=${tied}`);
      }
      const ref = run(CFG_LONG, createJsKernels(), new HeapArena('f32'));
      assertRunsClose(run(CFG_LONG, be.kernels, be.arena), ref, 1e-5, 5e-5, `${name} T=128`);
    } finally {
      await be.dispose();
    }
  });
}
