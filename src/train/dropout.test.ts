import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tinystoriesSampleDir } from '../util/paths.js';
import { loadConfig, type RunConfig } from './config.js';
import { evaluateRun, openRun } from './inference.js';
import { readLog } from './log.js';
import { train } from './trainer.js';
import { useTempCache } from '../util/testing.js';

// The trainer with model.dropout: training forwards drop, validation does not, and a resumed
// run draws the same masks as an uninterrupted one (in-process, tiny model, wasm one thread).

const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
let work = '';
useTempCache('pocketlm-dropout-', (dir) => (work = dir));

function config(set: string[] = []): RunConfig {
  return loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=512', 'model.d_model=32', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=32', 'model.ffn_hidden=64',
      'train.batch_size=4', 'train.grad_accum=2', 'train.time_seconds=0', 'train.steps=12', 'train.eval_every=6', 'train.eval_batches=2',
      'train.log_every=1', 'train.checkpoint_minutes=0', 'train.sample_tokens=0', 'train.backend="wasm"', 'train.threads=1',
      'optim.warmup_steps=2', `data.paths=[${JSON.stringify(DATA)}]`,
      ...set,
    ],
  });
}

const numbers = (dir: string): number[][] =>
  readLog(path.join(dir, 'log.jsonl')).map((r) => [r.step, r.loss, r.grad_norm, r.val_loss ?? -1]);

test('config: model.dropout may be left out (absent = 0) and must be in [0, 1)', () => {
  assert.equal(config().model.dropout, undefined);
  assert.equal(config(['model.dropout=0.1']).model.dropout, 0.1);
  assert.throws(() => config(['model.dropout=1']), /model\.dropout.*\[0, 1\)/);
  assert.throws(() => config(['model.dropout=-0.5']), /model\.dropout/);
});

test('with dropout, a run resumed from its checkpoint logs exactly what an uninterrupted run logs', async () => {
  const set = ['model.dropout=0.3'];
  const full = path.join(work, 'full');
  await train({ config: config(set), runDir: full, resume: false }, () => {}, () => false);
  // stopped after step 5 as Ctrl-C would stop it (same schedule: train.steps stays 12), then resumed
  const split = path.join(work, 'split');
  let step = 0;
  const r = await train({ config: config(set), runDir: split, resume: false }, (e) => { if (e.type === 'step') step = e.record.step; }, () => step >= 5);
  assert.equal(r.stopReason, 'signal');
  assert.equal(r.step, 5);
  await train({ config: config(set), runDir: split, resume: true }, () => {}, () => false);
  assert.deepEqual(numbers(split), numbers(full));
  // and dropout was on: the same run without it trains differently from the first step
  const plain = path.join(work, 'plain');
  await train({ config: config(), runDir: plain, resume: false }, () => {}, () => false);
  assert.equal(numbers(plain)[0]![0], 1);
  assert.notEqual(numbers(plain)[0]![1], numbers(full)[0]![1], 'the first step\'s loss should differ with dropout 0.3');
});

test('with dropout, validation runs in evaluation mode: its loss is what `eval` measures on the saved weights', async () => {
  const dir = path.join(work, 'val');
  const r = await train({ config: config(['model.dropout=0.5', 'train.steps=6']), runDir: dir, resume: false }, () => {}, () => false);
  const run = await openRun(dir, { backend: 'wasm', threads: 1 });
  try {
    const ev = evaluateRun(run, {});
    // the same windows, weights and kernels: the same number when neither side drops
    assert.ok(Math.abs(ev.loss - r.valLoss!) < 1e-6, `eval ${ev.loss} vs the trainer's validation ${r.valLoss}`);
  } finally {
    await run.close();
  }
});
