import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena } from '../kernels/arena.js';
import { createJsKernels } from '../kernels/js/index.js';
import { GPT, IGNORE_ID } from './gpt.js';
import { finiteDifferenceReport, logProb, randomIds, randomizeParams, tinyConfig, type TensorGradReport } from './testutil.js';

/** As in gpt.test.ts: float64 central differences agree to ~1e-9; a wrong factor shows as >= 0.3. */
const GRAD_TOL = 1e-5;

function assertGradsOk(reports: TensorGradReport[]): void {
  assert.ok(reports.length > 0);
  for (const r of reports) {
    assert.ok(r.maxNumeric > 1e-6, `${r.name}: numeric gradient is ~0 (${r.maxNumeric})`);
    assert.ok(r.relErr < GRAD_TOL, `${r.name}: relative gradient error ${r.relErr.toExponential(3)} (${r.checked} elements)`);
  }
}

/** Targets with the first `prompt[b]` positions of each row ignored (a prompt), and the last one of row 0 (padding). */
function maskedTargets(B: number, T: number, V: number, seed: number, prompt: number[]): Int32Array {
  const t = randomIds(B * T, V, seed);
  for (let b = 0; b < B; b++) for (let i = 0; i < prompt[b]!; i++) t[b * T + i] = IGNORE_ID;
  t[T - 1] = IGNORE_ID;
  return t;
}

test('masked targets: the mean over scored positions only, and its gradient matches finite differences (float64)', () => {
  const cfg = tinyConfig({ seq_len: 6 });
  const B = 3;
  const m = new GPT(cfg, createJsKernels(), new HeapArena('f64'), B);
  randomizeParams(m, 31);
  const T = cfg.seq_len;
  const inputs = randomIds(B * T, cfg.vocab_size, 1);
  const targets = maskedTargets(B, T, cfg.vocab_size, 2, [2, 0, 4]);
  // the value: mean of log-probabilities computed directly from the logits
  m.forward(inputs, null, B);
  const logits = Float64Array.from(m.logits());
  let sum = 0;
  let n = 0;
  for (let i = 0; i < B * T; i++) if (targets[i] !== IGNORE_ID) { sum -= logProb(logits, i, cfg.vocab_size, targets[i]!); n++; }
  assert.equal(n, B * T - 7);
  m.zeroGrad();
  const loss = m.forward(inputs, targets, B);
  assert.ok(Math.abs(loss - sum / n) < 1e-12, `${loss} vs ${sum / n}`);
  assert.equal(m.scoredPositions, n);
  m.backward(0.5);
  assertGradsOk(finiteDifferenceReport(m, () => 0.5 * m.forward(inputs, targets, B)));
  // an ignored position's target does not matter at all
  const other = Int32Array.from(targets);
  assert.equal(other[0], IGNORE_ID);
  assert.equal(m.forward(inputs, other, B), loss);
});

test('signed per-sequence weights on summed masked losses: gradient of sum_b w_b L_b matches finite differences (float64, tied)', () => {
  const cfg = tinyConfig({ seq_len: 5, tie_embeddings: true });
  const B = 4;
  const m = new GPT(cfg, createJsKernels(), new HeapArena('f64'), B);
  randomizeParams(m, 32);
  const T = cfg.seq_len;
  const inputs = randomIds(B * T, cfg.vocab_size, 3);
  const targets = maskedTargets(B, T, cfg.vocab_size, 4, [1, 2, 0, 3]);
  const w = [0.7, -1.3, 0.25, -0.4];
  const objective = (): number => {
    m.forward(inputs, targets, B, { reduction: 'sum' });
    const lp = m.sequenceLogProbs();
    let f = 0;
    for (let b = 0; b < B; b++) f -= w[b]! * lp[b]!; // L_b = -log p(row b's scored targets)
    return f;
  };
  m.zeroGrad();
  m.forward(inputs, targets, B, { reduction: 'sum' });
  m.backward(1, w);
  assertGradsOk(finiteDifferenceReport(m, objective));
  // the same weights on the mean reduction: every row's share divided by the scored count
  m.zeroGrad();
  m.forward(inputs, targets, B);
  const count = m.scoredPositions;
  m.backward(1, w);
  const meanGrads = Float64Array.from(m.grads);
  m.zeroGrad();
  m.forward(inputs, targets, B, { reduction: 'sum' });
  m.backward(1 / count, w);
  for (let i = 0; i < meanGrads.length; i++) assert.ok(Math.abs(meanGrads[i]! - m.grads[i]!) < 1e-12);
});

test('sequenceLogProbs: each row\'s summed log-probability from one forward equals a direct float64 computation', () => {
  const cfg = tinyConfig({ seq_len: 7, vocab_size: 13 });
  const B = 3;
  const m = new GPT(cfg, createJsKernels(), new HeapArena('f64'), B);
  randomizeParams(m, 33);
  const T = cfg.seq_len;
  const inputs = randomIds(B * T, cfg.vocab_size, 5);
  const targets = maskedTargets(B, T, cfg.vocab_size, 6, [3, 0, 6]);
  m.forward(inputs, null, B);
  const logits = Float64Array.from(m.logits());
  m.forward(inputs, targets, B);
  const lp = m.sequenceLogProbs();
  assert.equal(lp.length, B);
  for (let b = 0; b < B; b++) {
    let want = 0;
    for (let t = 0; t < T; t++) if (targets[b * T + t] !== IGNORE_ID) want += logProb(logits, b * T + t, cfg.vocab_size, targets[b * T + t]!);
    assert.ok(Math.abs(lp[b]! - want) < 1e-12, `row ${b}: ${lp[b]} vs ${want}`);
  }
  assert.throws(() => m.forward(inputs, new Int32Array(B * T).fill(IGNORE_ID), B), /nothing to score/);
});

test('a frozen model: no gradient memory, the same forward, backward refused', () => {
  const cfg = tinyConfig();
  const arenaA = new HeapArena('f64');
  const arenaB = new HeapArena('f64');
  const k = createJsKernels();
  const live = new GPT(cfg, k, arenaA, 2);
  const frozen = new GPT(cfg, k, arenaB, 2, { frozen: true });
  assert.equal(frozen.grads.length, 0);
  assert.equal(live.grads.length, live.numParams);
  assert.equal(arenaA.bytesUsed() - arenaB.bytesUsed(), live.numParams * 8);
  randomizeParams(live, 34);
  frozen.params.set(live.params);
  const T = cfg.seq_len;
  const inputs = randomIds(2 * T, cfg.vocab_size, 7);
  const targets = randomIds(2 * T, cfg.vocab_size, 8);
  assert.equal(frozen.forward(inputs, targets, 2), live.forward(inputs, targets, 2));
  assert.deepEqual(Array.from(frozen.sequenceLogProbs()), Array.from(live.sequenceLogProbs()));
  assert.throws(() => frozen.backward(), /frozen/);
});
