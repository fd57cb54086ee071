/**
 * Dropout: the op pair against finite differences (float64, fixed mask), its statistics (keep
 * fraction, scale, independence of sites and counters), the whole model's gradient with
 * dropout on, evaluation mode, p = 0 being exactly the model without dropout, and the same
 * mask on every backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapArena, type Arena } from '../kernels/arena.js';
import { createBackend, type Backend } from '../kernels/index.js';
import { createJsKernels } from '../kernels/js/index.js';
import { keepScale } from '../kernels/js/dropout.js';
import { dot, fillNormal, numericGradient, seededRng } from '../kernels/testing.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import type { ModelConfig } from './config.js';
import { dropoutBackward, dropoutForward, dropoutScale, dropoutStream, dropoutThreshold } from './dropout.js';
import { GPT } from './gpt.js';
import { finiteDifferenceReport, randomIds, randomizeParams, tinyConfig } from './testutil.js';

const js = createJsKernels();
const GRAD_TOL = 1e-5;

/** Indices kept by the mask of (p, stream) over n elements (dropout of an all-ones input). */
function keptMask(k: Kernels, n: number, p: number, stream: number): Uint8Array {
  const x = new Float64Array(n).fill(1);
  dropoutForward(k, x, x, n, dropoutThreshold(p), stream);
  return Uint8Array.from(x, (v) => (v !== 0 ? 1 : 0));
}

test('dropout op pair matches finite differences (float64, the mask fixed by its stream)', () => {
  const rng = seededRng(5);
  const n = 301;
  for (const p of [0.1, 0.5]) {
    const stream = dropoutStream(7, 3, 1);
    const x = fillNormal(new Float64Array(n), rng);
    const y = new Float64Array(n);
    const R = fillNormal(new Float64Array(n), rng);
    const f = (): number => { dropoutForward(js, y, x, n, dropoutThreshold(p), stream); return dot(R, y); };
    f();
    const dx = new Float64Array(n);
    dropoutBackward(js, dx, R, n, dropoutThreshold(p), stream);
    const num = numericGradient(x, f);
    f(); // y of the unperturbed x
    let kept = 0;
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(dx[i]! - num[i]!) <= 1e-8 * (1 + Math.abs(num[i]!)), `p=${p} dx[${i}] = ${dx[i]}, numeric ${num[i]}`);
      // the gradient is the mask times 1/(1-p): 0 exactly where the forward dropped
      if (y[i] === 0) assert.equal(dx[i], 0, `p=${p}: element ${i} dropped in forward but not in backward`);
      else {
        kept++;
        assert.equal(y[i], x[i]! * dropoutScale(p));
        assert.equal(dx[i], R[i]! * dropoutScale(p));
      }
    }
    assert.ok(kept > 0 && kept < n, `p=${p}: ${kept} of ${n} kept; the check needs both kinds`);
  }
});

test('keep fraction is 1 - p, kept values are scaled by 1/(1-p) so the mean is preserved', () => {
  const n = 200_000;
  for (const p of [0.05, 0.1, 0.2, 0.5, 0.9]) {
    const x = new Float64Array(n).fill(1);
    dropoutForward(js, x, x, n, dropoutThreshold(p), dropoutStream(1337, 42, 0));
    let kept = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      if (x[i] !== 0) kept++;
      sum += x[i]!;
    }
    const sd = Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(kept - n * (1 - p)) < 5 * sd, `p=${p}: kept ${kept} of ${n}, expected ${n * (1 - p)} +- ${5 * sd}`);
    assert.ok(Math.abs(sum / n - 1) < 5 * sd / n / (1 - p) + 1e-6, `p=${p}: mean output ${sum / n}, expected 1`);
  }
  assert.equal(dropoutThreshold(0), 0);
  assert.throws(() => dropoutThreshold(1), RangeError);
  assert.throws(() => dropoutThreshold(-0.1), RangeError);
});

test('masks are a function of (seed, counter, site): the same key repeats, any other key is independent', () => {
  const n = 100_000;
  const p = 0.3;
  const base = keptMask(js, n, p, dropoutStream(1, 10, 3));
  assert.deepEqual(keptMask(js, n, p, dropoutStream(1, 10, 3)), base);
  // neighbours independent: both kept in (1-p)^2 of the pairs
  let both = 0;
  for (let i = 0; i + 1 < n; i++) both += base[i]! & base[i + 1]!;
  const q = (1 - p) ** 2;
  assert.ok(Math.abs(both / (n - 1) - q) < 0.01, `adjacent pairs both kept: ${both / (n - 1)}, expected ${q}`);
  // another seed, counter (low or high 32 bits) or site: agreement p^2 + (1-p)^2 as for independent masks
  const agreeWant = p * p + (1 - p) * (1 - p);
  for (const [seed, counter, site] of [[2, 10, 3], [1, 11, 3], [1, 10 + 2 ** 32, 3], [1, 10, 4]] as const) {
    const other = keptMask(js, n, p, dropoutStream(seed, counter, site));
    let agree = 0;
    for (let i = 0; i < n; i++) agree += base[i] === other[i] ? 1 : 0;
    assert.ok(Math.abs(agree / n - agreeWant) < 0.01, `(seed ${seed}, counter ${counter}, site ${site}): agreement ${agree / n}, expected ${agreeWant}`);
  }
  assert.throws(() => dropoutStream(1, -1, 0), RangeError);
  assert.throws(() => dropoutStream(1, 2 ** 53, 0), RangeError);
});

function f64Model(cfg: ModelConfig, B: number, opts: { keepBudgetBytes?: number } = {}): GPT {
  return new GPT(cfg, js, new HeapArena('f64'), B, opts);
}

// recompute: keepBudgetBytes 0 makes backward recompute the normed inputs and SwiGLU outputs
// into the scratch buffers, next to the y scratch that carries the masked branch gradient
// (the larger 3-layer model checks 12 sampled elements per tensor, the others every element)
for (const [label, over, B, recompute, count] of [
  ['untied', {}, 2, false, Infinity],
  ['tied, activations recomputed', { tie_embeddings: true }, 2, true, Infinity],
  ['3 layers, B < batchSize', { n_layer: 3, d_model: 16, n_head: 4, seq_len: 4, ffn_hidden: 8, vocab_size: 7 }, 2, false, 12],
] as const) {
  test(`whole model with dropout 0.3 (${label}): every parameter's gradient matches finite differences, mask fixed`, () => {
    const cfg = tinyConfig({ ...over, dropout: 0.3 });
    const maxB = B + (label.includes('B <') ? 1 : 0);
    const m = f64Model(cfg, maxB, recompute ? { keepBudgetBytes: 0 } : {});
    randomizeParams(m, 21);
    const T = cfg.seq_len;
    const inputs = randomIds(maxB * T, cfg.vocab_size, 31);
    const targets = randomIds(maxB * T, cfg.vocab_size, 32);
    const keyed = (): number => {
      m.setDropoutKey(99, 5);
      return m.forward(inputs, targets, B);
    };
    m.zeroGrad();
    const loss = keyed();
    m.backward();
    // dropout is really on: the keyed loss differs from the evaluation loss
    assert.notEqual(loss, m.forward(inputs, targets, B));
    const reports = finiteDifferenceReport(m, keyed, count);
    assert.equal(reports.length, 1 + 6 * cfg.n_layer + (cfg.tie_embeddings ? 1 : 2));
    for (const r of reports) {
      assert.ok(r.maxNumeric > 1e-6, `${r.name}: numeric gradient ~0 (${r.maxNumeric})`);
      assert.ok(r.relErr < GRAD_TOL, `${r.name}: relative gradient error ${r.relErr.toExponential(3)} >= ${GRAD_TOL}`);
    }
  });
}

test('a backward that ignores the mask on one site is caught by the whole-model gradient check', () => {
  // the forward drops, the backward of the embedding site sees an all-keep mask
  let calls = 0;
  const buggy: Kernels = {
    ...js,
    dropout(out, x, n, threshold, counter) {
      calls++;
      // 2 layers: calls 1-5 are the forward's sites, 6-9 the backward's branches, 10 the embedding's backward
      if (calls === 10) { js.dropout(out, x, n, threshold, counter); for (let i = 0; i < n; i++) out[i] = x[i]! * keepScale(threshold); }
      else js.dropout(out, x, n, threshold, counter);
    },
  };
  const cfg = tinyConfig({ dropout: 0.3 });
  const m = new GPT(cfg, buggy, new HeapArena('f64'), 2);
  randomizeParams(m, 22);
  const inputs = randomIds(2 * cfg.seq_len, cfg.vocab_size, 33);
  const targets = randomIds(2 * cfg.seq_len, cfg.vocab_size, 34);
  m.zeroGrad();
  m.setDropoutKey(1, 0);
  m.forward(inputs, targets);
  m.backward();
  assert.equal(calls, 10, '5 sites forward, 5 backward');
  // finite differences run forwards only (calls 11 on), all with the true masks
  const reports = finiteDifferenceReport(m, () => { m.setDropoutKey(1, 0); return m.forward(inputs, targets); });
  const wte = reports.find((r) => r.name === 'wte')!;
  assert.ok(wte.relErr > 1e-2, `wte error ${wte.relErr} should expose the unmasked gradient`);
});

/** Records every kernel call (name and the scalar arguments) and passes it on. */
function tracing(base: Kernels, log: string[]): Kernels {
  const out: Record<string, unknown> = { ...base };
  for (const [name, fn] of Object.entries(base)) {
    if (typeof fn !== 'function' || name === 'dispose') continue;
    out[name] = (...args: unknown[]): unknown => {
      log.push(`${name}(${args.filter((a) => typeof a !== 'object').join(',')})`);
      return (fn as (...a: unknown[]) => unknown).apply(base, args);
    };
  }
  return out as unknown as Kernels;
}

test('dropout 0 (or absent) runs exactly the kernels the model ran before the option: same calls, same bits', () => {
  const cfgs = [tinyConfig(), tinyConfig({ dropout: 0 })];
  const traces: string[][] = [];
  const results: Float64Array[] = [];
  for (const cfg of cfgs) {
    const log: string[] = [];
    const m = new GPT(cfg, tracing(js, log), new HeapArena('f32'), 2);
    m.init(3);
    const x = randomIds(2 * cfg.seq_len, cfg.vocab_size, 1);
    const y = randomIds(2 * cfg.seq_len, cfg.vocab_size, 2);
    m.zeroGrad();
    m.setDropoutKey(1337, 17); // a no-op at p = 0
    const loss = m.forward(x, y);
    m.backward();
    traces.push(log);
    results.push(Float64Array.from([loss, ...m.grads]));
  }
  assert.ok(!traces[1]!.some((c) => c.startsWith('dropout')), 'p = 0 must not call the dropout kernel');
  assert.deepEqual(traces[1], traces[0]);
  assert.deepEqual(results[1], results[0]);
});

test('evaluation mode: a forward without a fresh key applies no dropout (the key is consumed by one forward)', () => {
  const base = tinyConfig({ init_std: 0.3 });
  const plain = new GPT(base, js, new HeapArena('f32'), 2);
  const drop = new GPT({ ...base, dropout: 0.5 }, js, new HeapArena('f32'), 2);
  plain.init(4);
  drop.init(4);
  const x = randomIds(2 * base.seq_len, base.vocab_size, 5);
  const y = randomIds(2 * base.seq_len, base.vocab_size, 6);
  const evalLoss = plain.forward(x, y);
  assert.equal(drop.forward(x, y), evalLoss, 'never keyed: no dropout');
  drop.setDropoutKey(1, 0);
  const trainLoss = drop.forward(x, y);
  assert.notEqual(trainLoss, evalLoss);
  assert.equal(drop.forward(x, y), evalLoss, 'the key was used up by the previous forward');
  // logits without targets (what sampling without the KV cache would read) are the plain model's too
  plain.forward(x, null);
  drop.forward(x, null);
  assert.deepEqual(drop.logits(), plain.logits());
  // same key, same loss; another counter, another loss
  drop.setDropoutKey(1, 0);
  assert.equal(drop.forward(x, y), trainLoss);
  drop.setDropoutKey(1, 1);
  assert.notEqual(drop.forward(x, y), trainLoss);
  // backward after an unkeyed forward is the plain model's backward
  plain.zeroGrad();
  plain.forward(x, y);
  plain.backward();
  drop.zeroGrad();
  drop.forward(x, y);
  drop.backward();
  assert.deepEqual(drop.grads, plain.grads);
});

async function backends(): Promise<Array<{ label: string; be: Backend }>> {
  const out: Array<{ label: string; be: Backend }> = [];
  for (const [backend, threads] of [['wasm', 1], ['wasm', 2], ['native', 2]] as const) {
    try {
      out.push({ label: `${backend} x${threads}`, be: await createBackend({ backend, threads, initialBytes: 16 << 20 }) });
    } catch {
      // not available on this machine: the others still run
    }
  }
  return out;
}

test('same key, same mask on every backend (js, wasm 1 and 2 threads, native), bit for bit', async () => {
  const n = 150_001; // above the size wasm splits across threads
  const rng = seededRng(9);
  const x64 = fillNormal(new Float64Array(n), rng);
  const p = 0.1;
  const stream = dropoutStream(1337, 4 * 1000 + 3, 7);
  const want = Float32Array.from(x64);
  dropoutForward(js, want, want, n, dropoutThreshold(p), stream);
  const bes = await backends();
  assert.ok(bes.length > 0, 'no wasm backend here');
  try {
    for (const { label, be } of bes) {
      const x: FloatArray = be.arena.floats(n);
      x.set(x64);
      dropoutForward(be.kernels, x, x, n, dropoutThreshold(p), stream);
      assert.deepEqual(x, want, label);
    }
  } finally {
    for (const { be } of bes) await be.dispose();
  }
});

test('the model with dropout on wasm/native matches the js model (same masks: losses and gradients agree to float32 rounding)', async () => {
  const cfg = tinyConfig({ vocab_size: 64, d_model: 32, n_layer: 2, n_head: 2, seq_len: 16, ffn_hidden: 64, init_std: 0.1, dropout: 0.2 });
  const B = 3;
  const run = (k: Kernels, arena: Arena): { loss: number; evalLoss: number; grads: Float64Array } => {
    const m = new GPT(cfg, k, arena, B);
    m.init(42);
    const x = arena.ints(B * cfg.seq_len);
    const y = arena.ints(B * cfg.seq_len);
    x.set(randomIds(B * cfg.seq_len, cfg.vocab_size, 1));
    y.set(randomIds(B * cfg.seq_len, cfg.vocab_size, 2));
    const evalLoss = m.forward(x, y, B);
    m.zeroGrad();
    m.setDropoutKey(1337, 123);
    const loss = m.forward(x, y, B);
    m.backward();
    return { loss, evalLoss, grads: Float64Array.from(m.grads) };
  };
  const ref = run(js, new HeapArena('f32'));
  // the gap a different mask would make, to size the tolerance against
  assert.ok(Math.abs(ref.loss - ref.evalLoss) > 1e-3, `dropout changed the loss by ${Math.abs(ref.loss - ref.evalLoss)} only`);
  const bes = await backends();
  try {
    for (const { label, be } of bes) {
      const r = run(be.kernels, be.arena);
      assert.ok(Math.abs(r.loss - ref.loss) < 1e-5, `${label}: loss ${r.loss} vs js ${ref.loss}`);
      let maxRef = 0;
      let maxDiff = 0;
      for (let i = 0; i < ref.grads.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(ref.grads[i]!));
        maxDiff = Math.max(maxDiff, Math.abs(r.grads[i]! - ref.grads[i]!));
      }
      assert.ok(maxDiff < 1e-3 * maxRef, `${label}: gradients differ by ${maxDiff} (max |g| ${maxRef})`);
    }
  } finally {
    for (const { be } of bes) await be.dispose();
  }
});

test('model.dropout outside [0, 1) is refused when the model is built', () => {
  for (const bad of [1, -0.1, Number.NaN]) {
    assert.throws(() => new GPT(tinyConfig({ dropout: bad }), js, new HeapArena('f32'), 1), /model\.dropout must be a number in \[0, 1\)/);
  }
});
