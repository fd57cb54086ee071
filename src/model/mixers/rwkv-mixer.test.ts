/**
 * The fast rwkv mixer (rwkv-mixer.ts) and the model built on it: the layer against the float64
 * oracle (rwkv.ts, step-by-step recurrence) for several chunk lengths, T not a multiple of them
 * included; the whole rwkv model against float64 finite differences; recurrent decoding against
 * the full forward (and beyond seq_len, where it has no window); wasm and native against js.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena, type Arena } from '../../kernels/arena.js';
import { createBackend, type Backend } from '../../kernels/index.js';
import { createJsKernels } from '../../kernels/js/index.js';
import { fillNormal, seededRng } from '../../kernels/testing.js';
import type { FloatArray, Kernels } from '../../kernels/types.js';
import type { ModelConfig } from '../config.js';
import { flopsPerToken } from '../flops.js';
import { BatchDecoder, Generator } from '../generate.js';
import { GPT } from '../gpt.js';
import { countParams } from '../layout.js';
import { assertRunsClose, finiteDifferenceReport, randomIds, randomizeParams, runOnce, tinyConfig, type BackendRun } from '../testutil.js';
import { rwkvBackward, rwkvForward, type RwkvActivations, type RwkvWeights } from './rwkv.js';
import { rwkvMixer } from './rwkv-mixer.js';

const rwkvConfig = (over: Partial<ModelConfig> = {}): ModelConfig => tinyConfig({ mixer: 'rwkv', ...over });

/** Decays spread over strong and weak (w from ~0.97 to ~0.05) so every decay term matters. */
function spreadDecays(m: GPT, seed: number): void {
  const rng = seededRng(seed);
  for (const t of m.tensors) {
    if (!t.name.endsWith('.time_decay')) continue;
    for (let i = 0; i < t.size; i++) m.params[t.offset + i] = -3.5 + 4.5 * rng();
  }
}

interface LayerCase { B: number; maxB: number; T: number; C: number; H: number; chunk: number }

/** One layer of the fast mixer on the float64 js backend vs the oracle: y, dx and every weight gradient. */
function layerAgainstOracle(c: LayerCase, seed: number): number {
  const { B, maxB, T, C, H, chunk } = c;
  const cfg = rwkvConfig({ d_model: C, n_head: H, seq_len: T, n_layer: 1, rwkv_chunk: chunk });
  const arena = new HeapArena('f64');
  const k = createJsKernels();
  const rng = seededRng(seed);
  const params = rwkvMixer.params(cfg, 0);
  const w: Record<string, FloatArray> = {};
  const g: Record<string, FloatArray> = {};
  for (const p of params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    w[p.name] = fillNormal(arena.floats(n), rng, 0.5);
    g[p.name] = arena.floats(n);
  }
  for (let i = 0; i < C; i++) {
    w.time_decay![i] = -3 + 4 * rng();
    w.head_norm![i] = 1 + 0.3 * (rng() - 0.5);
  }
  for (let i = 0; i < 4 * C; i++) w.time_mix![i] = 0.1 + 0.8 * rng();
  const N = maxB * T;
  const x = fillNormal(arena.floats(N * C), rng, 1);
  const y = arena.floats(N * C);
  const dy = fillNormal(arena.floats(N * C), rng, 1);
  const dx = arena.floats(N * C);
  const scratch = arena.floats(rwkvMixer.scratchFloats(cfg, maxB));
  const { layers: [layer] } = rwkvMixer.build({ cfg, maxB, backend: 'js', arena, weights: [w], grads: [g], x: [x], y, dy, dx, scratch });
  layer!.forward(k, B);
  layer!.backward(k, B, 0.5);

  // the oracle's weights: wrkvg's column blocks as four matrices
  const cols = (m: FloatArray, part: number): Float64Array => {
    const out = new Float64Array(C * C);
    for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) out[i * C + j] = m[i * 4 * C + part * C + j]!;
    return out;
  };
  const ow: RwkvWeights = {
    mixR: w.time_mix!.slice(0, C), mixK: w.time_mix!.slice(C, 2 * C), mixV: w.time_mix!.slice(2 * C, 3 * C), mixG: w.time_mix!.slice(3 * C),
    wr: cols(w.wrkvg!, 0), wk: cols(w.wrkvg!, 1), wv: cols(w.wrkvg!, 2), wg: cols(w.wrkvg!, 3),
    decay: w.time_decay!.slice(), bonus: w.time_bonus!.slice(), normW: w.head_norm!.slice(), wo: w.wo!.slice(),
  };
  const zeros = (n: number): Float64Array => new Float64Array(n);
  const og: RwkvWeights = {
    mixR: zeros(C), mixK: zeros(C), mixV: zeros(C), mixG: zeros(C), wr: zeros(C * C), wk: zeros(C * C), wv: zeros(C * C), wg: zeros(C * C),
    decay: zeros(C), bonus: zeros(C), normW: zeros(C), wo: zeros(C * C),
  };
  const NB = B * T * C;
  const acts: RwkvActivations = {
    x: x.slice(0, NB), rho: zeros(NB), g: zeros(NB), k: zeros(NB), v: zeros(NB), o: zeros(NB), rstd: zeros(B * T * H), nrm: zeros(NB), y: zeros(NB), states: zeros(0),
  };
  const dims = { B, T, C, H, eps: cfg.norm_eps };
  rwkvForward(dims, ow, acts, { kind: 'recurrent' });
  const odx = zeros(NB);
  const dyHalf = Float64Array.from(dy.subarray(0, NB), (v) => 0.5 * v);
  rwkvBackward(dims, ow, acts, { kind: 'recurrent' }, dyHalf, odx, og);

  let worst = 0;
  const cmp = (label: string, got: ArrayLike<number>, want: ArrayLike<number>, n: number): void => {
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < n; i++) {
      scale = Math.max(scale, Math.abs(want[i]!));
      diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    }
    assert.ok(scale > 0, `${label}: reference is all zero`);
    worst = Math.max(worst, diff / scale);
    assert.ok(diff <= 1e-10 * scale, `${label} (B ${B}/${maxB}, T ${T}, chunk ${chunk}): max diff ${diff.toExponential(3)} vs scale ${scale.toExponential(3)}`);
  };
  cmp('y', y, acts.y, NB);
  cmp('dx', dx, odx, NB);
  const gm = Float64Array.from([...og.mixR, ...og.mixK, ...og.mixV, ...og.mixG]);
  cmp('time_mix grad', g.time_mix!, gm, 4 * C);
  for (const [part, m] of [[0, og.wr], [1, og.wk], [2, og.wv], [3, og.wg]] as const) cmp(`wrkvg grad ${part}`, cols(g.wrkvg!, part), m, C * C);
  cmp('time_decay grad', g.time_decay!, og.decay, C);
  cmp('time_bonus grad', g.time_bonus!, og.bonus, C);
  cmp('head_norm grad', g.head_norm!, og.normW, C);
  cmp('wo grad', g.wo!, og.wo, C * C);
  return worst;
}

test('fast rwkv layer = the float64 recurrent oracle (y, dx, every weight gradient) for chunks 1, 3, 4, T and > T, T not a multiple, B < maxB', () => {
  for (const chunk of [1, 3, 4, 7, 16]) {
    layerAgainstOracle({ B: 2, maxB: 3, T: 7, C: 8, H: 2, chunk }, 10 + chunk);
  }
  // head size 16, several full chunks
  layerAgainstOracle({ B: 1, maxB: 1, T: 24, C: 32, H: 2, chunk: 8 }, 99);
});

test('whole rwkv model: every element of every parameter tensor matches float64 finite differences (T 7, chunk 3, B 2 of 3, untied; 3 layers tied)', () => {
  for (const [cfg, B, maxB] of [
    [rwkvConfig({ seq_len: 7, rwkv_chunk: 3 }), 2, 3],
    [rwkvConfig({ seq_len: 5, rwkv_chunk: 2, n_layer: 3, n_head: 4, d_model: 16, ffn_hidden: 8, vocab_size: 7, tie_embeddings: true }), 2, 2],
  ] as const) {
    const m = new GPT(cfg, createJsKernels(), new HeapArena('f64'), maxB);
    randomizeParams(m, 21);
    spreadDecays(m, 22);
    const T = cfg.seq_len;
    const inputs = randomIds(maxB * T, cfg.vocab_size, 31);
    const targets = randomIds(maxB * T, cfg.vocab_size, 32);
    m.zeroGrad();
    m.forward(inputs, targets, B);
    m.backward(0.7);
    // h = 1e-6: with the gate the loss is curved enough that h = 1e-5 leaves ~3e-5 of truncation error on wte
    const reports = finiteDifferenceReport(m, () => 0.7 * m.forward(inputs, targets, B), Infinity, 1e-6);
    const perLayer = 10; // attn_norm, 6 rwkv tensors, mlp_norm, w_gate_up, w_down
    assert.equal(reports.length, 1 + perLayer * cfg.n_layer + 1 + (cfg.tie_embeddings ? 0 : 1));
    for (const name of ['time_mix', 'wrkvg', 'time_decay', 'time_bonus', 'head_norm', 'wo']) {
      assert.ok(reports.some((r) => r.name === `blocks.0.${name}`), `no report for ${name}`);
    }
    for (const r of reports) {
      assert.ok(r.maxNumeric > 1e-6, `${r.name}: numeric gradient is ~0 (${r.maxNumeric})`);
      assert.ok(r.relErr < 1e-5, `${r.name}: relative gradient error ${r.relErr.toExponential(3)} (${r.checked} elements)`);
    }
  }
});

test('rwkv loss is the same for every chunk length (chunked form = recurrence through the whole model)', () => {
  const losses: number[] = [];
  for (const chunk of [1, 2, 5, 11, 64]) {
    const cfg = rwkvConfig({ seq_len: 11, rwkv_chunk: chunk, d_model: 16, n_head: 2 });
    const m = new GPT(cfg, createJsKernels(), new HeapArena('f64'), 2);
    randomizeParams(m, 7);
    spreadDecays(m, 8);
    losses.push(m.forward(randomIds(22, cfg.vocab_size, 1), randomIds(22, cfg.vocab_size, 2)));
  }
  for (const l of losses) assert.ok(Math.abs(l - losses[0]!) < 1e-12, `losses ${losses.join(', ')}`);
});

/** Logits of a full forward vs the decoder fed the same tokens one by one, every position; returns the max diff. */
function decodeVsForward(k: Kernels, arena: Arena, cfg: ModelConfig, rows: number, seed: number, tol: number): void {
  const T = cfg.seq_len;
  const V = cfg.vocab_size;
  const m = new GPT(cfg, k, arena, rows);
  m.init(seed);
  randomizeParams(m, seed);
  spreadDecays(m, seed + 1);
  const ids = arena.ints(rows * T);
  ids.set(randomIds(rows * T, V, seed + 2));
  m.forward(ids, null, rows);
  const full = Float64Array.from(m.logits());
  const dec = new BatchDecoder(m, k, arena, rows, T);
  assert.equal(dec.capacity, Number.POSITIVE_INFINITY);
  const tok = new Int32Array(rows);
  let scale = 0;
  let diff = 0;
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) tok[r] = ids[r * T + t]!;
    const out = dec.step(tok);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        const want = full[(r * T + t) * V + v]!;
        scale = Math.max(scale, Math.abs(want));
        diff = Math.max(diff, Math.abs(out[r * V + v]! - want));
      }
    }
  }
  assert.ok(diff <= tol * scale, `${k.name}: decode vs forward max diff ${diff.toExponential(3)} (scale ${scale.toExponential(3)})`);
}

test('rwkv decoding (state only) gives the full forward\'s logits at every position, 3 rows at once (float64 js)', () => {
  decodeVsForward(createJsKernels(), new HeapArena('f64'), rwkvConfig({ seq_len: 9, rwkv_chunk: 4, d_model: 16, n_head: 2, vocab_size: 13 }), 3, 41, 1e-10);
});

test('rwkv decoding has no window: past seq_len it equals the forward of a model with a longer seq_len (same weights)', () => {
  const cfg = rwkvConfig({ seq_len: 6, rwkv_chunk: 4, d_model: 16, n_head: 2, vocab_size: 13 });
  const long = { ...cfg, seq_len: 20 };
  const k = createJsKernels();
  const short = new GPT(cfg, k, new HeapArena('f64'), 1);
  const big = new GPT(long, k, new HeapArena('f64'), 1);
  assert.equal(short.numParams, big.numParams, 'rwkv parameters do not depend on seq_len');
  randomizeParams(short, 5);
  spreadDecays(short, 6);
  big.params.set(short.params);
  const ids = randomIds(20, 13, 7);
  big.forward(ids, null, 1);
  const want = big.logits();
  const gen = new Generator(short, k, new HeapArena('f64'), 20);
  let diff = 0;
  for (let t = 0; t < 20; t++) {
    const out = gen.step(ids[t]!);
    for (let v = 0; v < 13; v++) diff = Math.max(diff, Math.abs(out[v]! - want[t * 13 + v]!));
  }
  assert.equal(gen.position, 20, 'no slide: the position keeps counting');
  assert.ok(diff < 1e-10, `max diff ${diff}`);
});

test('rwkv FLOP term: 6 n_layer C (L + 2D) per token, independent of seq_len', () => {
  const cfg = rwkvConfig({ d_model: 64, n_head: 2, n_layer: 3, seq_len: 128, rwkv_chunk: 16 });
  assert.equal(flopsPerToken(cfg) - 6 * countParams(cfg), 6 * 3 * 64 * (16 + 64));
  assert.equal(flopsPerToken({ ...cfg, seq_len: 4096 }), flopsPerToken(cfg));
});

for (const name of ['wasm', 'native'] as const) {
  test(`rwkv on ${name} (1 and 2 threads) matches js float32: loss, every gradient, and decoding`, async (t) => {
    const cfg = rwkvConfig({ vocab_size: 64, d_model: 32, n_layer: 2, n_head: 2, seq_len: 21, rwkv_chunk: 8, ffn_hidden: 64, init_std: 0.1 });
    const B = 3;
    const runOn = (k: Kernels, arena: Arena): BackendRun => {
      const m = new GPT(cfg, k, arena, B);
      m.init(42);
      spreadDecays(m, 43);
      return runOnce(m, arena, B);
    };
    const ref = runOn(createJsKernels(), new HeapArena('f32'));
    for (const threads of [1, 2]) {
      let be: Backend;
      try {
        be = await createBackend({ backend: name, threads });
      } catch (e) {
        t.skip(`${name} backend unavailable: ${(e as Error).message}`);
        return;
      }
      try {
        assertRunsClose(runOn(be.kernels, be.arena), ref, 1e-5, 5e-5, `${name}/${threads}`);
        decodeVsForward(be.kernels, be.arena, { ...cfg, seq_len: 12 }, 2, 50 + threads, 1e-4);
      } finally {
        await be.dispose();
      }
    }
  });
}
