import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { loadConfig, type RunConfig } from './config.js';
import { train, DivergedError, type TrainEvent } from './trainer.js';
import { readLog, readLogEvents, type BudgetEvent, type RollbackEvent } from './log.js';
import { allFinite, bestCheckpointDir, loadCheckpoint, readBestManifest, readManifest } from './checkpoint.js';
import { evaluateRun, openRun } from './inference.js';
import { lrAt, lrDecayingFrom, stepBudget } from './schedule.js';
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
  // normal training never calls a spike or rolls back
  assert.deepEqual(readLogEvents(path.join(dir, 'log.jsonl')), []);
  assert.equal(r.rollbacks, 0);
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

/** The weights of the run's checkpoint (all finite, or the test fails). */
function checkpointWeights(dir: string, cfg: RunConfig): Float32Array {
  const layout = planLayout(cfg.model);
  const weights = new Float32Array(layout.numParams);
  loadCheckpoint(dir, cfg.model as unknown as Record<string, number | boolean | string>, { tensors: layout.tensors, weights });
  return weights;
}

const rollbacksOf = (events: TrainEvent[]): RollbackEvent[] => events.flatMap((e) => (e.type === 'rollback' ? [e.rollback] : []));

test('a run that keeps diverging rolls back train.max_rollbacks times, then stops with one clear line; bad weights never reach the disk', async () => {
  const dir = path.join(work, 'diverge');
  // An absurd learning rate with no clipping overflows float32 within a few steps, at any scale.
  const cfg = tinyConfig(['optim.lr=1e37', 'optim.min_lr=1e37', 'optim.warmup_steps=0', 'train.grad_clip=0', 'train.checkpoint_every=1', 'train.steps=50']);
  const events: TrainEvent[] = [];
  const err = await train({ config: cfg, runDir: dir, resume: false }, (e) => events.push(e), () => false).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof DivergedError && err instanceof UserError, `expected DivergedError, got ${String(err)}`);
  assert.match(err.message, /^training diverged at step \d+: .* is not finite; gave up after 3 rollbacks \(train\.max_rollbacks\); /);
  assert.ok(!err.message.includes('\n'));
  assert.deepEqual(rollbacksOf(events).map((r) => [r.rollbacks, r.lr_scale]), [[1, 0.5], [2, 0.25], [3, 0.125]]);
  assert.deepEqual(readLogEvents(path.join(dir, 'log.jsonl')), rollbacksOf(events));
  // whatever checkpoint exists holds finite weights and loads
  const m = readManifest(dir);
  if (m) {
    assert.ok(allFinite(checkpointWeights(dir, cfg)));
    assert.match(err.message, new RegExp(`last good checkpoint \\(step ${m.step}\\)`));
  }
  // max_rollbacks = 0: the first divergence stops the run
  const events0: TrainEvent[] = [];
  const err0 = await train({ config: tinyConfig(['optim.lr=1e37', 'optim.min_lr=1e37', 'optim.warmup_steps=0', 'train.grad_clip=0', 'train.steps=50', 'train.max_rollbacks=0']), runDir: path.join(work, 'diverge0'), resume: false }, (e) => events0.push(e), () => false).then(() => null, (e: unknown) => e);
  assert.ok(err0 instanceof DivergedError);
  assert.match(err0.message, /^training diverged at step \d+: .* is not finite; no checkpoint was written; try a lower optim\.lr/);
  assert.deepEqual(rollbacksOf(events0), []);
});

test('an injected NaN loss rolls back to the last good state, halves the lr, skips the bad batches and carries on', async () => {
  const set = ['train.steps=20', 'train.eval_every=5', 'train.sample_tokens=0'];
  const dir = path.join(work, 'nan');
  const events: TrainEvent[] = [];
  const cfg = tinyConfig(set);
  const r = await train({ config: cfg, runDir: dir, resume: false, faults: { nanLossAtStep: 7 } }, (e) => events.push(e), () => false);
  assert.equal(r.step, 20);
  assert.equal(r.rollbacks, 1);
  assert.equal(r.lrScale, 0.5);
  // back to the evaluation at step 5, the last good state
  const [rb, ...more] = rollbacksOf(events);
  assert.deepEqual(more, []);
  assert.deepEqual(rb, { event: 'rollback', step: 7, to_step: 5, reason: 'the loss (NaN) is not finite', lr_scale: 0.5, rollbacks: 1 });
  assert.deepEqual(readLogEvents(path.join(dir, 'log.jsonl')), [rb]);
  // the log of the run as it stands: each step once; before the rollback as without the fault
  const log = readLog(path.join(dir, 'log.jsonl'));
  assert.deepEqual(log.map((x) => x.step), Array.from({ length: 20 }, (_, i) => i + 1));
  const clean = path.join(work, 'nan-clean');
  await train({ config: tinyConfig(set), runDir: clean, resume: false }, () => {}, () => false);
  const cleanLog = readLog(path.join(clean, 'log.jsonl'));
  assert.deepEqual(log.slice(0, 5).map((x) => x.loss), cleanLog.slice(0, 5).map((x) => x.loss));
  // from the rollback on: half the scheduled learning rate
  for (const x of log.slice(5)) assert.equal(x.lr, lrAt(x.step - 1, 20, cfg.optim) * 0.5, `lr at step ${x.step}`);
  assert.ok(log.every((x) => Number.isFinite(x.loss)));
  assert.ok(allFinite(checkpointWeights(dir, cfg)));
  // the batches of the discarded step 6 and of the bad step 7 were skipped, not replayed:
  // the data position is that of a clean run of 22 steps
  const m = readManifest(dir)!;
  assert.equal(m.lr_scale, 0.5);
  assert.equal(m.rollbacks, 1);
  const clean22 = path.join(work, 'nan-clean22');
  await train({ config: tinyConfig([...set, 'train.steps=22']), runDir: clean22, resume: false }, () => {}, () => false);
  assert.deepEqual(m.loader, readManifest(clean22)!.loader);
});

test('after a rollback, a run stopped and resumed continues exactly (lr scale and rollbacks are in the checkpoint)', async () => {
  const cfg = tinyConfig(['train.steps=20', 'train.eval_every=5', 'train.sample_tokens=0', 'train.max_rollbacks=1']);
  const full = path.join(work, 'nan-full');
  await train({ config: cfg, runDir: full, resume: false, faults: { nanLossAtStep: 7 } }, () => {}, () => false);
  const split = path.join(work, 'nan-split');
  let step = 0;
  const r1 = await train({ config: cfg, runDir: split, resume: false, faults: { nanLossAtStep: 7 } }, (e) => {
    if (e.type === 'step') step = e.record.step;
  }, () => step >= 12);
  assert.equal(r1.stopReason, 'signal');
  assert.equal(r1.step, 12);
  await train({ config: cfg, runDir: split, resume: true }, () => {}, () => false);
  const numbers = (dir: string) => readLog(path.join(dir, 'log.jsonl')).map((x) => [x.step, x.loss, x.lr, x.grad_norm, x.val_loss]);
  assert.deepEqual(numbers(split), numbers(full));
  assert.deepEqual(readLogEvents(path.join(split, 'log.jsonl')), readLogEvents(path.join(full, 'log.jsonl')));
  // max_rollbacks = 1 was used up before the stop: a second divergence after resuming gives up
  await assert.rejects(
    train({ config: tinyConfig(['train.steps=30', 'train.eval_every=5', 'train.sample_tokens=0', 'train.max_rollbacks=1']), runDir: split, resume: true, faults: { nanLossAtStep: 25 } }, () => {}, () => false),
    (e: unknown) => e instanceof DivergedError && /gave up after 1 rollback \(/.test(e.message),
  );
});

test('a loss spike past spike_factor times its recent average rolls back as well; spike_factor = 0 turns that off', async () => {
  const set = ['train.steps=45', 'train.eval_every=10', 'train.sample_tokens=0'];
  const events: TrainEvent[] = [];
  const r = await train({ config: tinyConfig(set), runDir: path.join(work, 'spike'), resume: false, faults: { lossSpikeAtStep: 40 } }, (e) => events.push(e), () => false);
  const [rb, ...more] = rollbacksOf(events);
  assert.deepEqual(more, []);
  assert.equal(rb!.step, 40);
  assert.equal(rb!.to_step, 30);
  assert.match(rb!.reason, /^the loss \(\d+\.\d+\) is more than 3x its recent average \(\d+\.\d+\)$/);
  assert.equal(r.step, 45);
  assert.ok(r.valLoss! < 6, `recovered: val loss ${r.valLoss}`);
  const off: TrainEvent[] = [];
  await train({ config: tinyConfig([...set, 'train.spike_factor=0']), runDir: path.join(work, 'spike-off'), resume: false, faults: { lossSpikeAtStep: 40 } }, (e) => off.push(e), () => false)
    .catch(() => null);
  assert.ok(!rollbacksOf(off).some((x) => x.step === 40), 'no rollback at the spike itself');
});

test('best/ is written at each evaluation that lowers the validation loss, and only then', async () => {
  const dir = path.join(work, 'best');
  // A high constant learning rate: the validation loss goes down, up, and down again.
  const cfg = tinyConfig(['train.steps=30', 'train.eval_every=5', 'train.eval_batches=1', 'optim.lr=3e-2', 'optim.schedule="constant"', 'train.sample_tokens=0']);
  const seen: { step: number; val: number; best: boolean; onDisk: number | null }[] = [];
  const r = await train({ config: cfg, runDir: dir, resume: false }, (e) => {
    if (e.type === 'eval') seen.push({ step: e.record.step, val: e.record.val_loss!, best: e.best, onDisk: readBestManifest(dir)?.step ?? null });
  }, () => false);
  assert.equal(seen.length, 6);
  let min = Infinity;
  let bestStep: number | null = null;
  for (const x of seen) {
    const improves = x.val < min;
    assert.equal(x.best, improves, `step ${x.step}`);
    if (improves) [min, bestStep] = [x.val, x.step];
    // on disk at the moment of each evaluation: the best so far
    assert.equal(x.onDisk, bestStep, `best on disk after the evaluation at step ${x.step}`);
  }
  assert.ok(seen.some((x) => !x.best), 'some evaluation did not improve');
  assert.ok(bestStep! < 30, 'the best is not the last');
  const m = readBestManifest(dir)!;
  assert.equal(m.val_loss, min);
  assert.deepEqual(r.best, { step: bestStep, valLoss: min, valBpb: m.val_bpb });
  // weights only, one folder
  assert.deepEqual(Object.keys(m.files), ['model.safetensors']);
  assert.deepEqual(fs.readdirSync(bestCheckpointDir(dir)).filter((n) => !n.startsWith('.')).sort(), ['checkpoint.json', `ckpt-${String(bestStep).padStart(6, '0')}`]);
  // sample/eval read best by default, last on request: each reproduces its own evaluation
  for (const [choice, step, loss] of [['best', bestStep, min], ['last', 30, r.valLoss]] as const) {
    const run = await openRun(dir, { backend: 'wasm', threads: 1, checkpoint: choice });
    try {
      assert.equal(run.checkpoint, choice);
      assert.equal(run.notice, null);
      assert.equal(run.manifest.step, step);
      assert.equal(evaluateRun(run, {}).loss, loss);
    } finally {
      await run.close();
    }
  }
  // resuming keeps the best so far; a fresh start over the folder is refused and leaves it be
  const r2 = await train({ config: tinyConfig(['train.steps=31', 'train.eval_every=5', 'train.eval_batches=1', 'optim.lr=1e-9', 'optim.min_lr=1e-9', 'optim.schedule="constant"', 'train.sample_tokens=0']), runDir: dir, resume: true }, () => {}, () => false);
  assert.equal(r2.best!.step, bestStep);
  await assert.rejects(train({ config: tinyConfig(['train.steps=2', 'train.eval_every=0', 'train.sample_tokens=0']), runDir: dir, resume: false }, () => {}, () => false), /already holds a run/);
  assert.equal(readBestManifest(dir)!.step, bestStep);
});

test('a time budget becomes a step budget once the speed is measured; the run schedules and stops by it', async () => {
  const dir = path.join(work, 'timed');
  const set = ['train.steps=0', 'train.eval_every=0', 'train.sample_tokens=0', 'train.log_every=1'];
  const cfg = tinyConfig([...set, 'train.time_seconds=0.5']);
  const budgets: BudgetEvent[] = [];
  const r = await train({ config: cfg, runDir: dir, resume: false }, (e) => e.type === 'budget' && budgets.push(e.budget), () => false);
  assert.equal(budgets.length, 1);
  const b = r.stepBudget!;
  assert.equal(r.stopReason, 'time');
  assert.equal(r.step, b.steps);
  assert.ok(b.at_step >= 20 && b.at_step < b.steps, `measured at step ${b.at_step} of ${b.steps}`);
  assert.deepEqual(budgets[0], { event: 'budget', step: b.at_step, time_seconds: 0.5, steps: b.steps, seconds_per_step: b.seconds_per_step });
  assert.deepEqual(readLogEvents(path.join(dir, 'log.jsonl')), budgets);
  assert.deepEqual(readManifest(dir)!.step_budget, b);
  // the learning rate: warmup then the peak until measured, then the decay to min_lr at the budget
  const log = readLog(path.join(dir, 'log.jsonl'));
  assert.equal(log.length, b.steps);
  for (const x of log) {
    const want = x.step <= b.at_step ? lrAt(x.step - 1, 0, cfg.optim) : lrDecayingFrom(x.step - 1, b.at_step, b.steps, cfg.optim);
    assert.equal(x.lr, want, `lr at step ${x.step}`);
  }
  // resumed with a longer budget: the same measurement, more steps
  const r2 = await train({ config: tinyConfig([...set, 'train.time_seconds=0.8']), runDir: dir, resume: true }, () => {}, () => false);
  const b2 = stepBudget(0.8, b.at_step, b.at_elapsed, b.seconds_per_step);
  assert.deepEqual(r2.stepBudget, b2);
  assert.equal(r2.step, b2.steps);
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
