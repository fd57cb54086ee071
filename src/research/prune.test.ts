import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rungSteps, shouldPrune } from './prune.js';

test('prune: stops a trial above the median of the earlier trials at the same rung', () => {
  const earlier = [[2.0, 1.8], [2.2, 1.9], [2.4, 2.1], [2.6]];
  // rung 0: median of 2.0, 2.2, 2.4, 2.6 = 2.3
  assert.equal(shouldPrune(2.31, 0, earlier), true);
  assert.equal(shouldPrune(2.3, 0, earlier), false); // at the median: not worse
  assert.equal(shouldPrune(2.1, 0, earlier), false);
  // rung 1: three trials reached it (the fourth was pruned at rung 0): median 1.9
  assert.equal(shouldPrune(1.95, 1, earlier), true);
  assert.equal(shouldPrune(1.85, 1, earlier), false);
  // fewer than minTrials earlier trials at the rung: never
  assert.equal(shouldPrune(9, 1, earlier, 4), false);
  assert.equal(shouldPrune(9, 2, earlier), false);
  assert.equal(shouldPrune(9, 0, earlier.slice(0, 2)), false);
  assert.equal(shouldPrune(9, 0, earlier.slice(0, 2), 2), true);
  // a diverged value is worse than any median; a NaN in an earlier trial does not count
  assert.equal(shouldPrune(NaN, 0, earlier), true);
  assert.equal(shouldPrune(2.5, 0, [[NaN], [2.0], [2.2], [2.4]]), true); // median 2.2 of three
  assert.equal(shouldPrune(2.5, 0, [[NaN], [2.0], [2.2]]), false); // only two count
});

test('prune: rung steps are evenly spread, distinct and strictly inside the trial', () => {
  assert.deepEqual(rungSteps(1000, 3), [250, 500, 750]);
  assert.deepEqual(rungSteps(100, 4), [20, 40, 60, 80]);
  assert.deepEqual(rungSteps(10, 2), [3, 7]); // 3.33 -> 3, 6.67 -> 7
  assert.deepEqual(rungSteps(3, 5), [1, 2]); // 0.5 -> 1, 1, 1.5 -> 2, 2, 2.5 -> 3 (= total, dropped)
  assert.deepEqual(rungSteps(1, 3), []);
  assert.deepEqual(rungSteps(1000, 0), []);
});
