import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type RunConfig } from '../train/config.js';
import { estimateTrialMemoryMb } from './memory.js';
import { UserError } from '../util/errors.js';
import { Rng } from './rng.js';
import {
  applyChanges, checkCandidate, completeChanges, describeChanges, drawValue, ffnFor, LION_LR_FACTOR, nearestHeads, SPACE_KEYS,
  spaceViolation, validHeads,
} from './space.js';

const tiny = loadConfig({ preset: 'tiny' });
const small = loadConfig({ preset: 'seed-small' });
const dflt = loadConfig({ preset: 'default' });
const limits = { maxMemoryMb: 1024, threads: 2 };

function throwsUser(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(e.message.includes(p), `${JSON.stringify(e.message)} should include ${JSON.stringify(p)}`);
    return true;
  });
}

test('space: applyChanges sets dotted keys on a deep copy and validates the result', () => {
  const before = JSON.stringify(small);
  const cfg = applyChanges(small, { 'model.d_model': 192, 'model.n_head': 6, 'optim.name': 'lion', 'train.batch_size': 8 });
  assert.equal(cfg.model.d_model, 192);
  assert.equal(cfg.model.n_head, 6);
  assert.equal(cfg.optim.name, 'lion');
  assert.equal(cfg.train.batch_size, 8);
  assert.equal(JSON.stringify(small), before, 'the base is untouched');
  cfg.model.n_layer = 99;
  assert.equal(small.model.n_layer, 4, 'no shared objects');
});

test('space: applyChanges refuses a bad key or value with the config\'s one-line error', () => {
  throwsUser(() => applyChanges(tiny, { 'model.d_modle': 128 }), 'unknown key "model.d_modle"', 'the trial changes', 'did you mean "model.d_model"');
  throwsUser(() => applyChanges(tiny, { 'modle.d_model': 128 }), 'modle', 'the trial changes');
  throwsUser(() => applyChanges(tiny, { d_model: 128 }), 'change key "d_model"', 'section.key');
  throwsUser(() => applyChanges(tiny, { 'model.d_model.x': 128 }), 'section.key');
  throwsUser(() => applyChanges(small, { 'model.d_model': 90 }, 'plan entry "wide"'), 'model.d_model (90) must be divisible by model.n_head (4)', 'plan entry "wide"');
  throwsUser(() => applyChanges(tiny, { 'model.d_model': 66 }), 'head size model.d_model / model.n_head = 33 must be even');
  throwsUser(() => applyChanges(tiny, { 'optim.name': 'sgd' }), 'optim.name must be one of');
  throwsUser(() => applyChanges(tiny, { 'optim.min_lr': 0.01 }), 'optim.min_lr (0.01) must not exceed optim.lr');
});

test('space: describeChanges lists old→new in a fixed order', () => {
  assert.equal(
    describeChanges(small, { 'optim.lr': 0.001, 'model.ffn_hidden': 768, 'model.d_model': 192 }),
    'model.d_model 128→192, model.ffn_hidden 512→768, optim.lr 0.003→0.001',
  );
  assert.equal(describeChanges(small, { 'optim.name': 'lion' }), 'optim.name adamw→lion');
  assert.equal(describeChanges(small, {}), 'no change');
});

test('space: heads: valid counts divide d_model into even heads; a width change keeps the head size', () => {
  assert.deepEqual(validHeads(192), [2, 4, 6, 8]);
  assert.deepEqual(validHeads(224), [2, 4, 8]);
  assert.deepEqual(validHeads(64), [2, 4, 8]);
  for (let d = 64; d <= 384; d += 32) for (const h of validHeads(d)) assert.ok(d % h === 0 && (d / h) % 2 === 0);
  assert.equal(nearestHeads(224, 32), 8); // 28 is nearer 32 than 56
  assert.equal(nearestHeads(160, 32), 4); // 40 (ratio 1.25) nearer than 20 (1.6)
});

test('space: completeChanges: ffn_hidden keeps the base ratio, n_head is fixed, min_lr keeps its ratio, lion scales lr', () => {
  // d_model 192 -> 224 with 6 heads: 6 does not divide 224, head size 32 is kept as near as possible (8 heads of 28)
  const c1 = completeChanges(dflt, { 'model.d_model': 224 });
  assert.deepEqual(c1, { 'model.d_model': 224, 'model.ffn_hidden': 896, 'model.n_head': 8 });
  // a given ffn_hidden or n_head is kept as given
  assert.deepEqual(completeChanges(dflt, { 'model.d_model': 224, 'model.ffn_hidden': 600, 'model.n_head': 4 }),
    { 'model.d_model': 224, 'model.ffn_hidden': 600, 'model.n_head': 4 });
  // a base with another ratio keeps it (2.75 x, rounded to a multiple of 32)
  const phone = loadConfig({ preset: 'phone' });
  assert.equal(ffnFor(phone, 192), 544); // 192 * 704/256 = 528 -> 544 (nearest multiple of 32; 528 is halfway, rounds up)
  assert.equal(ffnFor(phone, 128), 352);
  // lr: min_lr keeps its ratio (0.1)
  assert.deepEqual(completeChanges(small, { 'optim.lr': 0.0015 }), { 'optim.lr': 0.0015, 'optim.min_lr': 0.00015 });
  assert.deepEqual(completeChanges(small, { 'optim.lr': 0.0015, 'optim.min_lr': 0.0001 }), { 'optim.lr': 0.0015, 'optim.min_lr': 0.0001 });
  // to lion: lr / 5 and min_lr with it; back from lion: x 5
  assert.equal(LION_LR_FACTOR, 5);
  assert.deepEqual(completeChanges(small, { 'optim.name': 'lion' }), { 'optim.name': 'lion', 'optim.lr': 0.0006, 'optim.min_lr': 0.00006 });
  const lion = applyChanges(small, { 'optim.name': 'lion', 'optim.lr': 0.0006, 'optim.min_lr': 0.00006 });
  assert.deepEqual(completeChanges(lion, { 'optim.name': 'adamw' }), { 'optim.name': 'adamw', 'optim.lr': 0.003, 'optim.min_lr': 0.0003 });
  // muon keeps lr and muon_lr
  assert.deepEqual(completeChanges(small, { 'optim.name': 'muon' }), { 'optim.name': 'muon' });
  // keys equal to the base are dropped
  assert.deepEqual(completeChanges(small, { 'model.d_model': 128, 'train.batch_size': 4 }), {});
});

test('space: spaceViolation names the key outside the space; the presets are inside', () => {
  for (const cfg of [tiny, small, dflt]) assert.equal(spaceViolation(cfg), null);
  const out = (changes: Record<string, number | string>) => spaceViolation(applyChanges(small, changes));
  assert.match(out({ 'model.d_model': 400, 'model.n_head': 4 }) ?? '', /model\.d_model 400 is outside/);
  assert.match(out({ 'model.d_model': 80, 'model.n_head': 4 }) ?? '', /multiples of 32/);
  assert.match(out({ 'model.n_layer': 13 }) ?? '', /model\.n_layer 13/);
  assert.match(out({ 'model.seq_len': 100 }) ?? '', /model\.seq_len 100/);
  assert.match(out({ 'model.vocab_size': 1000 }) ?? '', /model\.vocab_size 1000/);
  assert.match(out({ 'optim.lr': 0.05 }) ?? '', /optim\.lr 0\.05/);
  assert.match(out({ 'optim.min_lr': 0 }) ?? '', /optim\.min_lr 0 is 0 x optim\.lr/);
  assert.match(out({ 'optim.weight_decay': 0.3 }) ?? '', /optim\.weight_decay 0\.3/);
  assert.match(out({ 'optim.warmup_steps': 500 }) ?? '', /optim\.warmup_steps 500/);
  assert.match(out({ 'train.batch_size': 1 }) ?? '', /train\.batch_size 1/);
  assert.match(out({ 'train.grad_accum': 16 }) ?? '', /train\.grad_accum 16/);
});

test('space: checkCandidate: null inside the space and the memory limit, else one line', () => {
  assert.equal(checkCandidate(small, limits), null);
  const big = applyChanges(small, { 'model.d_model': 384, 'model.ffn_hidden': 1536, 'model.n_layer': 12, 'model.seq_len': 512, 'train.batch_size': 16 });
  const mib = estimateTrialMemoryMb(big, 2, 'auto');
  assert.ok(mib > 1024, `the big config needs ${mib} MiB`);
  const reason = checkCandidate(big, limits);
  assert.match(reason ?? '', /^needs about \d+ MiB as a trial \(activations .*, plus the process\), over the study's limit of 1024 MiB$/);
  assert.equal(checkCandidate(big, { maxMemoryMb: Math.ceil(mib), threads: 2 }), null);
  // more threads reserve more scratch: a limit exactly at the plan fails with more threads
  assert.notEqual(checkCandidate(big, { maxMemoryMb: mib, threads: 8 }), null);
  // a hand-built invalid config: the config's message
  const bad = structuredClone(small) as RunConfig;
  bad.model.n_head = 6;
  assert.match(checkCandidate(bad, limits) ?? '', /must be divisible by model.n_head/);
  assert.match(checkCandidate(applyChanges(small, { 'model.n_layer': 20 }), limits) ?? '', /model\.n_layer 20 is outside/);
});

test('space: drawValue gives another value inside the space for every key', () => {
  const rng = new Rng(3);
  for (const base of [tiny, small, dflt]) {
    for (const key of SPACE_KEYS) {
      for (let i = 0; i < 30; i++) {
        const v = drawValue(base, key, rng);
        assert.notEqual(v, null);
        const changes = completeChanges(base, { [key]: v! });
        assert.notEqual(changes[key], undefined, `${key} changed`);
        const cfg = applyChanges(base, changes);
        assert.equal(spaceViolation(cfg), null, `${key}=${v}: ${spaceViolation(cfg)}`);
      }
    }
  }
});
