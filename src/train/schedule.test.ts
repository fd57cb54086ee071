import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OptimConfig } from '../optim/types.js';
import { lrAt, lrDecayingFrom, lrForRun, stepBudget, totalSteps, warmupFactor } from './schedule.js';

const base: OptimConfig = {
  name: 'adamw', lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, schedule: 'cosine',
  beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1,
};
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${what}: ${a} vs ${b}`);

test('warmup is linear from lr/warmup to lr, then the peak', () => {
  close(lrAt(0, 100, base), 1e-4, 'step 0');
  close(lrAt(4, 100, base), 5e-4, 'step 4');
  close(lrAt(9, 100, base), 1e-3, 'last warmup step');
  close(lrAt(10, 100, base), 1e-3, 'first decay step');
  for (let s = 1; s < 10; s++) assert.ok(lrAt(s, 100, base) > lrAt(s - 1, 100, base), 'increasing');
  assert.equal(warmupFactor(3, 0), 1, 'no warmup');
  close(lrAt(0, 100, { ...base, warmup_steps: 0 }), 1e-3, 'no warmup starts at the peak');
});

test('cosine decays to min_lr at totalSteps, through the midpoint', () => {
  close(lrAt(55, 100, base), (1e-3 + 1e-4) / 2, 'halfway through the decay');
  close(lrAt(100, 100, base), 1e-4, 'end');
  close(lrAt(500, 100, base), 1e-4, 'beyond the end it stays at min_lr');
  close(lrAt(10 + 90 / 4, 100, base), 1e-4 + 9e-4 * 0.5 * (1 + Math.cos(Math.PI / 4)), 'quarter');
  for (let s = 11; s <= 100; s++) assert.ok(lrAt(s, 100, base) < lrAt(s - 1, 100, base), `decreasing at ${s}`);
});

test('linear decays in a straight line, constant stays at lr', () => {
  const lin = { ...base, schedule: 'linear' as const };
  close(lrAt(55, 100, lin), 5.5e-4, 'linear midpoint');
  close(lrAt(10 + 30, 100, lin), 1e-3 - 9e-4 / 3, 'linear third');
  close(lrAt(100, 100, lin), 1e-4, 'linear end');
  const cst = { ...base, schedule: 'constant' as const };
  close(lrAt(5, 100, cst), 6e-4, 'constant still warms up');
  close(lrAt(99, 100, cst), 1e-3, 'constant end');
});

test('Schedule-Free gets warmup then constant whatever the schedule says', () => {
  const sf = { ...base, name: 'sfadamw' as const, schedule: 'cosine' as const };
  close(lrAt(4, 100, sf), 5e-4, 'warmup');
  close(lrAt(99, 100, sf), 1e-3, 'no decay');
  close(lrDecayingFrom(90, 50, 100, sf), 1e-3, 'no decay after a step budget either');
});

test('unknown total steps: constant after warmup', () => {
  close(lrAt(1000, 0, base), 1e-3, 'total 0');
});

test('lrDecayingFrom: the peak lr until the decay starts, then down to min_lr at the total', () => {
  for (const s of [0, 4, 9]) assert.equal(lrDecayingFrom(s, 30, 100, base), lrAt(s, 100, base), `warmup at ${s}`);
  close(lrDecayingFrom(20, 30, 100, base), 1e-3, 'peak before the start');
  close(lrDecayingFrom(30, 30, 100, base), 1e-3, 'peak at the start');
  close(lrDecayingFrom(65, 30, 100, base), (1e-3 + 1e-4) / 2, 'halfway from the start to the total');
  close(lrDecayingFrom(100, 30, 100, base), 1e-4, 'min_lr at the total');
  // a start inside the warmup decays from the end of the warmup, as lrAt
  for (const s of [10, 40, 99]) assert.equal(lrDecayingFrom(s, 3, 100, base), lrAt(s, 100, base));
  close(lrDecayingFrom(500, 30, 0, base), 1e-3, 'unknown total: the peak');
});

test('a time budget becomes steps: what is left of it at the measured speed', () => {
  const b = stepBudget(60, 40, 10, 0.25);
  assert.deepEqual(b, { time_seconds: 60, at_step: 40, at_elapsed: 10, seconds_per_step: 0.25, steps: 240 });
  assert.equal(stepBudget(60, 40, 10, 0.3).steps, 40 + 166, 'whole steps that fit');
  assert.equal(stepBudget(60, 40, 70, 0.25).steps, 40, 'time already used: stop now');
  assert.equal(totalSteps({ steps: 100, time_seconds: 0 }, null), 100);
  assert.equal(totalSteps({ steps: 100, time_seconds: 0 }, b), 100, 'no time budget: the budget does not apply');
  assert.equal(totalSteps({ steps: 0, time_seconds: 60 }, null), 0, 'not measured yet');
  assert.equal(totalSteps({ steps: 0, time_seconds: 60 }, b), 240);
  assert.equal(totalSteps({ steps: 100, time_seconds: 60 }, b), 100, 'the smaller of both');
  assert.equal(totalSteps({ steps: 500, time_seconds: 60 }, b), 240);
});

test('lrForRun never reads the clock: by steps, then warmup and peak, then the step budget', () => {
  // steps only: exactly lrAt
  assert.equal(lrForRun(40, { steps: 100, time_seconds: 0 }, base, null), lrAt(40, 100, base));
  // timed, speed not measured yet: warmup, then the peak lr
  const timed = { steps: 0, time_seconds: 60 };
  assert.equal(lrForRun(3, timed, base, null), lrAt(3, 100, base));
  close(lrForRun(35, timed, base, null), 1e-3, 'peak until measured');
  // measured at step 40: decay from there to the budget
  const b = stepBudget(60, 40, 10, 0.25);
  close(lrForRun(40, timed, base, b), 1e-3, 'continuous at the conversion');
  close(lrForRun(140, timed, base, b), (1e-3 + 1e-4) / 2, 'halfway through the budget');
  close(lrForRun(240, timed, base, b), 1e-4, 'end of the budget');
  // a step count below the budget ends the decay there
  close(lrForRun(70, { steps: 100, time_seconds: 60 }, base, b), (1e-3 + 1e-4) / 2, 'steps bound first');
});
