import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OptimConfig } from '../optim/types.js';
import { budgetProgress, lrAt, lrAtFraction, lrForRun, warmupFactor } from './schedule.js';

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
  close(lrAtFraction(50, 0.9, sf), 1e-3, 'no decay by fraction either');
});

test('unknown total steps: constant after warmup', () => {
  close(lrAt(1000, 0, base), 1e-3, 'total 0');
});

test('lrAtFraction: warmup by steps, decay by budget fraction', () => {
  close(lrAtFraction(0, 0, base), 1e-4, 'first step');
  close(lrAtFraction(20, 0.5, base), (1e-3 + 1e-4) / 2, 'half the budget');
  close(lrAtFraction(20, 1, base), 1e-4, 'budget used up');
  close(lrAtFraction(20, 1.7, base), 1e-4, 'progress clamps at 1');
  close(lrAtFraction(4, 0.5, base), 0.5 * (1e-3 + 1e-4) / 2, 'warmup multiplies the decay');
});

test('budgetProgress takes the larger fraction; lrForRun picks the schedule', () => {
  assert.equal(budgetProgress(10, 30, { steps: 100, time_seconds: 60 }), 0.5);
  assert.equal(budgetProgress(80, 30, { steps: 100, time_seconds: 60 }), 0.8);
  assert.equal(budgetProgress(80, 30, { steps: 0, time_seconds: 0 }), 0);
  assert.equal(budgetProgress(80, 300, { steps: 0, time_seconds: 60 }), 1);
  // steps only: exactly lrAt, independent of the clock (deterministic resume)
  assert.equal(lrForRun(40, 123.4, { steps: 100, time_seconds: 0 }, base), lrAt(40, 100, base));
  assert.equal(lrForRun(40, 0, { steps: 100, time_seconds: 0 }, base), lrAt(40, 100, base));
  // time budget: by fraction
  close(lrForRun(20, 30, { steps: 0, time_seconds: 60 }, base), (1e-3 + 1e-4) / 2, 'time fraction');
});
