import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { HeapArena, type Arena } from '../kernels/arena.js';
import { createBackend, type Backend } from '../kernels/index.js';
import { createJsKernels } from '../kernels/js/index.js';
import type { Kernels } from '../kernels/types.js';
import { planLayout } from '../model/layout.js';
import type { ModelConfig } from '../model/config.js';
import { loadConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { readLog } from '../train/log.js';
import { readManifest } from '../train/checkpoint.js';
import { UserError } from '../util/errors.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { createOptimizer, MUON_DEFAULTS, muonPlan, type OptimConfig, type ParamTensor } from './index.js';
import { NS_COEFFS, NS_EPS } from './muon.js';
import { useTempCache } from '../util/testing.js';

// Muon against a plain float64 reference written here from the algorithm (not from muon.ts):
// Nesterov momentum, Newton-Schulz on each logical matrix (transposing the tall ones),
// shape scale sqrt(max(1, fan_out / fan_in)), decoupled decay at the Muon rate, AdamW for
// the rest. Then: the orthogonalisation really orthogonalises, the fast backends agree with
// the js one, a run resumes bit for bit, and it converges.

const js = createJsKernels();

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

// A model-like layout (names decide what Muon takes): wide, tall and square blocks, fused
// q|k|v and gate|up, one Muon matrix without decay, 1-D norms, embedding and head for AdamW,
// and a float of padding (offset 12) that nothing may touch.
function layout(dims: { C: number; F: number; V: number }): { tensors: ParamTensor[]; n: number; pad: number[] } {
  const { C, F, V } = dims;
  const tensors: ParamTensor[] = [];
  let off = 0;
  const pad: number[] = [];
  const add = (name: string, shape: number[], decay: boolean) => {
    const size = shape.reduce((a, b) => a * b, 1);
    tensors.push({ name, offset: off, size, shape, decay });
    off += size;
  };
  add('wte', [V, C], false);
  add('blocks.0.attn_norm', [C], false);
  pad.push(off++);
  add('blocks.0.wqkv', [C, 3 * Math.max(1, C - 2)], true); // q, k, v each [C, C-2]: tall
  add('blocks.0.wo', [C, C], true); // square
  add('blocks.0.mlp_norm', [C], false);
  add('blocks.0.w_gate_up', [C, 2 * F], true); // gate, up each [C, F]: wide
  add('blocks.0.w_down', [F, C], false); // tall, no decay
  add('final_norm', [C], false);
  add('lm_head', [V, C], true);
  return { tensors, n: off, pad };
}
const SMALL = layout({ C: 4, F: 6, V: 5 });
const MID = layout({ C: 20, F: 36, V: 50 }); // blocks big enough for the wasm/BLAS tiling paths

function cfg(over: Partial<OptimConfig> = {}): OptimConfig {
  return {
    name: 'muon', lr: 0.01, min_lr: 0, warmup_steps: 0, schedule: 'constant', beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1,
    muon_lr: 0.05, muon_momentum: 0.9, ns_steps: 5, ...over,
  };
}
const LRS = [0.01, 0.02, 0.005, 0.01];

function initParams(n: number, seed = 3): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => r() - 0.5);
}
/** Gradients of step s (the padding gets one too: it must be ignored). */
function gradsAt(n: number, s: number): number[] {
  const r = lcg(100 + s);
  return Array.from({ length: n }, () => (r() - 0.5) * 0.2);
}

// ---------------------------------------------------------------- float64 reference

type Mat = number[][];
const zeros = (r: number, c: number): Mat => Array.from({ length: r }, () => new Array<number>(c).fill(0));
const transpose = (x: Mat): Mat => x[0].map((_, j) => x.map((row) => row[j]));
function matmul(x: Mat, y: Mat): Mat {
  const out = zeros(x.length, y[0].length);
  for (let i = 0; i < x.length; i++) for (let k = 0; k < y.length; k++) for (let j = 0; j < y[0].length; j++) out[i][j] += x[i][k] * y[k][j];
  return out;
}
const lin = (a: number, x: Mat, b: number, y: Mat): Mat => x.map((row, i) => row.map((v, j) => a * v + b * y[i][j]));

/** The quintic Newton-Schulz iteration as modded-nanoGPT writes it, in float64. */
function newtonSchulzRef(g: Mat, steps: number): Mat {
  const tall = g.length > g[0].length;
  let x = tall ? transpose(g) : g.map((r) => [...r]);
  const norm = Math.sqrt(x.flat().reduce((s, v) => s + v * v, 0)) + NS_EPS;
  x = x.map((r) => r.map((v) => v / norm));
  const [a, b, c] = NS_COEFFS;
  for (let s = 0; s < steps; s++) {
    const A = matmul(x, transpose(x));
    const B = lin(b, A, c, matmul(A, A));
    x = lin(a, x, 1, matmul(B, x));
  }
  return tall ? transpose(x) : x;
}

/** Reference state, advanced one step at a time. */
function muonReference(tensors: readonly ParamTensor[], n: number, c: OptimConfig) {
  const p = initParams(n);
  const m = new Array<number>(n).fill(0);
  const v = new Array<number>(n).fill(0);
  let t = 0;
  const parts = (name: string) => (name.endsWith('.wqkv') ? 3 : name.endsWith('.w_gate_up') ? 2 : /\.(wo|w_down)$/.test(name) ? 1 : 0);
  const step = (g: number[], lr: number) => {
    t++;
    const lrM = (c.muon_lr! * lr) / c.lr;
    const mu = c.muon_momentum!;
    for (const ten of tensors) {
      const k = parts(ten.name);
      const idx = (i: number) => ten.offset + i;
      if (k === 0) {
        for (let i = 0; i < ten.size; i++) {
          const j = idx(i);
          m[j] = c.beta1 * m[j] + (1 - c.beta1) * g[j];
          v[j] = c.beta2 * v[j] + (1 - c.beta2) * g[j] * g[j];
          const mhat = m[j] / (1 - c.beta1 ** t);
          const vhat = v[j] / (1 - c.beta2 ** t);
          p[j] -= lr * (mhat / (Math.sqrt(vhat) + c.eps) + (ten.decay ? c.weight_decay : 0) * p[j]);
        }
        continue;
      }
      const [rows, cols] = ten.shape;
      const u = new Array<number>(ten.size);
      for (let i = 0; i < ten.size; i++) {
        const j = idx(i);
        m[j] = mu * m[j] + g[j];
        u[i] = g[j] + mu * m[j];
      }
      const w = cols / k;
      for (let b = 0; b < k; b++) {
        const block: Mat = Array.from({ length: rows }, (_, r) => u.slice(r * cols + b * w, r * cols + b * w + w));
        const o = newtonSchulzRef(block, c.ns_steps!);
        const scale = Math.sqrt(Math.max(1, w / rows));
        for (let r = 0; r < rows; r++) {
          for (let q = 0; q < w; q++) {
            const j = idx(r * cols + b * w + q);
            p[j] = p[j] * (1 - (ten.decay ? lrM * c.weight_decay : 0)) - lrM * scale * o[r][q];
          }
        }
      }
    }
  };
  return { p, m, v, step };
}

function setup(kernels: Kernels, arena: Arena, l: { tensors: ParamTensor[]; n: number }, c: OptimConfig) {
  arena.floats(3); // an awkward offset for everything after
  const params = arena.floats(l.n);
  const grads = arena.floats(l.n);
  params.set(initParams(l.n));
  const opt = createOptimizer(c, kernels, arena, params, grads, l.tensors);
  return { params, grads, opt };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (err ${err})`);
  }
}

/** Kernels that do nothing (all but sumSquares return void): isolates the optimizer's own per-step work. */
function nullKernels(): Kernels {
  const noop = (): void => {};
  return {
    name: 'js', threads: 1, gemm: noop, gemmStridedBatched: noop, embeddingForward: noop, embeddingBackward: noop,
    rmsnormForward: noop, rmsnormBackward: noop, addRmsnormForward: noop, ropeForward: noop, ropeBackward: noop, softmaxCausalForward: noop,
    softmaxCausalBackward: noop, attentionCausalForward: noop, attentionCausalBackward: noop, swigluForward: noop, swigluBackward: noop, dropout: noop, add: noop, axpy: noop, scale: noop,
    sumSquares: () => 0, crossEntropyForward: noop, crossEntropyForwardBackward: noop, adamwUpdate: noop,
    lionUpdate: noop, scheduleFreeAdamwUpdate: noop, run: noop, dispose: noop,
  };
}

// First in this file: the later tests run Muon on f64 arenas and three backends, which makes its
// call sites polymorphic (not inlined: every number argument boxed), i.e. not what a run sees.
test('a Muon step allocates nothing: no arena memory, no typed-array views, no JS heap or ArrayBuffer growth beyond boxed numbers', () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const arena = new HeapArena('f32');
  const { grads, opt } = setup(nullKernels(), arena, MID, cfg());
  const bytes = arena.bytesUsed();
  grads.set(gradsAt(MID.n, 0));
  for (let i = 0; i < 300; i++) opt.step(0.01); // warm-up: until the optimizing compiler has run
  // every view is made at construction: count subarray() calls during steps
  const proto = Object.getPrototypeOf(Float32Array.prototype) as { subarray: (...a: unknown[]) => unknown };
  const subarray = proto.subarray;
  let views = 0;
  proto.subarray = function (this: unknown, ...a: unknown[]) {
    views++;
    return subarray.apply(this, a);
  };
  try {
    for (let i = 0; i < 20; i++) opt.step(0.01);
  } finally {
    proto.subarray = subarray;
  }
  assert.equal(views, 0, 'typed-array views made per step');
  assert.equal(arena.bytesUsed(), bytes, 'no arena allocation after construction');
  // The heap: a call that V8 does not inline passes a non-integer number boxed (16 bytes), so a
  // few dozen bytes per step remain (measured ~100 B/step); scratch made per step would be KBs
  // (the smallest block here is 20 x 18 floats). No gc inside a round, and short rounds so a
  // scavenge rarely falls inside one; up to 20 rounds, stopping at the first clean one, as V8
  // may still be compiling in the first.
  // typed arrays over 64 bytes keep their data outside the V8 heap: count ArrayBuffer memory too
  const used = () => { const u = process.memoryUsage(); return u.heapUsed + u.arrayBuffers; };
  let perStep = Infinity;
  for (let round = 0; round < 20 && perStep >= 1024; round++) {
    gc();
    const heap0 = used();
    for (let i = 0; i < 20; i++) opt.step(0.01);
    perStep = Math.min(perStep, (used() - heap0) / 20);
  }
  assert.ok(perStep < 1024, `Muon allocated ${perStep} bytes of JS heap per step`);
});

test('muonPlan takes exactly the hidden matrices of the real model, q/k/v and gate/up as separate blocks', () => {
  const model: ModelConfig = {
    vocab_size: 300, d_model: 16, n_layer: 2, n_head: 2, seq_len: 8, ffn_hidden: 40,
    tie_embeddings: false, rope_theta: 10000, norm_eps: 1e-5, init_std: 0.02,
  };
  const { tensors } = planLayout(model);
  const plan = muonPlan(tensors);
  const blocks = plan.matrices.flatMap((m) => m.blocks.map((b) => `${b.tensor}@${b.col}:${b.rows}x${b.cols}/${b.ld} s${b.scale}`));
  assert.deepEqual(blocks, [0, 1].flatMap((l) => [
    `blocks.${l}.wqkv@0:16x16/48 s1`, `blocks.${l}.wqkv@16:16x16/48 s1`, `blocks.${l}.wqkv@32:16x16/48 s1`,
    `blocks.${l}.wo@0:16x16/16 s1`,
    `blocks.${l}.w_gate_up@0:16x40/80 s${Math.sqrt(40 / 16)}`, `blocks.${l}.w_gate_up@40:16x40/80 s${Math.sqrt(40 / 16)}`,
    `blocks.${l}.w_down@0:40x16/16 s1`,
  ]));
  // every other tensor goes to AdamW, and every 2-D tensor AdamW gets is an embedding or the head:
  // a hidden matrix added to the model without a rule here would fail this
  assert.equal(plan.matrices.length + plan.adamw.length, tensors.length);
  assert.deepEqual(plan.adamw.filter((t) => t.shape.length === 2).map((t) => t.name), ['wte', 'lm_head']);
  assert.throws(() => muonPlan([{ name: 'blocks.0.wqkv', offset: 0, size: 8, shape: [2, 4], decay: true }]), /3 equal column blocks/);
});

test('muonPlan on an rwkv model: r/k/v/g of wrkvg as separate blocks, wo; the mixes, decays, bonuses and head norms go to AdamW', () => {
  const model: ModelConfig = {
    vocab_size: 300, d_model: 16, n_layer: 2, n_head: 2, seq_len: 8, ffn_hidden: 40,
    tie_embeddings: false, rope_theta: 10000, norm_eps: 1e-5, init_std: 0.02, mixer: 'rwkv',
  };
  const { tensors } = planLayout(model);
  const plan = muonPlan(tensors);
  const muon = plan.matrices.flatMap((m) => m.blocks.map((b) => `${b.tensor}@${b.col}:${b.rows}x${b.cols}`));
  assert.deepEqual(muon.filter((b) => b.startsWith('blocks.0.')), [
    'blocks.0.wrkvg@0:16x16', 'blocks.0.wrkvg@16:16x16', 'blocks.0.wrkvg@32:16x16', 'blocks.0.wrkvg@48:16x16', 'blocks.0.wo@0:16x16',
    'blocks.0.w_gate_up@0:16x40', 'blocks.0.w_gate_up@40:16x40', 'blocks.0.w_down@0:40x16',
  ]);
  assert.deepEqual(plan.adamw.filter((t) => t.name.startsWith('blocks.0.')).map((t) => t.name), [
    'blocks.0.attn_norm', 'blocks.0.time_mix', 'blocks.0.time_decay', 'blocks.0.time_bonus', 'blocks.0.head_norm', 'blocks.0.mlp_norm',
  ]);
});

test('Muon matches a float64 reference for 4 steps (wide, tall and square blocks, decay masking, AdamW group)', () => {
  for (const ns of [5, 1, 3]) {
    const c = cfg({ ns_steps: ns });
    const { params, grads, opt } = setup(js, new HeapArena('f64'), SMALL, c);
    const ref = muonReference(SMALL.tensors, SMALL.n, c);
    for (let s = 0; s < LRS.length; s++) {
      const g = gradsAt(SMALL.n, s);
      grads.set(g);
      opt.step(LRS[s]);
      ref.step(g, LRS[s]);
      assertClose(params, ref.p, 1e-11, `ns ${ns} step ${s + 1} params`);
      assertClose(opt.state().m, ref.m, 1e-12, `ns ${ns} step ${s + 1} m`);
      assertClose(opt.state().v, ref.v, 1e-12, `ns ${ns} step ${s + 1} v`);
    }
    assert.equal(opt.stepCount, LRS.length);
    for (const i of SMALL.pad) assert.equal(params[i], initParams(SMALL.n)[i], 'padding untouched');
  }
});

test('the Muon step has the expected size: the update of a matrix is -lr_m * scale * O with O O^T ~ I', () => {
  // One step from zero weights, no decay: W = -lr_m * s * NS(u), u = (1 + mu) g, so O = -W / (lr_m s).
  for (const [rows, cols] of [[16, 40], [40, 16], [24, 24]]) {
    const t: ParamTensor = { name: 'blocks.0.wo', offset: 0, size: rows * cols, shape: [rows, cols], decay: true };
    const arena = new HeapArena('f64');
    const params = arena.floats(t.size);
    const grads = arena.floats(t.size);
    const r = lcg(rows * 100 + cols);
    // a matrix with singular values spread over a factor 30 (gaussian-ish entries times a column ramp)
    for (let i = 0; i < t.size; i++) grads[i] = (r() + r() + r() - 1.5) * (1 + (29 * (i % cols)) / cols);
    const c = cfg({ weight_decay: 0.5, ns_steps: 5 });
    const opt = createOptimizer(c, js, arena, params, grads, [t]);
    opt.step(0.004); // lr_m = 0.05 * 0.004 / 0.01 = 0.02
    const scale = Math.sqrt(Math.max(1, cols / rows));
    const o: Mat = Array.from({ length: rows }, (_, i) => Array.from(params.subarray(i * cols, (i + 1) * cols), (w) => -w / (0.02 * scale)));
    const small = rows <= cols ? matmul(o, transpose(o)) : matmul(transpose(o), o);
    const ev = symmetricEigenvalues(small);
    // singular values of the quintic's output after 5 steps lie in about [0.68, 1.2] (for inputs above 0.3% of the norm)
    for (const e of ev) assert.ok(Math.sqrt(e) > 0.65 && Math.sqrt(e) < 1.25, `${rows}x${cols}: singular value ${Math.sqrt(e)}`);
    // and the input was far from orthogonal: the same measure on the raw gradient spreads widely
    const g: Mat = Array.from({ length: rows }, (_, i) => Array.from(grads.subarray(i * cols, (i + 1) * cols)));
    const gev = symmetricEigenvalues(rows <= cols ? matmul(g, transpose(g)) : matmul(transpose(g), g));
    assert.ok(Math.max(...gev) / Math.min(...gev) > 10, `${rows}x${cols}: the test gradient is ill-conditioned (${Math.max(...gev) / Math.min(...gev)})`);
  }
});

/** Eigenvalues of a small symmetric matrix by cyclic Jacobi rotations. */
function symmetricEigenvalues(m: Mat): number[] {
  const a = m.map((r) => [...r]);
  const n = a.length;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i][j] * a[i][j];
    if (off < 1e-24) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
      }
    }
  }
  return a.map((r, i) => r[i]);
}

test('symmetricEigenvalues (the test helper) finds known eigenvalues', () => {
  // Q diag(1, 4, 9) Q^T for a rotation Q
  const c = Math.cos(0.3), s = Math.sin(0.3);
  const q: Mat = [[c, -s, 0], [s, c, 0], [0, 0, 1]];
  const m = matmul(matmul(q, [[1, 0, 0], [0, 4, 0], [0, 0, 9]]), transpose(q));
  assertClose(symmetricEigenvalues(m).sort((a, b) => a - b), [1, 4, 9], 1e-12, 'eigenvalues');
});

// ---------------------------------------------------------------- fast backends, resume


function runSteps(kernels: Kernels, arena: Arena, l: typeof MID, steps: number) {
  const { params, grads, opt } = setup(kernels, arena, l, cfg());
  for (let s = 0; s < steps; s++) {
    grads.set(gradsAt(l.n, s));
    opt.step(LRS[s % LRS.length]);
  }
  return { params: Float64Array.from(params), m: Float64Array.from(opt.state().m), v: Float64Array.from(opt.state().v) };
}

for (const backend of ['wasm', 'native'] as const) {
  test(`Muon on the ${backend} backend matches the js backend`, async (t) => {
    let b: Backend;
    try {
      b = await createBackend({ backend, threads: 1 });
    } catch (e) {
      t.skip(`${backend} backend unavailable: ${(e as Error).message}`);
      return;
    }
    try {
      const ref = runSteps(js, new HeapArena('f32'), MID, 4);
      const got = runSteps(b.kernels, b.arena, MID, 4);
      const p0 = initParams(MID.n);
      // float32, different summation order through 5 Newton-Schulz steps: compare the change of
      // each weight (at most lr_m * scale * ~1.2 = 0.12 over 4 steps) to 2e-5 of its size (measured: 10x below)
      for (let i = 0; i < MID.n; i++) {
        const dRef = ref.params[i] - p0[i];
        const dGot = got.params[i] - p0[i];
        assert.ok(Math.abs(dGot - dRef) <= 1e-6 + 2e-5 * Math.abs(dRef), `${backend} params[${i}]: change ${dGot} vs ${dRef}`);
      }
      assertClose(got.m, ref.m, 1e-6, `${backend} m`);
      assertClose(got.v, ref.v, 1e-6, `${backend} v`);
    } finally {
      await b.dispose();
    }
  });
}

test('Muon resumes exactly: k steps, save, restore into a new optimizer, k steps = 2k steps bit for bit', async (t) => {
  const targets: { label: string; make: () => Promise<{ kernels: Kernels; arena: Arena; dispose: () => Promise<void> | void }> }[] = [
    { label: 'js f32', make: async () => ({ kernels: js, arena: new HeapArena('f32'), dispose: () => {} }) },
    { label: 'wasm', make: async () => { const b = await createBackend({ backend: 'wasm', threads: 1 }); return { kernels: b.kernels, arena: b.arena, dispose: () => b.dispose() }; } },
  ];
  for (const target of targets) {
    let env;
    try {
      env = await target.make();
    } catch (e) {
      t.diagnostic(`${target.label} unavailable: ${(e as Error).message}`);
      continue;
    }
    try {
      const k = 3;
      const whole = runSteps(env.kernels, env.arena, MID, 2 * k);
      // first half, then a checkpoint: weights, state buffers, scalars (copied out, as a file would)
      const a = setup(env.kernels, env.arena, MID, cfg());
      for (let s = 0; s < k; s++) { a.grads.set(gradsAt(MID.n, s)); a.opt.step(LRS[s % LRS.length]); }
      const saved = {
        params: Float32Array.from(a.params),
        state: Object.fromEntries(Object.entries(a.opt.state()).map(([n, v]) => [n, Float32Array.from(v)])),
        scalars: JSON.parse(JSON.stringify(a.opt.scalars())) as Record<string, number>,
      };
      // a fresh optimizer (fresh scratch) restored from it
      const b = setup(env.kernels, env.arena, MID, cfg());
      b.params.set(saved.params);
      for (const [n, buf] of Object.entries(b.opt.state())) buf.set(saved.state[n]);
      b.opt.loadScalars(saved.scalars);
      for (let s = k; s < 2 * k; s++) { b.grads.set(gradsAt(MID.n, s)); b.opt.step(LRS[s % LRS.length]); }
      assert.deepEqual(Float64Array.from(b.params), whole.params, `${target.label}: params`);
      assert.deepEqual(Float64Array.from(b.opt.state().m), whole.m, `${target.label}: m`);
      assert.deepEqual(Float64Array.from(b.opt.state().v), whole.v, `${target.label}: v`);
      assert.equal(b.opt.stepCount, 2 * k);
      // the AdamW group's bias correction depends on the restored step: a wrong step would differ
      const c = setup(env.kernels, env.arena, MID, cfg());
      c.params.set(saved.params);
      for (const [n, buf] of Object.entries(c.opt.state())) buf.set(saved.state[n]);
      for (let s = k; s < 2 * k; s++) { c.grads.set(gradsAt(MID.n, s)); c.opt.step(LRS[s % LRS.length]); }
      assert.notDeepEqual(Float64Array.from(c.params), whole.params, `${target.label}: without loadScalars the run differs`);
    } finally {
      await env.dispose();
    }
  }
  assert.throws(() => setup(js, new HeapArena('f32'), MID, cfg()).opt.loadScalars({}), UserError);
});

// ---------------------------------------------------------------- convergence

test('Muon converges on a least-squares problem (a wide and a tall matrix, plus an AdamW vector)', () => {
  // minimise 0.5/N (||X W1 - Y1||^2 + ||X2 W2 - Y2||^2) + 0.5 ||b - b*||^2 with known solutions
  const r = lcg(77);
  const rand = () => r() * 2 - 1;
  const N = 40;
  const shapes: [string, number, number][] = [['blocks.0.wo', 6, 10], ['blocks.0.w_down', 10, 4]];
  const tensors: ParamTensor[] = [];
  let off = 0;
  for (const [name, rows, cols] of shapes) {
    tensors.push({ name, offset: off, size: rows * cols, shape: [rows, cols], decay: true });
    off += rows * cols;
  }
  tensors.push({ name: 'final_norm', offset: off, size: 5, shape: [5], decay: false });
  const n = off + 5;
  const problems = shapes.map(([, rows, cols]) => {
    const X = Array.from({ length: N * rows }, rand);
    const W = Array.from({ length: rows * cols }, rand);
    const Y = new Array<number>(N * cols).fill(0);
    for (let i = 0; i < N; i++) for (let k = 0; k < rows; k++) for (let j = 0; j < cols; j++) Y[i * cols + j] += X[i * rows + k] * W[k * cols + j];
    return { rows, cols, X, W, Y };
  });
  const bStar = Array.from({ length: 5 }, rand);
  const arena = new HeapArena('f64');
  const params = arena.floats(n);
  const grads = arena.floats(n);
  const lossAndGrad = (): number => {
    grads.fill(0);
    let loss = 0;
    problems.forEach((pr, idx) => {
      const o = tensors[idx].offset;
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < pr.cols; j++) {
          let e = -pr.Y[i * pr.cols + j];
          for (let k = 0; k < pr.rows; k++) e += pr.X[i * pr.rows + k] * params[o + k * pr.cols + j];
          loss += (0.5 * e * e) / N;
          for (let k = 0; k < pr.rows; k++) grads[o + k * pr.cols + j] += (pr.X[i * pr.rows + k] * e) / N;
        }
      }
    });
    for (let i = 0; i < 5; i++) {
      const e = params[off + i] - bStar[i];
      loss += 0.5 * e * e;
      grads[off + i] = e;
    }
    return loss;
  };
  const c = cfg({ weight_decay: 0, lr: 0.05, muon_lr: 0.1, muon_momentum: 0.95, beta2: 0.999 });
  const opt = createOptimizer(c, js, arena, params, grads, tensors);
  const initial = lossAndGrad();
  const steps = 1500;
  for (let s = 0; s < steps; s++) {
    // warmup then cosine to 1%: orthogonalised steps have a fixed size, so the rate must decay to settle
    const lr = 0.05 * Math.min(1, (s + 1) / 50) * (0.01 + 0.99 * 0.5 * (1 + Math.cos((Math.PI * s) / steps)));
    lossAndGrad();
    opt.step(lr);
  }
  const final = lossAndGrad();
  assert.ok(final < initial * 1e-4, `loss ${initial} -> ${final}`);
  problems.forEach((pr, idx) => {
    const o = tensors[idx].offset;
    const dist = Math.sqrt(pr.W.reduce((a, w, i) => a + (params[o + i] - w) ** 2, 0) / pr.W.length);
    assert.ok(dist < 1e-2, `${tensors[idx].name}: RMS distance to the solution ${dist}`);
  });
});

// ---------------------------------------------------------------- config and the trainer

test('config: optim.name = "muon" and its keys have defaults, so existing presets and files stay valid', () => {
  const d = loadConfig({ preset: 'tiny' });
  assert.equal(d.optim.muon_lr, MUON_DEFAULTS.muon_lr);
  assert.equal(d.optim.muon_momentum, MUON_DEFAULTS.muon_momentum);
  assert.equal(d.optim.ns_steps, MUON_DEFAULTS.ns_steps);
  const m = loadConfig({ preset: 'tiny', set: ['optim.name=muon', 'optim.muon_lr=0.03', 'optim.ns_steps=4'] });
  assert.equal(m.optim.name, 'muon');
  assert.equal(m.optim.muon_lr, 0.03);
  assert.equal(m.optim.ns_steps, 4);
  assert.throws(() => loadConfig({ preset: 'tiny', set: ['optim.ns_steps=0'] }), (e: unknown) => e instanceof UserError && /optim\.ns_steps must be an integer from 1 to 50/.test(e.message));
  assert.throws(() => loadConfig({ preset: 'tiny', set: ['optim.muon_momentum=1'] }), (e: unknown) => e instanceof UserError && /optim\.muon_momentum/.test(e.message));
});

let work = '';
useTempCache('pocketlm-muon-', (dir) => (work = dir));

test('a muon run interrupted at a checkpoint and resumed logs the same losses as one run straight through', async () => {
  const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
  const config = (steps: number) => loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=300', 'model.d_model=32', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=16', 'model.ffn_hidden=48',
      'train.batch_size=4', 'train.grad_accum=1', 'train.time_seconds=0', `train.steps=${steps}`, 'train.eval_every=0', 'train.eval_batches=1',
      'train.log_every=1', 'train.checkpoint_minutes=0', 'train.checkpoint_every=5', 'train.sample_tokens=0', 'train.backend="wasm"', 'train.threads=1',
      'optim.name=muon', 'optim.warmup_steps=3', `data.paths=[${JSON.stringify(DATA)}]`,
    ],
  });
  const full = path.join(work, 'full');
  await train({ config: config(10), runDir: full, resume: false }, () => {}, () => false);
  const split = path.join(work, 'split');
  // stopped after step 5 (the cosine schedule is over the same 10 steps in both runs)
  let last = 0;
  await train({ config: config(10), runDir: split, resume: false }, (e) => { if (e.type === 'step') last = e.record.step; }, () => last >= 5);
  assert.equal(readManifest(split)!.step, 5);
  assert.equal(readManifest(split)!.optimizer, 'muon');
  await train({ config: config(10), runDir: split, resume: true }, () => {}, () => false);
  const a = readLog(path.join(full, 'log.jsonl')).map((r) => [r.step, r.loss, r.grad_norm]);
  const b = readLog(path.join(split, 'log.jsonl')).map((r) => [r.step, r.loss, r.grad_norm]);
  assert.equal(a.length, 10);
  assert.deepEqual(b, a);
  assert.ok((a[9][1] as number) < (a[0][1] as number), 'the loss fell');
});
