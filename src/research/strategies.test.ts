import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type RunConfig } from '../train/config.js';
import { estimateTrialMemoryMb } from './memory.js';
import { Rng } from './rng.js';
import { applyChanges, describeChanges, ffnFor, getKey, SPACE_KEYS, spaceViolation } from './space.js';
import {
  BASE_WEIGHTS, efficientStrategy, lrSearchStrategy, NoCandidateError, proposeTrial, randomStrategy, scaleDownStrategy,
  scaleUpStrategy, searchFingerprint, seqLenStrategy, strategyWeights, type TrialRecord,
} from './strategies.js';
import { STRATEGIES, type Changes } from './types.js';

const PRESETS = ['tiny', 'seed-small', 'default'] as const;
const bases = Object.fromEntries(PRESETS.map((p) => [p, loadConfig({ preset: p })])) as Record<(typeof PRESETS)[number], RunConfig>;
const limits = { maxMemoryMb: 800, threads: 2 }; // the default preset's own trial needs ~540 MiB

/** Every key of `changes` differs from the base. */
function assertAllDiffer(base: RunConfig, changes: Changes): void {
  for (const [k, v] of Object.entries(changes)) assert.notEqual(getKey(base, k), v, `${k} unchanged in ${JSON.stringify(changes)}`);
}

test('strategies: hundreds of proposals from each preset stay inside the space, the head-size rule and the memory limit', () => {
  const rng = new Rng(2024);
  for (const preset of PRESETS) {
    let base = bases[preset];
    // The study's noise runs are trials of the base: the walk must not come back to it.
    const history: TrialRecord[] = [{ strategy: 'noise', kept: true, config: base }];
    const seen = new Set<string>([searchFingerprint(base)]);
    for (let i = 0; i < 200; i++) {
      const p = proposeTrial(base, history, rng, { mode: 'weighted', limits });
      assert.ok(Object.keys(p.changes).length > 0);
      assertAllDiffer(base, p.changes);
      assert.equal(p.description, describeChanges(base, p.changes));
      const cfg = applyChanges(base, p.changes);
      assert.equal(spaceViolation(cfg), null);
      const { d_model: d, n_head: h } = cfg.model;
      assert.ok(d % h === 0 && (d / h) % 2 === 0, `head size ${d}/${h}`);
      assert.ok(cfg.optim.min_lr <= cfg.optim.lr);
      assert.ok(estimateTrialMemoryMb(cfg, limits.threads, 'auto') <= limits.maxMemoryMb, `${p.description} fits`);
      const fp = searchFingerprint(cfg);
      assert.ok(!seen.has(fp), `a repeat: ${p.description}`);
      seen.add(fp);
      const kept = i % 20 === 19;
      history.push({ strategy: p.strategy, kept, config: cfg });
      if (kept) base = cfg; // walk: the space around later bases is explored too
    }
  }
});

test('strategies: scale_up / scale_down move width and/or depth one notch, ffn_hidden and heads follow', () => {
  const rng = new Rng(5);
  for (const preset of PRESETS) {
    const base = bases[preset];
    for (const [fn, sign] of [[scaleUpStrategy, 1], [scaleDownStrategy, -1]] as const) {
      const shapes = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const c = fn(base, rng);
        if (Object.keys(c).length === 0) continue;
        assertAllDiffer(base, c);
        for (const k of Object.keys(c)) assert.ok(['model.d_model', 'model.n_layer', 'model.ffn_hidden', 'model.n_head'].includes(k), k);
        const dd = ((c['model.d_model'] as number | undefined) ?? base.model.d_model) - base.model.d_model;
        const dl = ((c['model.n_layer'] as number | undefined) ?? base.model.n_layer) - base.model.n_layer;
        assert.ok(dd * sign >= 0 && dl * sign >= 0, `${preset}: ${JSON.stringify(c)} goes the wrong way`);
        assert.ok(dd !== 0 || dl !== 0);
        assert.ok(Math.abs(dd) <= 64 && Math.abs(dl) <= 2 && (Math.abs(dd) <= 32 || dl === 0));
        if (dd !== 0) assert.equal(c['model.ffn_hidden'], ffnFor(base, c['model.d_model'] as number));
        shapes.add(`${dd !== 0}/${dl !== 0}`);
      }
      // tiny cannot get smaller: its scale_down offers nothing
      if (preset === 'tiny' && sign < 0) assert.deepEqual([...shapes], []);
      else assert.ok(shapes.size >= 2, `${preset} ${sign}: ${[...shapes]}`);
    }
  }
  assert.deepEqual(scaleDownStrategy(bases.tiny, rng), {});
  const top = applyChanges(bases.tiny, { 'model.d_model': 384, 'model.ffn_hidden': 1536, 'model.n_layer': 12 });
  assert.deepEqual(scaleUpStrategy(top, rng), {});
});

test('strategies: lr_search multiplies or divides lr by 1.5, 2 or 3 and min_lr keeps its ratio', () => {
  const rng = new Rng(6);
  const base = bases['seed-small'];
  const factors = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const c = lrSearchStrategy(base, rng);
    assert.deepEqual(Object.keys(c).sort(), ['optim.lr', 'optim.min_lr']);
    const lr = c['optim.lr'] as number;
    const f = lr / base.optim.lr;
    const nearest = [1.5, 2, 3, 1 / 1.5, 1 / 2, 1 / 3].find((x) => Math.abs(f / x - 1) < 0.05);
    assert.ok(nearest !== undefined, `factor ${f}`);
    factors.add(nearest);
    assert.ok(Math.abs((c['optim.min_lr'] as number) / lr / (base.optim.min_lr / base.optim.lr) - 1) < 0.01);
  }
  assert.equal(factors.size, 6);
  // at the top of the range only the way down is left
  const high = applyChanges(base, { 'optim.lr': 0.008, 'optim.min_lr': 0.0008 });
  for (let i = 0; i < 30; i++) assert.ok((lrSearchStrategy(high, rng)['optim.lr'] as number) < 0.008);
});

test('strategies: seq_len: a longer one halves the batch, a shorter one doubles it (tokens per micro-batch kept)', () => {
  const rng = new Rng(7);
  const base = bases.default; // seq_len 256, batch 8
  const seen = new Map<number, number>();
  for (let i = 0; i < 60; i++) {
    const c = seqLenStrategy(base, rng);
    for (const k of Object.keys(c)) assert.ok(['model.seq_len', 'train.batch_size'].includes(k), k);
    seen.set(c['model.seq_len'] as number, (c['train.batch_size'] as number | undefined) ?? base.train.batch_size);
  }
  assert.deepEqual([...seen.entries()].sort((a, b) => a[0] - b[0]), [[64, 16 /* 32 clamped */], [128, 16], [512, 4]]);
  // seed-small: seq 128, batch 4 -> 256 halves to 2, 512 would need 1 and stays at the space's 2, 64 doubles to 8
  const small = bases['seed-small'];
  for (let i = 0; i < 40; i++) {
    const c = seqLenStrategy(small, rng);
    const t = c['model.seq_len'] as number;
    const b = (c['train.batch_size'] as number | undefined) ?? small.train.batch_size;
    assert.equal(b, { 64: 8, 256: 2, 512: 2 }[t]);
  }
});

test('strategies: efficient: wider and shallower, twice the batch with half the accumulation, or half the vocabulary', () => {
  const rng = new Rng(8);
  const base = bases.default; // d 192, 6 layers, batch 8, accum 4, vocab 1024
  const kinds = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const c = efficientStrategy(base, rng);
    if ('model.d_model' in c) {
      assert.equal(c['model.d_model'], 256);
      assert.equal(c['model.n_layer'], 4);
      assert.equal(c['model.ffn_hidden'], 1024);
      assert.equal(c['model.n_head'], 8); // 6 does not divide 256; head size 32 kept
      kinds.add('wide');
    } else if ('train.batch_size' in c) {
      assert.deepEqual(c, { 'train.batch_size': 16, 'train.grad_accum': 2 });
      kinds.add('batch');
    } else {
      assert.deepEqual(c, { 'model.vocab_size': 512 });
      kinds.add('vocab');
    }
  }
  assert.equal(kinds.size, 3);
  // tiny: batch 16 and accum 1 cannot trade, 2 layers cannot shrink: only the vocabulary is left
  for (let i = 0; i < 20; i++) assert.deepEqual(efficientStrategy(bases.tiny, rng), { 'model.vocab_size': 512 });
});

test('strategies: random changes 1 to 3 keys of the space (plus the keys that follow them)', () => {
  const rng = new Rng(9);
  const counts = new Set<number>();
  const touched = new Set<string>();
  for (const preset of PRESETS) {
    const base = bases[preset];
    for (let i = 0; i < 150; i++) {
      const c = randomStrategy(base, rng);
      assertAllDiffer(base, c);
      const own = Object.keys(c).filter((k) => (SPACE_KEYS as readonly string[]).includes(k));
      for (const k of Object.keys(c)) assert.ok(own.includes(k) || k === 'model.ffn_hidden', `unexpected key ${k}`);
      // n_head may follow d_model, lr may follow optim.name, min_lr may follow lr: at most 3 drawn keys
      const followers = [['model.d_model', 'model.n_head'], ['optim.name', 'optim.lr'], ['optim.lr', 'optim.min_lr']]
        .filter(([lead, follow]) => lead! in c && follow! in c).length;
      assert.ok(own.length >= 1 && own.length - followers <= 3, `${own}`);
      counts.add(own.length);
      own.forEach((k) => touched.add(k));
    }
  }
  assert.ok(counts.has(1) && counts.has(2) && counts.has(3));
  assert.deepEqual([...touched].sort(), [...SPACE_KEYS].sort());
});

test('strategies: weights: base weights, re-weighted by win rate once a strategy has 3 finished trials', () => {
  assert.deepEqual(strategyWeights([]), BASE_WEIGHTS);
  assert.ok(Math.abs(Object.values(BASE_WEIGHTS).reduce((s, w) => s + w, 0) - 1) < 1e-12);
  const h = (strategy: TrialRecord['strategy'], kept: boolean): TrialRecord => ({ strategy, kept });
  const w = strategyWeights([
    h('random', true), h('random', false), h('random', false), h('random', false), // 1 of 4: x1.5
    h('scale_up', true), h('scale_up', true), // only 2: unchanged
    h('lr_search', true), h('lr_search', true), h('lr_search', true), // 3 of 3: x3
    h('seq_len', false), h('seq_len', false), h('seq_len', false), // 0 of 3: unchanged
    h('noise', true), h('plan', true), h('confirm', true), h('confirm', true), // not strategies
  ]);
  assert.ok(Math.abs(w.random - 0.45) < 1e-12);
  assert.equal(w.scale_up, 0.2);
  assert.ok(Math.abs(w.lr_search - 0.6) < 1e-12);
  assert.equal(w.seq_len, 0.1);
  assert.equal(w.scale_down, 0.1);
  assert.equal(w.efficient, 0.1);
});

test('strategies: proposeTrial draws strategies in proportion to their weights; mode random uses only random', () => {
  const base = bases['seed-small'];
  const big = { maxMemoryMb: 4000, threads: 1 };
  const history: TrialRecord[] = [{ strategy: 'lr_search', kept: true }, { strategy: 'lr_search', kept: true }, { strategy: 'lr_search', kept: true }];
  const w = strategyWeights(history);
  const total = Object.values(w).reduce((s, x) => s + x, 0);
  const rng = new Rng(10);
  const n = 800;
  const hits = Object.fromEntries(STRATEGIES.map((s) => [s, 0])) as Record<string, number>;
  for (let i = 0; i < n; i++) hits[proposeTrial(base, history, rng, { mode: 'weighted', limits: big }).strategy]!++;
  for (const s of STRATEGIES) assert.ok(Math.abs(hits[s]! / n - w[s] / total) < 0.05, `${s}: ${hits[s]! / n} vs ${w[s] / total}`);
  for (let i = 0; i < 100; i++) assert.equal(proposeTrial(base, history, rng, { mode: 'random', limits: big }).strategy, 'random');
});

test('strategies: proposeTrial never repeats a tried config and gives up with a clear error', () => {
  const rng = new Rng(11);
  const base = bases.tiny;
  // everything refused: over the memory limit
  assert.throws(() => proposeTrial(base, [], rng, { mode: 'weighted', limits: { maxMemoryMb: 1, threads: 1 }, maxTries: 20 }),
    (e: unknown) => e instanceof NoCandidateError && /^no new candidate config in 20 draws from the current best \(\d+ refused, 0 already tried, \d+ changed nothing\); last refused: .*over the study's limit of 1 MiB$/.test(e.message));
  // scale_down and efficient have little room around tiny: once tried, only other strategies are left
  const history: TrialRecord[] = [];
  const tried = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const p = proposeTrial(base, history, rng, { mode: 'weighted', limits });
    const cfg = applyChanges(base, p.changes);
    assert.ok(!tried.has(searchFingerprint(cfg)), `repeat of ${p.description}`);
    tried.add(searchFingerprint(cfg));
    history.push({ strategy: p.strategy, kept: false, config: cfg });
  }
  // a config in the history is never proposed again: tiny's efficient strategy can only offer half the
  // vocabulary, so without the check it would come back about once in ten proposals
  const vocab = searchFingerprint(applyChanges(base, { 'model.vocab_size': 512 }));
  const only: TrialRecord[] = [{ strategy: 'efficient', kept: false, config: applyChanges(base, { 'model.vocab_size': 512 }) }];
  for (let i = 0; i < 100; i++) {
    const p = proposeTrial(base, only, rng, { mode: 'weighted', limits });
    assert.notEqual(searchFingerprint(applyChanges(base, p.changes)), vocab);
  }
});

test('strategies: a study resumed from the saved generator state proposes the same trials', () => {
  const base = bases['seed-small'];
  const rng = new Rng(12);
  for (let i = 0; i < 5; i++) proposeTrial(base, [], rng, { mode: 'weighted', limits });
  const saved = rng.state();
  const run = (r: Rng) => Array.from({ length: 20 }, () => proposeTrial(base, [], r, { mode: 'weighted', limits }));
  const first = run(rng);
  assert.deepEqual(run(Rng.from(saved)), first);
  assert.ok(new Set(first.map((p) => p.strategy)).size >= 3);
});
