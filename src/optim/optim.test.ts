import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import type { FloatArray } from '../kernels/types.js';
import { UserError } from '../util/errors.js';
import { clipGradNorm, createOptimizer, type OptimConfig, type ParamTensor } from './index.js';
import { decayRuns } from './runs.js';

const kernels = createJsKernels();

// A layout like the model's: a decayed matrix, an undecayed norm, one float of padding
// (index 6, never touched), then another decayed matrix.
const TENSORS: ParamTensor[] = [
  { name: 'w1', offset: 0, size: 4, shape: [2, 2], decay: true },
  { name: 'norm', offset: 4, size: 2, shape: [2], decay: false },
  { name: 'w2', offset: 7, size: 3, shape: [3], decay: true },
];
const N = 10;
const DECAY = [true, true, true, true, false, false, false, true, true, true];
const INSIDE = [true, true, true, true, true, true, false, true, true, true];
const P0 = [0.5, -0.3, 0.8, -1.2, 1.0, 0.9, 7.0, 0.05, -0.6, 0.25];
// Gradients for three steps; the padding slot has a gradient to prove it is ignored.
const GRADS = [
  [0.1, -0.2, 0.0, 0.4, -0.05, 0.3, 9.0, 1.5, -0.7, 0.01],
  [-0.3, 0.1, 0.2, 0.5, 0.02, -0.1, 9.0, -0.4, 0.6, 0.0],
  [0.2, 0.2, -0.1, -0.3, 0.07, 0.0, 9.0, 0.9, -0.2, -0.05],
];
const LRS = [0.01, 0.02, 0.015];

function cfg(over: Partial<OptimConfig>): OptimConfig {
  return { name: 'adamw', lr: 1e-3, min_lr: 0, warmup_steps: 0, schedule: 'constant', beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, ...over };
}

function setup(c: OptimConfig, dtype: 'f32' | 'f64' = 'f64') {
  const arena = new HeapArena(dtype);
  const params = arena.floats(N);
  const grads = arena.floats(N);
  params.set(P0);
  const opt = createOptimizer(c, kernels, arena, params, grads, TENSORS);
  return { arena, params, grads, opt };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (err ${err})`);
  }
}

test('decayRuns merges contiguous tensors with the same flag and splits at gaps', () => {
  const runs = decayRuns([
    { name: 'a', offset: 0, size: 3, shape: [3], decay: true },
    { name: 'b', offset: 3, size: 2, shape: [2], decay: true },
    { name: 'c', offset: 5, size: 1, shape: [1], decay: false },
    { name: 'd', offset: 8, size: 2, shape: [2], decay: false },
  ], 10);
  assert.deepEqual(runs, [
    { offset: 0, size: 5, decay: true },
    { offset: 5, size: 1, decay: false },
    { offset: 8, size: 2, decay: false },
  ]);
  assert.throws(() => decayRuns([{ name: 'x', offset: 8, size: 5, shape: [5], decay: true }], 10), /outside/);
  assert.throws(() => decayRuns([
    { name: 'x', offset: 0, size: 5, shape: [5], decay: true },
    { name: 'y', offset: 4, size: 2, shape: [2], decay: true },
  ], 10), /overlaps/);
});

test('AdamW matches a hand-computed float64 reference for 3 steps, with decay masking', () => {
  const c = cfg({ name: 'adamw', beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 });
  const { params, grads, opt } = setup(c);
  const p = [...P0];
  const m = new Array(N).fill(0);
  const v = new Array(N).fill(0);
  for (let s = 0; s < 3; s++) {
    grads.set(GRADS[s]);
    opt.step(LRS[s]);
    const t = s + 1;
    for (let i = 0; i < N; i++) {
      if (!INSIDE[i]) continue;
      const g = GRADS[s][i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.95 * v[i] + 0.05 * g * g;
      const mhat = m[i] / (1 - 0.9 ** t);
      const vhat = v[i] / (1 - 0.95 ** t);
      const wd = DECAY[i] ? 0.1 : 0;
      p[i] = p[i] - LRS[s] * (mhat / (Math.sqrt(vhat) + 1e-8) + wd * p[i]);
    }
    assertClose(params, p, 1e-12, `adamw step ${t} params`);
    assertClose(opt.state().m, m, 1e-12, `adamw step ${t} m`);
    assertClose(opt.state().v, v, 1e-12, `adamw step ${t} v`);
  }
  assert.equal(opt.stepCount, 3);
  assert.equal(params[6], 7.0, 'padding untouched');
});

test('AdamW weight decay shrinks only decayed tensors when the gradient is zero', () => {
  const { params, opt } = setup(cfg({ name: 'adamw', weight_decay: 0.5 }));
  opt.step(0.1); // grads are all zero: m = v = 0, the Adam term is 0
  for (let i = 0; i < N; i++) {
    const expected = DECAY[i] ? P0[i] * (1 - 0.1 * 0.5) : P0[i];
    assert.ok(Math.abs(params[i] - expected) < 1e-15, `p[${i}] = ${params[i]}, expected ${expected}`);
  }
});

test('Lion matches a hand-computed float64 reference for 3 steps, with decay masking', () => {
  const c = cfg({ name: 'lion', beta1: 0.9, beta2: 0.99, weight_decay: 0.3 });
  const { params, grads, opt } = setup(c);
  const p = [...P0];
  const m = new Array(N).fill(0);
  for (let s = 0; s < 3; s++) {
    grads.set(GRADS[s]);
    opt.step(LRS[s]);
    for (let i = 0; i < N; i++) {
      if (!INSIDE[i]) continue;
      const g = GRADS[s][i];
      const c = 0.9 * m[i] + 0.1 * g;
      const u = c > 0 ? 1 : c < 0 ? -1 : 0;
      const wd = DECAY[i] ? 0.3 : 0;
      p[i] = p[i] - LRS[s] * (u + wd * p[i]);
      m[i] = 0.99 * m[i] + 0.01 * g;
    }
    assertClose(params, p, 1e-12, `lion step ${s + 1} params`);
    assertClose(opt.state().m, m, 1e-12, `lion step ${s + 1} m`);
  }
});

test('Lion moves every coordinate by exactly lr (no weight decay)', () => {
  const { params, grads, opt } = setup(cfg({ name: 'lion', weight_decay: 0 }));
  for (let s = 0; s < 3; s++) {
    const before = Float64Array.from(params);
    grads.set(GRADS[s].map((g) => (g === 0 ? 1e-3 : g))); // a zero interpolant would give sign 0
    opt.step(LRS[s]);
    for (let i = 0; i < N; i++) {
      if (!INSIDE[i]) continue;
      assert.ok(Math.abs(Math.abs(params[i] - before[i]) - LRS[s]) < 1e-12, `step ${s} coord ${i} moved ${params[i] - before[i]}`);
    }
  }
});

/** Plain float64 Schedule-Free AdamW (Defazio et al. 2024), written from the paper. */
function sfReference(steps: number, b1: number, b2: number, eps: number, wdVal: number) {
  const z = [...P0];
  const x = [...P0];
  const y = [...P0];
  const v = new Array(N).fill(0);
  let sumSq = 0;
  for (let s = 0; s < steps; s++) {
    const lr = LRS[s];
    const t = s + 1;
    sumSq += lr * lr;
    const c = (lr * lr) / sumSq;
    for (let i = 0; i < N; i++) {
      if (!INSIDE[i]) continue;
      const g = GRADS[s][i]; // the gradient "at y": the test supplies it
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const wd = DECAY[i] ? wdVal : 0;
      z[i] = z[i] - lr * (g / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps) + wd * y[i]);
      x[i] = (1 - c) * x[i] + c * z[i];
      y[i] = (1 - b1) * z[i] + b1 * x[i];
    }
  }
  return { z, x, y, v, sumSq };
}

test('Schedule-Free AdamW matches a hand-computed float64 reference for 3 steps', () => {
  const { params, grads, opt } = setup(cfg({ name: 'sfadamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.2 }));
  for (let s = 0; s < 3; s++) {
    grads.set(GRADS[s]);
    opt.step(LRS[s]);
    const ref = sfReference(s + 1, 0.9, 0.999, 1e-8, 0.2);
    assertClose(params, ref.y, 1e-12, `sf step ${s + 1} y`);
    assertClose(opt.state().z, ref.z, 1e-12, `sf step ${s + 1} z`);
    assertClose(opt.state().x, ref.x, 1e-12, `sf step ${s + 1} x`);
    assertClose(opt.state().v, ref.v, 1e-12, `sf step ${s + 1} v`);
    assert.ok(Math.abs(opt.scalars().lr_squared_sum - ref.sumSq) < 1e-18);
  }
});

test('Schedule-Free evalParams gives x and trainParams restores y bit for bit (float32)', () => {
  const { params, grads, opt } = setup(cfg({ name: 'sfadamw', weight_decay: 0.1 }), 'f32');
  opt.evalParams(); // before any step: x = y, nothing changes
  assert.deepEqual([...params], [...Float32Array.from(P0)]);
  opt.trainParams();
  for (let s = 0; s < 3; s++) {
    grads.set(GRADS[s]);
    opt.step(LRS[s]);
  }
  const y = Float32Array.from(params);
  const x = Float32Array.from(opt.state().x);
  assert.notDeepEqual([...x], [...y], 'x and y differ after training');
  opt.evalParams();
  opt.evalParams(); // idempotent
  for (let i = 0; i < N; i++) if (INSIDE[i]) assert.equal(params[i], x[i], `eval params[${i}] is x`);
  assert.throws(() => opt.step(0.01), /trainParams/);
  opt.trainParams();
  opt.trainParams();
  assert.deepEqual([...params], [...y]);
});

test('Schedule-Free resumes exactly from a checkpoint taken in eval mode', () => {
  const c = cfg({ name: 'sfadamw', weight_decay: 0.1 });
  const a = setup(c, 'f32');
  for (let s = 0; s < 2; s++) { a.grads.set(GRADS[s]); a.opt.step(LRS[s]); }
  // checkpoint: eval mode, weights = x, plus state and scalars
  a.opt.evalParams();
  const weights = Float32Array.from(a.params);
  const state = Object.fromEntries(Object.entries(a.opt.state()).map(([k, v]) => [k, Float32Array.from(v)]));
  const scalars = { ...a.opt.scalars() };
  a.opt.trainParams();
  a.grads.set(GRADS[2]);
  a.opt.step(LRS[2]);

  const b = setup(c, 'f32');
  b.params.set(weights);
  for (const [k, buf] of Object.entries(b.opt.state())) buf.set(state[k]);
  b.opt.loadScalars(scalars);
  b.opt.trainParams();
  b.grads.set(GRADS[2]);
  b.opt.step(LRS[2]);
  assert.deepEqual([...b.params], [...a.params]);
  assert.deepEqual([...b.opt.state().x], [...a.opt.state().x]);
  assert.equal(b.opt.stepCount, 3);
});

test('loadScalars refuses missing or invalid scalars with a UserError', () => {
  const { opt } = setup(cfg({ name: 'sfadamw' }));
  assert.throws(() => opt.loadScalars({ step: 3 }), (e: unknown) => e instanceof UserError && /lr_squared_sum/.test(e.message));
  const adam = setup(cfg({ name: 'adamw' })).opt;
  assert.throws(() => adam.loadScalars({ step: -1 }), UserError);
  adam.loadScalars({ step: 12 });
  assert.equal(adam.stepCount, 12);
});

test('clipGradNorm returns the pre-clip norm and scales only when above the limit', () => {
  const arena = new HeapArena('f64');
  const g = arena.floats(4);
  g.set([3, 4, 0, 0]);
  assert.equal(clipGradNorm(kernels, g, 10), 5);
  assert.deepEqual([...g], [3, 4, 0, 0]);
  assert.equal(clipGradNorm(kernels, g, 1), 5);
  assertClose(g, [0.6, 0.8, 0, 0], 1e-15, 'clipped');
  assert.ok(Math.abs(Math.sqrt(kernels.sumSquares(g, 4)) - 1) < 1e-15);
  g.set([3, 4, 0, 0]);
  assert.equal(clipGradNorm(kernels, g, 0), 5, 'maxNorm 0 disables clipping');
  assert.deepEqual([...g], [3, 4, 0, 0]);
  g[2] = NaN;
  assert.ok(Number.isNaN(clipGradNorm(kernels, g, 1)));
  assert.equal(g[0], 3, 'non-finite norm leaves grads alone');
});

// ---------------------------------------------------------------- convergence
// Least squares: minimize 0.5/R * ||A w - b||^2 over w (12 unknowns, 40 rows, well
// conditioned), with a known solution w*. Each optimizer must get close to w*.
function leastSquares() {
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const R = 40, C = 12;
  const A = Array.from({ length: R * C }, rand);
  const wStar = Array.from({ length: C }, rand);
  const b = Array.from({ length: R }, (_, r) => wStar.reduce((acc, w, c) => acc + A[r * C + c] * w, 0));
  const loss = (w: ArrayLike<number>) => {
    let l = 0;
    for (let r = 0; r < R; r++) {
      let e = -b[r];
      for (let c = 0; c < C; c++) e += A[r * C + c] * w[c];
      l += 0.5 * e * e;
    }
    return l / R;
  };
  const grad = (w: ArrayLike<number>, g: FloatArray) => {
    g.fill(0);
    for (let r = 0; r < R; r++) {
      let e = -b[r];
      for (let c = 0; c < C; c++) e += A[r * C + c] * w[c];
      for (let c = 0; c < C; c++) g[c] += (A[r * C + c] * e) / R;
    }
  };
  return { C, loss, grad, wStar };
}

for (const name of ['adamw', 'lion', 'sfadamw'] as const) {
  test(`${name} converges on a least-squares problem`, () => {
    const prob = leastSquares();
    const arena = new HeapArena('f64');
    const params = arena.floats(prob.C);
    const grads = arena.floats(prob.C);
    const tensors: ParamTensor[] = [{ name: 'w', offset: 0, size: prob.C, shape: [prob.C], decay: true }];
    const c = cfg({ name, weight_decay: 0, beta1: 0.9, beta2: name === 'lion' ? 0.99 : 0.999 });
    const opt = createOptimizer(c, kernels, arena, params, grads, tensors);
    const initial = prob.loss(params);
    const steps = 2000;
    const peak = name === 'lion' ? 0.01 : 0.05;
    for (let t = 0; t < steps; t++) {
      const warm = Math.min(1, (t + 1) / 50);
      // Schedule-Free needs no decay; the others get a cosine to 1% so they settle.
      const lr = name === 'sfadamw' ? peak * warm : peak * warm * (0.01 + 0.99 * 0.5 * (1 + Math.cos((Math.PI * t) / steps)));
      prob.grad(params, grads);
      opt.step(lr);
    }
    opt.evalParams();
    const final = prob.loss(params);
    const dist = Math.sqrt(prob.wStar.reduce((acc, w, i) => acc + (params[i] - w) ** 2, 0));
    assert.ok(final < initial * 1e-5, `${name}: loss ${initial} -> ${final}`);
    assert.ok(dist < 5e-3, `${name}: distance to the solution ${dist}`);
  });
}
