/**
 * The RWKV time-mixing op pair (rwkv.ts): gradients of every parameter and of the input against
 * float64 central differences (objective sum(R * y), so dL/dy = R), in both wkv forms; the
 * chunked form against the step-by-step recurrence (float64 to rounding, float32 to float32
 * precision) for several chunk lengths, T not a multiple of them included; strong decay over a
 * long sequence stays finite; and state-only decoding reproduces the full forward.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FloatArray } from '../../kernels/types.js';
import { dot, fillNormal, numericGradient, seededRng, type Rng } from '../../kernels/testing.js';
import {
  rwkvBackward, rwkvDecodeReset, rwkvDecodeState, rwkvDecodeStep, rwkvForward, stateFloats,
  type RwkvActivations, type RwkvDims, type RwkvWeights, type WkvForm,
} from './rwkv.js';

/** Float64Array or Float32Array (the storage precision under test). */
type Ctor = { new (n: number): FloatArray; from(src: ArrayLike<number>): FloatArray };
const WEIGHT_NAMES = ['mixR', 'mixK', 'mixV', 'mixG', 'wr', 'wk', 'wv', 'wg', 'decay', 'bonus', 'normW', 'wo'] as const;
const MATRICES = new Set<string>(['wr', 'wk', 'wv', 'wg', 'wo']);

/**
 * Weights far from any special point so every term matters: mixes in (0.1, 0.9) (neither x_t
 * nor x_(t-1) alone), decay params normal(-0.5, 0.8) (w from ~0.99 down to ~0.01), bonus and
 * norm weight away from 0 and 1.
 */
function makeWeights(C: number, rng: Rng, A: Ctor): RwkvWeights {
  const vec = (f: () => number): FloatArray => {
    const out = new A(C);
    for (let i = 0; i < C; i++) out[i] = f();
    return out;
  };
  const mat = (): FloatArray => fillNormal(new A(C * C), rng, 0.5);
  const normal = (std: number): number => fillNormal(new Float64Array(1), rng, std)[0]!;
  return {
    mixR: vec(() => 0.1 + 0.8 * rng()), mixK: vec(() => 0.1 + 0.8 * rng()), mixV: vec(() => 0.1 + 0.8 * rng()), mixG: vec(() => 0.1 + 0.8 * rng()),
    wr: mat(), wk: mat(), wv: mat(), wg: mat(),
    decay: vec(() => normal(0.8) - 0.5),
    bonus: vec(() => normal(0.7)),
    normW: vec(() => 1 + normal(0.3)),
    wo: mat(),
  };
}

function copyWeights(p: RwkvWeights, A: Ctor): RwkvWeights {
  const out = {} as RwkvWeights;
  for (const n of WEIGHT_NAMES) out[n] = A.from(p[n]);
  return out;
}

function zeroWeights(C: number, A: Ctor): RwkvWeights {
  const out = {} as RwkvWeights;
  for (const n of WEIGHT_NAMES) out[n] = new A(MATRICES.has(n) ? C * C : C);
  return out;
}

function makeActs(d: RwkvDims, form: WkvForm, x: FloatArray, A: Ctor): RwkvActivations {
  const NC = d.B * d.T * d.C;
  return {
    x, rho: new A(NC), g: new A(NC), k: new A(NC), v: new A(NC), o: new A(NC), rstd: new A(d.B * d.T * d.H),
    nrm: new A(NC), y: new A(NC), states: new A(stateFloats(d, form)),
  };
}

function assertGrad(label: string, analytic: ArrayLike<number>, numeric: Float64Array): void {
  let maxNum = 0, maxDiff = 0;
  for (let i = 0; i < numeric.length; i++) {
    maxNum = Math.max(maxNum, Math.abs(numeric[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(numeric[i]! - analytic[i]!));
  }
  assert.ok(maxNum > 1e-6, `${label}: numeric gradient ~0, vacuous check`);
  assert.ok(maxDiff <= 1e-6 * maxNum + 1e-12, `${label}: max error ${maxDiff.toExponential(3)} vs max |grad| ${maxNum.toExponential(3)}`);
}

/** max |a - b| <= tol * max |b| (b must not be all zero). */
function assertClose(label: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  assert.equal(a.length, b.length, `${label}: lengths`);
  let scale = 0, diff = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    const e = Math.abs(a[i]! - b[i]!);
    diff = Number.isNaN(e) ? Infinity : Math.max(diff, e);
  }
  assert.ok(scale > 0, `${label}: reference is all zero`);
  assert.ok(diff <= tol * scale, `${label}: max |diff| ${diff.toExponential(3)} > ${tol} x max |ref| ${scale.toExponential(3)}`);
}

interface Run { y: FloatArray; dx: FloatArray; g: RwkvWeights }

/** Forward and backward of the whole op for dL/dy = R. */
function run(d: RwkvDims, p: RwkvWeights, x: FloatArray, R: FloatArray, form: WkvForm, A: Ctor): Run {
  const a = makeActs(d, form, x, A);
  rwkvForward(d, p, a, form);
  const dx = new A(x.length);
  const g = zeroWeights(d.C, A);
  rwkvBackward(d, p, a, form, R, dx, g);
  return { y: a.y, dx, g };
}

const FORMS: WkvForm[] = [{ kind: 'recurrent' }, { kind: 'chunked', chunk: 3 }];

for (const form of FORMS) {
  test(`rwkv time mixing (${form.kind === 'recurrent' ? 'recurrent' : `chunked, L ${form.chunk}`}): input and every parameter gradient match float64 finite differences`, () => {
    const rng = seededRng(11);
    const d: RwkvDims = { B: 2, T: 7, C: 8, H: 2, eps: 1e-5 };
    const N = d.B * d.T;
    const p = makeWeights(d.C, rng, Float64Array);
    const x = fillNormal(new Float64Array(N * d.C), rng);
    const R = fillNormal(new Float64Array(N * d.C), rng);
    const { dx, g } = run(d, p, x, R, form, Float64Array);
    const a = makeActs(d, form, x, Float64Array);
    const f = (): number => { rwkvForward(d, p, a, form); return dot(R, a.y); };
    assertGrad('dx', dx, numericGradient(x, f));
    for (const n of WEIGHT_NAMES) assertGrad(`d${n}`, g[n], numericGradient(p[n] as Float64Array, f));
    // causality: an output gradient only at row t of sequence 0 never reaches later rows or sequence 1
    const t = 3;
    const R1 = new Float64Array(N * d.C);
    for (let j = 0; j < d.C; j++) R1[t * d.C + j] = 1;
    const one = run(d, p, x, R1, form, Float64Array);
    for (let r = t + 1; r < N; r++) for (let j = 0; j < d.C; j++) assert.ok(one.dx[r * d.C + j] === 0, `dx row ${r}`); // === : -0 counts as 0
    let reached = 0;
    for (let j = 0; j < d.C; j++) reached += Math.abs(one.dx[(t - 1) * d.C + j]!);
    assert.ok(reached > 0, 'the previous row gets a gradient (token shift and state)');
  });
}

test('rwkv chunked form equals the recurrence: float64 to rounding, float32 to float32 precision, for chunk lengths 1, 2, 4, 5, 13, 16 at T = 13', () => {
  const rng = seededRng(12);
  const d: RwkvDims = { B: 2, T: 13, C: 12, H: 3, eps: 1e-5 };
  const N = d.B * d.T;
  const p = makeWeights(d.C, rng, Float64Array);
  const x = fillNormal(new Float64Array(N * d.C), rng);
  const R = fillNormal(new Float64Array(N * d.C), rng);
  const ref = run(d, p, x, R, { kind: 'recurrent' }, Float64Array);
  const p32 = copyWeights(p, Float32Array);
  for (const chunk of [1, 2, 4, 5, 13, 16]) {
    const form: WkvForm = { kind: 'chunked', chunk };
    const c64 = run(d, p, x, R, form, Float64Array);
    assertClose(`f64 L ${chunk} y`, c64.y, ref.y, 1e-12);
    assertClose(`f64 L ${chunk} dx`, c64.dx, ref.dx, 1e-12);
    for (const n of WEIGHT_NAMES) assertClose(`f64 L ${chunk} d${n}`, c64.g[n], ref.g[n], 1e-12);
    // float32 storage everywhere (weights, inputs, activations, gradients) against the float64 oracle
    const c32 = run(d, p32, Float32Array.from(x), Float32Array.from(R), form, Float32Array);
    assertClose(`f32 L ${chunk} y`, c32.y, ref.y, 2e-5);
    assertClose(`f32 L ${chunk} dx`, c32.dx, ref.dx, 2e-5);
    for (const n of WEIGHT_NAMES) assertClose(`f32 L ${chunk} d${n}`, c32.g[n], ref.g[n], 2e-5);
  }
});

test('rwkv chunked form with strong decay over a long sequence: finite, and equal to the recurrence in float32', () => {
  const rng = seededRng(13);
  const d: RwkvDims = { B: 1, T: 2048, C: 8, H: 2, eps: 1e-5 };
  const N = d.B * d.T;
  const p = makeWeights(d.C, rng, Float64Array);
  // decay params 4 (w = exp(-54.6): w^L underflows float32 and float64 for L = 64) next to
  // -6 (w = 0.9975: the state keeps ~400 tokens); a factorised w^(-s) would overflow at s = 2
  for (let c = 0; c < d.C; c++) p.decay[c] = c % 2 === 0 ? 4 : -6;
  const x = fillNormal(new Float64Array(N * d.C), rng, 3);
  const R = fillNormal(new Float64Array(N * d.C), rng);
  const ref = run(d, p, x, R, { kind: 'recurrent' }, Float64Array);
  const c32 = run(d, copyWeights(p, Float32Array), Float32Array.from(x), Float32Array.from(R), { kind: 'chunked', chunk: 64 }, Float32Array);
  const outputs: [string, FloatArray][] = [['y', c32.y], ['dx', c32.dx]];
  for (const n of WEIGHT_NAMES) outputs.push([`d${n}`, c32.g[n]]);
  for (const [name, arr] of outputs) {
    for (let i = 0; i < arr.length; i++) assert.ok(Number.isFinite(arr[i]), `${name}[${i}] = ${arr[i]}`);
  }
  assertClose('y', c32.y, ref.y, 1e-4);
  assertClose('dx', c32.dx, ref.dx, 1e-4);
  for (const n of WEIGHT_NAMES) assertClose(`d${n}`, c32.g[n], ref.g[n], 1e-4);
});

test('rwkv decoding one token at a time from the state alone equals the full forward, row by row, and reset forgets', () => {
  const rng = seededRng(14);
  const d: RwkvDims = { B: 2, T: 9, C: 8, H: 2, eps: 1e-5 };
  const { B, T, C } = d;
  const p = makeWeights(C, rng, Float64Array);
  const x = fillNormal(new Float64Array(B * T * C), rng);
  const form: WkvForm = { kind: 'chunked', chunk: 4 };
  const a = makeActs(d, form, x, Float64Array);
  rwkvForward(d, p, a, form);
  const s = rwkvDecodeState(B, C, d.H);
  const xin = new Float64Array(B * C);
  const yout = new Float64Array(B * C);
  const step = (t: number): void => {
    for (let b = 0; b < B; b++) xin.set(x.subarray((b * T + t) * C, (b * T + t + 1) * C), b * C);
    rwkvDecodeStep(d, p, s, xin, yout);
  };
  for (let t = 0; t < T; t++) {
    step(t);
    for (let b = 0; b < B; b++) {
      const want = a.y.subarray((b * T + t) * C, (b * T + t + 1) * C);
      assertClose(`row ${b} position ${t}`, yout.subarray(b * C, (b + 1) * C), want, 1e-12);
    }
  }
  // the state is O(H D^2 + C) per row, whatever T
  assert.equal(s.S.length + s.xprev.length, B * (d.H * (C / d.H) ** 2 + C));
  // resetting row 1 only: it restarts at position 0 while row 0 would continue
  rwkvDecodeReset(s, 1);
  for (let b = 0; b < B; b++) xin.set(x.subarray((b * T) * C, (b * T + 1) * C), b * C);
  rwkvDecodeStep(d, p, s, xin, yout);
  assertClose('row 1 after reset', yout.subarray(C, 2 * C), a.y.subarray(T * C, (T + 1) * C), 1e-12);
  let differs = 0;
  for (let j = 0; j < C; j++) differs += Math.abs(yout[j]! - a.y[j]!);
  assert.ok(differs > 1e-6, 'row 0 kept its context (its output is not the position-0 one)');
});

for (const form of [{ kind: 'recurrent' }, { kind: 'chunked', chunk: 3 }] as WkvForm[]) {
  test(`rwkv prefill (${form.kind}): a prompt through the full forward, then decoding from the state it leaves, equals the full forward over the whole sequence`, () => {
    const rng = seededRng(15);
    const d: RwkvDims = { B: 2, T: 11, C: 8, H: 2, eps: 1e-5 };
    const { B, T, C } = d;
    const P = 7; // prompt length: not a multiple of the chunk
    const p = makeWeights(C, rng, Float64Array);
    const x = fillNormal(new Float64Array(B * T * C), rng);
    const full = makeActs(d, { kind: 'recurrent' }, x, Float64Array);
    rwkvForward(d, p, full, { kind: 'recurrent' });
    const dp: RwkvDims = { ...d, T: P };
    const prompt = new Float64Array(B * P * C);
    for (let b = 0; b < B; b++) prompt.set(x.subarray(b * T * C, (b * T + P) * C), b * P * C);
    const s = rwkvDecodeState(B, C, d.H);
    s.S.fill(NaN); // prefill must overwrite the whole state, not add to it
    s.xprev.fill(NaN);
    const pa = makeActs(dp, form, prompt, Float64Array);
    rwkvForward(dp, p, pa, form, s);
    const xin = new Float64Array(B * C);
    const yout = new Float64Array(B * C);
    for (let t = P; t < T; t++) {
      for (let b = 0; b < B; b++) xin.set(x.subarray((b * T + t) * C, (b * T + t + 1) * C), b * C);
      rwkvDecodeStep(d, p, s, xin, yout);
      for (let b = 0; b < B; b++) {
        assertClose(`row ${b} position ${t}`, yout.subarray(b * C, (b + 1) * C), full.y.subarray((b * T + t) * C, (b * T + t + 1) * C), 1e-12);
      }
    }
  });
}
