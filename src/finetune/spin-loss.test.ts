import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import { GPT, IGNORE_ID } from '../model/gpt.js';
import { finiteDifferenceReport, logProb, randomIds, randomizeParams, tinyConfig } from '../model/testutil.js';
import { sigmoid, softplus, spinTerms } from './spin-loss.js';

test('spinTerms: loss, margins and weights equal the formulas computed directly in float64', () => {
  const pr = [-10.5, -3.25, -7.0];
  const rr = [-11.0, -3.0, -7.5];
  const ps = [-9.0, -6.0, -2.0];
  const rs = [-8.0, -6.5, -2.25];
  const lambda = 0.7;
  const t = spinTerms(pr, rr, ps, rs, lambda);
  let loss = 0;
  for (let i = 0; i < 3; i++) {
    const m = (pr[i]! - rr[i]!) - (ps[i]! - rs[i]!);
    assert.ok(Math.abs(t.margins[i]! - m) < 1e-15);
    loss += Math.log(1 + Math.exp(-lambda * m)) / 3;
    // d loss / d logp_real = -sigma(-lambda m) lambda / n; the weight is on CE = -logp
    const g = (1 / (1 + Math.exp(lambda * m))) * lambda / 3;
    assert.ok(Math.abs(t.weightsReal[i]! - g) < 1e-15);
    assert.ok(Math.abs(t.weightsSynthetic[i]! + g) < 1e-15);
  }
  assert.ok(Math.abs(t.loss - loss) < 1e-15);
  // the stable forms agree with the naive ones, and do not overflow
  for (const x of [-30, -1, 0, 2.5, 30]) {
    assert.ok(Math.abs(softplus(x) - Math.log(1 + Math.exp(x))) < 1e-12);
    assert.ok(Math.abs(sigmoid(x) - 1 / (1 + Math.exp(-x))) < 1e-15);
  }
  assert.equal(softplus(1000), 1000);
  assert.equal(sigmoid(-1000), 0);
});

test('the SPIN gradient through the model (signed weights on masked summed cross-entropy) matches finite differences of the loss computed directly (float64)', () => {
  const cfg = tinyConfig({ seq_len: 6, vocab_size: 9 });
  const n = 2; // pairs: rows 0..1 real, 2..3 synthetic
  const k = createJsKernels();
  const policy = new GPT(cfg, k, new HeapArena('f64'), 2 * n);
  const ref = new GPT(cfg, k, new HeapArena('f64'), 2 * n, { frozen: true });
  randomizeParams(policy, 41);
  randomizeParams(ref, 42); // a reference other than the policy, so the log-ratios are not 0
  const T = cfg.seq_len;
  const V = cfg.vocab_size;
  const inputs = randomIds(2 * n * T, V, 9);
  const targets = randomIds(2 * n * T, V, 10);
  const prompt = [2, 3, 1, 2]; // the prompt of each row is not scored
  for (let r = 0; r < 2 * n; r++) for (let t = 0; t < prompt[r]!; t++) targets[r * T + t] = IGNORE_ID;
  for (let r = 0; r < n; r++) for (let t = 0; t < T; t++) inputs[(n + r) * T + t] = t < prompt[r]! ? inputs[r * T + t]! : inputs[(n + r) * T + t]!;
  const lambda = 0.8;
  // the loss written out from logits: no sequenceLogProbs, no spinTerms, no weights
  const direct = (): number => {
    const lp = (m: GPT): number[] => {
      m.forward(inputs, null, 2 * n);
      const lg = m.logits();
      return Array.from({ length: 2 * n }, (_, r) => {
        let s = 0;
        for (let t = 0; t < T; t++) if (targets[r * T + t] !== IGNORE_ID) s += logProb(lg, r * T + t, V, targets[r * T + t]!);
        return s;
      });
    };
    const a = lp(policy);
    const b = lp(ref);
    let L = 0;
    for (let i = 0; i < n; i++) L += Math.log(1 + Math.exp(-lambda * ((a[i]! - b[i]!) - (a[n + i]! - b[n + i]!)))) / n;
    return L;
  };
  // the analytic path used by pocketlm spin
  ref.forward(inputs, targets, 2 * n, { reduction: 'sum' });
  const refLp = ref.sequenceLogProbs();
  policy.zeroGrad();
  policy.forward(inputs, targets, 2 * n, { reduction: 'sum' });
  const lp = policy.sequenceLogProbs();
  const terms = spinTerms(lp.subarray(0, n), refLp.subarray(0, n), lp.subarray(n), refLp.subarray(n), lambda);
  assert.ok(Math.abs(terms.loss - direct()) < 1e-12, `${terms.loss} vs ${direct()}`);
  policy.forward(inputs, targets, 2 * n, { reduction: 'sum' });
  policy.backward(1, [...terms.weightsReal, ...terms.weightsSynthetic]);
  const reports = finiteDifferenceReport(policy, direct);
  for (const r of reports) {
    assert.ok(r.maxNumeric > 1e-7, `${r.name}: numeric gradient ~0`);
    assert.ok(r.relErr < 1e-5, `${r.name}: relative error ${r.relErr.toExponential(3)}`);
  }
  // the sign matters: flipping the synthetic weights' sign is caught
  policy.zeroGrad();
  policy.forward(inputs, targets, 2 * n, { reduction: 'sum' });
  policy.backward(1, [...terms.weightsReal, ...terms.weightsReal]);
  assert.ok(finiteDifferenceReport(policy, direct, 3).some((r) => r.relErr > 0.05));
});
