import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { loadConfig, type RunConfig } from './config.js';
import { train, DivergedError, type TrainEvent } from './trainer.js';
import { readLog } from './log.js';
import { allFinite, loadCheckpoint, readManifest } from './checkpoint.js';
import { planLayout } from '../model/layout.js';

// In-process runs of the trainer on a tiny model (wasm, one thread), on the TinyStories sample.

const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
let work = '';
let savedCache: string | undefined;

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-trainer-'));
  savedCache = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(work, 'cache'); // prepared data goes to the temp folder
});

after(() => {
  if (savedCache === undefined) delete process.env.POCKETLM_CACHE;
  else process.env.POCKETLM_CACHE = savedCache;
  fs.rmSync(work, { recursive: true, force: true });
});

function tinyConfig(set: string[] = []): RunConfig {
  return loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=512', 'model.d_model=32', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=32', 'model.ffn_hidden=64',
      'train.batch_size=8', 'train.grad_accum=1', 'train.time_seconds=0', 'train.steps=80', 'train.eval_every=40', 'train.eval_batches=4',
      'train.log_every=1', 'train.checkpoint_minutes=0', 'train.sample_tokens=8', 'train.backend="wasm"', 'train.threads=1',
      'optim.warmup_steps=10', `data.paths=[${JSON.stringify(DATA)}]`,
      ...set,
    ],
  });
}

test('the loss goes down on a tiny run, and the report compares with the baselines', async () => {
  const dir = path.join(work, 'learn');
  const events: TrainEvent[] = [];
  const r = await train({ config: tinyConfig(), runDir: dir, resume: false }, (e) => events.push(e), () => false);
  assert.equal(r.stopReason, 'steps');
  assert.equal(r.step, 80);
  assert.equal(r.tokens, 80 * 8 * 32);
  const log = readLog(path.join(dir, 'log.jsonl'));
  assert.equal(log.length, 80);
  const first = log.slice(0, 5).reduce((a, x) => a + x.loss, 0) / 5;
  const last = log.slice(-5).reduce((a, x) => a + x.loss, 0) / 5;
  // ln(512) = 6.24 at init; 80 steps of AdamW at 3e-3 on a 27k-parameter model get well below.
  assert.ok(first > 6, `initial loss ${first}`);
  assert.ok(last < first - 0.8, `loss went from ${first} to ${last}`);
  // the final val loss beats the uniform baseline (it starts at about the uniform value)
  assert.ok(r.valLoss! < r.baselines!.uniform.nats - 0.5, `val ${r.valLoss} vs uniform ${r.baselines!.uniform.nats}`);
  assert.equal(r.valLoss, log.at(-1)!.val_loss);
  assert.ok(Math.abs(r.valBpb! - log.at(-1)!.val_bpb!) < 1e-12);
  // the events a CLI needs arrive in order
  assert.equal(events.find((e) => e.type !== 'prepare')!.type, 'start');
  assert.equal(events.filter((e) => e.type === 'eval').length, 2);
  assert.equal(events.filter((e) => e.type === 'samples').length, 2);
  assert.equal(events.filter((e) => e.type === 'step').length, 80);
  // the run folder is self-contained
  for (const f of ['config.toml', 'tokenizer.json', 'log.jsonl', 'checkpoint.json']) assert.ok(fs.existsSync(path.join(dir, f)), f);
  assert.deepEqual(loadConfig({ file: path.join(dir, 'config.toml') }), tinyConfig());
});

test('grad_accum: two micro-batches of 4 rows are one optimizer step over 8 rows of tokens', async () => {
  const dir = path.join(work, 'accum');
  const r = await train({ config: tinyConfig(['train.batch_size=4', 'train.grad_accum=2', 'train.steps=3', 'train.eval_every=0']), runDir: dir, resume: false }, () => {}, () => false);
  assert.equal(r.tokens, 3 * 2 * 4 * 32);
  assert.equal(readManifest(dir)!.optim_scalars.step, 3);
});

test('a diverging run stops with one clear line and never checkpoints bad weights', async () => {
  const dir = path.join(work, 'diverge');
  // An absurd learning rate with no clipping overflows float32 within a few steps.
  const cfg = tinyConfig(['optim.lr=1e37', 'optim.min_lr=1e37', 'optim.warmup_steps=0', 'train.grad_clip=0', 'train.checkpoint_every=1', 'train.steps=50']);
  const err = await train({ config: cfg, runDir: dir, resume: false }, () => {}, () => false).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof DivergedError && err instanceof UserError, `expected DivergedError, got ${String(err)}`);
  assert.match(err.message, /^training diverged at step \d+: .* is not finite; /);
  assert.ok(!err.message.includes('\n'));
  // whatever checkpoint exists holds finite weights and loads
  const m = readManifest(dir);
  if (m) {
    const layout = planLayout(cfg.model);
    const weights = new Float32Array(layout.numParams);
    loadCheckpoint(dir, cfg.model as unknown as Record<string, number | boolean | string>, { tensors: layout.tensors, weights });
    assert.ok(allFinite(weights));
    assert.match(err.message, new RegExp(`last good checkpoint \\(step ${m.step}\\)`));
  }
});

test('schedule-free: resuming continues with y while the saved weights are x', async () => {
  const set = ['optim.name="sfadamw"', 'train.steps=12', 'train.eval_every=0', 'train.checkpoint_every=6', 'train.sample_tokens=0'];
  const full = path.join(work, 'sf-full');
  await train({ config: tinyConfig(set), runDir: full, resume: false }, () => {}, () => false);
  const split = path.join(work, 'sf-split');
  await train({ config: tinyConfig([...set, 'train.steps=6']), runDir: split, resume: false }, () => {}, () => false);
  await train({ config: tinyConfig(set), runDir: split, resume: true }, () => {}, () => false);
  const a = readLog(path.join(full, 'log.jsonl')).map((r) => [r.loss, r.grad_norm]);
  const b = readLog(path.join(split, 'log.jsonl')).map((r) => [r.loss, r.grad_norm]);
  assert.deepEqual(b, a);
  assert.ok(fs.readFileSync(path.join(full, 'checkpoint.json'), 'utf8').length > 0);
});
