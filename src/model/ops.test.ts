/**
 * Gradient checks of each op composition on its own, in float64 on the js oracle:
 * attention block, MLP block, RMSNorm + residual, embedding, LM head + loss.
 * Objective f = sum(R * y) for a fixed random R, so dL/dy = R. Tolerance: max |analytic -
 * numeric| <= 1e-6 * max |numeric| (+1e-12): a wrong factor or a missing term is >= 1e-2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels } from '../kernels/js/index.js';
import { dot, fillNormal, numericGradient, seededRng } from '../kernels/testing.js';
import { ropeTables } from '../kernels/types.js';
import { AttentionPlan, attentionBackward, attentionBackwardUnfused, attentionForward, attentionForwardUnfused } from './mixers/attention.js';
import { linearBackward, linearForward, lmHeadBackward, lmHeadForward } from './linear.js';
import { mlpBackward, mlpForward, type MlpPlan } from './mlp.js';

const k = createJsKernels();
const f64 = (n: number): Float64Array => new Float64Array(n);

function assertGrad(label: string, analytic: ArrayLike<number>, numeric: Float64Array): void {
  let maxNum = 0;
  let maxDiff = 0;
  for (let i = 0; i < numeric.length; i++) {
    maxNum = Math.max(maxNum, Math.abs(numeric[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(numeric[i]! - analytic[i]!));
  }
  assert.ok(maxNum > 1e-6, `${label}: numeric gradient ~0, vacuous check`);
  assert.ok(maxDiff <= 1e-6 * maxNum + 1e-12, `${label}: max error ${maxDiff.toExponential(3)} vs max |grad| ${maxNum.toExponential(3)}`);
}

function attentionSetup(block: number, seed: number, shape: { B: number; T: number; C: number; H: number } = { B: 2, T: 5, C: 8, H: 2 }) {
  const rng = seededRng(seed);
  const { B, T, C, H } = shape;
  const D = C / H, N = B * T;
  const cos = f64(T * D / 2), sin = f64(T * D / 2);
  ropeTables(cos, sin, T, D, 10000);
  const datty = f64(N * C);
  const buf = {
    x: fillNormal(f64(N * C), rng), qkv: f64(N * 3 * C), lse: f64(B * H * T), att: f64(B * H * T * T), atty: f64(N * C), y: f64(N * C),
    wqkv: fillNormal(f64(C * 3 * C), rng, 0.5), wo: fillNormal(f64(C * C), rng, 0.5), cos, sin,
    dy: fillNormal(f64(N * C), rng), dx: datty, dwqkv: f64(C * 3 * C), dwo: f64(C * C),
    datty, dqkv: f64(N * 3 * C), datt: f64(B * H * T * T),
  };
  // garbage above the diagonal must never matter (the blocked products leave it unwritten)
  buf.att.fill(NaN);
  buf.datt.fill(NaN);
  return { B, T, C, buf, p: new AttentionPlan({ maxB: B, T, C, H, block }, buf) };
}

type AttnPass = { fwd: typeof attentionForward; bwd: typeof attentionBackward };
const FUSED: AttnPass = { fwd: attentionForward, bwd: attentionBackward };
const UNFUSED: AttnPass = { fwd: attentionForwardUnfused, bwd: attentionBackwardUnfused };

/** Gradients of sum(R * y) by finite differences, and causality of dx, for one attention path. */
function checkAttentionGrads(pass: AttnPass, block: number, shape?: { B: number; T: number; C: number; H: number }): void {
  const { B, T, C, buf, p } = attentionSetup(block, 1, shape);
  const R = Float64Array.from(buf.dy);
  const f = (): number => { pass.fwd(k, p, B); return dot(R, buf.y); };
  f();
  pass.bwd(k, p, B, 1);
  const dx = Float64Array.from(buf.dx);
  assertGrad('attention dx', dx, numericGradient(buf.x, f));
  assertGrad('attention dwqkv', buf.dwqkv, numericGradient(buf.wqkv, f));
  assertGrad('attention dwo', buf.dwo, numericGradient(buf.wo, f));
  // causality inside the op: an output gradient only at row t never reaches rows > t
  const t = 2;
  buf.dy.fill(0);
  for (let j = 0; j < C; j++) buf.dy[t * C + j] = 1;
  f();
  pass.bwd(k, p, B, 1);
  for (let r = t + 1; r < T; r++) for (let j = 0; j < C; j++) assert.equal(buf.dx[r * C + j], 0, `row ${r}`);
}

// block 5 = the full square; 2 and 3 split T = 5 into uneven causal blocks; 1 = a row per block
for (const block of [5, 2, 3, 1]) {
  test(`unfused attention op pair (fused QKV, RoPE, stored causal softmax, out-proj; causal block ${block}) matches finite differences`, () => {
    const { B, T, buf, p } = attentionSetup(block, 1);
    checkAttentionGrads(UNFUSED, block);
    // blocked products give the full-square results (up to rounding)
    const full = attentionSetup(T, 1);
    attentionForwardUnfused(k, full.p, B);
    attentionBackwardUnfused(k, full.p, B, 1);
    attentionForwardUnfused(k, p, B);
    attentionBackwardUnfused(k, p, B, 1);
    for (let i = 0; i < buf.y.length; i++) assert.ok(Math.abs(buf.y[i]! - full.buf.y[i]!) < 1e-12, `y[${i}]`);
    for (let i = 0; i < buf.dx.length; i++) assert.ok(Math.abs(buf.dx[i]! - full.buf.dx[i]!) < 1e-12, `dx[${i}]`);
  });
}

// T = 5 (one key tile of the js oracle), T = 37 (three tiles of 16, the last one partial)
for (const shape of [{ B: 2, T: 5, C: 8, H: 2 }, { B: 1, T: 37, C: 8, H: 2 }]) {
  test(`fused attention op pair (online softmax, lse only) matches finite differences and the unfused op (T ${shape.T})`, () => {
    checkAttentionGrads(FUSED, shape.T, shape);
    const a = attentionSetup(shape.T, 3, shape);
    const b = attentionSetup(shape.T, 3, shape);
    attentionForward(k, a.p, a.B);
    attentionBackward(k, a.p, a.B, 0.5);
    attentionForwardUnfused(k, b.p, b.B);
    attentionBackwardUnfused(k, b.p, b.B, 0.5);
    assert.ok(a.buf.att.every((v) => Number.isNaN(v)), 'the fused path must not touch the T x T buffer');
    const same = (x: Float64Array, y: Float64Array, what: string): void => {
      let scale = 0;
      for (const v of y) scale = Math.max(scale, Math.abs(v));
      assert.ok(scale > 0, what);
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-12 * scale, `${what}[${i}]: ${x[i]} vs ${y[i]}`);
    };
    same(a.buf.y, b.buf.y, 'y');
    same(a.buf.dx, b.buf.dx, 'dx');
    same(a.buf.dwqkv, b.buf.dwqkv, 'dwqkv');
    same(a.buf.dwo, b.buf.dwo, 'dwo');
    // lse is the log of the softmax's normaliser: exp(scale q.k - lse) are the unfused probabilities
    const { T, C, H } = shape;
    const D = C / H;
    for (let r = 0; r < a.buf.lse.length; r++) {
      const bh = Math.floor(r / T), t = r % T, bi = Math.floor(bh / H), h = bh % H;
      for (let j = 0; j <= t; j++) {
        let qk = 0;
        for (let d = 0; d < D; d++) qk += a.buf.qkv[(bi * T + t) * 3 * C + h * D + d]! * a.buf.qkv[(bi * T + j) * 3 * C + C + h * D + d]!;
        const pr = Math.exp(qk / Math.sqrt(D) - a.buf.lse[r]!);
        assert.ok(Math.abs(pr - b.buf.att[r * T + j]!) < 1e-12, `probability ${r}, ${j} from lse`);
      }
    }
  });
}

for (const recompute of [true, false]) {
  test(`MLP op pair (fused gate|up, SwiGLU, down-proj; s ${recompute ? 'recomputed in backward' : 'kept'}) matches finite differences`, () => {
    const rng = seededRng(2);
    const B = 2, T = 3, C = 6, F = 10, N = B * T;
    const s = f64(N * F);
    const x = fillNormal(f64(N * C), rng);
    const wGateUp = fillNormal(f64(C * 2 * F), rng, 0.7);
    const wDown = fillNormal(f64(F * C), rng, 0.7);
    const p: MlpPlan = {
      dims: { maxB: B, T, C, F },
      buf: {
        x, h: f64(N * 2 * F), s, y: f64(N * C), wGateUp, wDown,
        dy: fillNormal(f64(N * C), rng), dx: f64(N * C), dwGateUp: f64(C * 2 * F), dwDown: f64(F * C),
        // recomputing, s is scratch shared with its gradient; kept, it has its own buffer
        dh: f64(N * 2 * F), ds: recompute ? s : f64(N * F),
      },
      recompute,
    };
    const R = Float64Array.from(p.buf.dy);
    const f = (): number => { mlpForward(k, p, B); return dot(R, p.buf.y); };
    f();
    if (recompute) s.fill(NaN); // backward must not rely on s surviving the forward
    else p.buf.ds.fill(NaN); // nor on the gradient scratch holding anything
    mlpBackward(k, p, B, 1);
    const dx = Float64Array.from(p.buf.dx);
    assertGrad('mlp dx', dx, numericGradient(x, f));
    assertGrad('mlp dwGateUp', p.buf.dwGateUp, numericGradient(wGateUp, f));
    assertGrad('mlp dwDown', p.buf.dwDown, numericGradient(wDown, f));
  });
}

test('RMSNorm + residual (out = x + norm(x) W, the model\'s plumbing: dres accumulated by the norm backward)', () => {
  const rng = seededRng(3);
  const N = 4, C = 6;
  const x = fillNormal(f64(N * C), rng, 0.05); // small activations: 1/rms ~ 20, a lost factor shows
  const w = fillNormal(f64(C), rng, 0.3).map((v) => 1 + v);
  const W = fillNormal(f64(C * C), rng, 0.5);
  const ln = f64(N * C), rstd = f64(N), y = f64(N * C), out = f64(N * C);
  const R = fillNormal(f64(N * C), rng);
  const f = (): number => {
    k.rmsnormForward(ln, rstd, x, w, N, C, 1e-5);
    linearForward(k, y, ln, W, N, C, C);
    k.add(out, x, y, N * C);
    return dot(R, out);
  };
  f();
  const dres = Float64Array.from(R); // the residual path passes dout through unchanged
  const dln = f64(N * C), dW = f64(C * C), dw = f64(C);
  linearBackward(k, dln, dW, R, ln, W, N, C, C);
  k.rmsnormBackward(dres, dw, dln, x, w, rstd, N, C);
  assertGrad('norm+residual dx', dres, numericGradient(x, f));
  assertGrad('norm+residual dnorm_weight', dw, numericGradient(w, f));
  assertGrad('norm+residual dW', dW, numericGradient(W, f));
});

test('embedding with repeated tokens: the table gradient accumulates every occurrence', () => {
  const rng = seededRng(4);
  const V = 5, C = 3, N = 7;
  const tokens = Int32Array.from([1, 3, 1, 0, 1, 4, 3]);
  const table = fillNormal(f64(V * C), rng);
  const out = f64(N * C);
  const R = fillNormal(f64(N * C), rng);
  const f = (): number => { k.embeddingForward(out, tokens, table, N, C); return dot(R, out); };
  const dtable = f64(V * C);
  k.embeddingBackward(dtable, R, tokens, N, C);
  assertGrad('embedding dtable', dtable, numericGradient(table, f));
  for (let j = 0; j < C; j++) assert.equal(dtable[2 * C + j], 0, 'unused token row');
});

test('LM head + mean cross-entropy (fused dlogits in place, loss scale as gemm alpha)', () => {
  const rng = seededRng(5);
  const N = 6, C = 4, V = 9, scale = 0.5;
  const x = fillNormal(f64(N * C), rng);
  const table = fillNormal(f64(V * C), rng);
  const targets = Int32Array.from([0, 8, 3, 3, 5, 1]);
  const logits = f64(N * V), losses = f64(N);
  const f = (): number => {
    lmHeadForward(k, logits, x, table, N, C, V);
    k.crossEntropyForward(losses, logits, targets, N, V);
    let s = 0;
    for (let i = 0; i < N; i++) s += losses[i]!;
    return (scale * s) / N;
  };
  lmHeadForward(k, logits, x, table, N, C, V);
  k.crossEntropyForwardBackward(logits, losses, logits, targets, N, V, 1 / N);
  const dx = f64(N * C), dtable = f64(V * C);
  lmHeadBackward(k, dx, dtable, logits, x, table, N, C, V, scale);
  assertGrad('head dx', dx, numericGradient(x, f));
  assertGrad('head dtable', dtable, numericGradient(table, f));
});
