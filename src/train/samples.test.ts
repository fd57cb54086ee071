import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tinystoriesSampleDir } from '../util/paths.js';
import { loadConfig } from './config.js';
import { train, type TrainEvent } from './trainer.js';
import { runPaths } from './run.js';
import { appendSamples, readSamples, truncateSamples } from './samples.js';
import { useTempCache } from '../util/testing.js';

let work = '';
useTempCache('pocketlm-samples-', (dir) => { work = dir; });

test('each append adds exactly one complete line; a torn last line is skipped; truncation keeps steps <= the checkpoint', () => {
  const file = path.join(work, 'unit.jsonl');
  appendSamples(file, { step: 10, elapsed: 1.5, samples: ['Once upon\na time', 'quote " and \u2028'] });
  const size1 = fs.statSync(file).size;
  appendSamples(file, { step: 20, elapsed: 3, samples: ['two'] });
  const text = fs.readFileSync(file, 'utf8');
  assert.equal(text.split('\n').length, 3, 'two lines, each ending with a newline');
  assert.ok(text.endsWith('\n'));
  assert.equal(JSON.parse(fs.readFileSync(file).subarray(0, size1).toString('utf8')).step, 10, 'the first append wrote one whole line');
  // a kill in the middle of a write leaves part of a line without its newline
  fs.appendFileSync(file, '{"step":30,"elapsed":4,"samp');
  const recs = readSamples(file);
  assert.deepEqual(recs.map((r) => r.step), [10, 20]);
  assert.deepEqual(recs[0]!.samples, ['Once upon\na time', 'quote " and \u2028']);
  truncateSamples(file, 15);
  assert.deepEqual(readSamples(file).map((r) => r.step), [10]);
  assert.ok(fs.readFileSync(file, 'utf8').endsWith('\n'), 'the torn line is gone after truncation');
  assert.deepEqual(readSamples(path.join(work, 'absent.jsonl')), []);
});

test('the trainer writes samples.jsonl at each evaluation and baselines.json before the first step', async () => {
  const data = path.join(tinystoriesSampleDir(), 'valid-00.txt');
  const config = loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=512', 'model.d_model=32', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=32', 'model.ffn_hidden=64',
      'train.batch_size=4', 'train.grad_accum=1', 'train.time_seconds=0', 'train.steps=30', 'train.eval_every=10', 'train.eval_batches=2',
      'train.log_every=1', 'train.checkpoint_minutes=0', 'train.sample_tokens=6', 'train.backend="wasm"', 'train.threads=1',
      'optim.warmup_steps=2', `data.paths=[${JSON.stringify(data)}]`,
    ],
  });
  const dir = path.join(work, 'run');
  const p = runPaths(dir);
  const events: TrainEvent[] = [];
  let baselinesAtFirstStep: unknown = null;
  const r = await train({ config, runDir: dir, resume: false }, (e) => {
    events.push(e);
    if (e.type === 'step' && e.record.step === 1) baselinesAtFirstStep = JSON.parse(fs.readFileSync(p.baselines, 'utf8'));
  }, () => false);
  const recs = readSamples(p.samples);
  assert.deepEqual(recs.map((x) => x.step), [10, 20, 30]);
  const emitted = events.filter((e): e is Extract<TrainEvent, { type: 'samples' }> => e.type === 'samples');
  assert.deepEqual(recs.map((x) => x.samples), emitted.map((e) => e.samples), 'the file holds what the events carried');
  assert.ok(recs.every((x) => x.elapsed > 0));
  assert.deepEqual(baselinesAtFirstStep, JSON.parse(JSON.stringify(r.baselines)), 'baselines.json exists at step 1 and is the report\'s');
});
