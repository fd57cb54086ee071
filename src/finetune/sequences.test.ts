import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IGNORE_ID } from '../model/gpt.js';
import { writeRow } from './sequences.js';

test('writeRow: the prompt and the padding are not scored, completion tokens are; a long completion is cut', () => {
  const T = 8;
  const inputs = new Int32Array(2 * T);
  const targets = new Int32Array(2 * T);
  const PAD = 0;
  writeRow({ prompt: [0, 5, 6], completion: [7, 8, 0] }, T, 1, inputs, targets, PAD);
  assert.deepEqual([...inputs.subarray(T)], [0, 5, 6, 7, 8, 0, PAD, PAD]);
  // position t predicts token t+1: the first scored target is the first completion token
  const I = IGNORE_ID;
  assert.deepEqual([...targets.subarray(T)], [I, I, 7, 8, 0, I, I, I]);
  assert.deepEqual([...inputs.subarray(0, T)], new Array(T).fill(0), 'row 0 untouched');
  writeRow({ prompt: [0, 5], completion: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }, T, 0, inputs, targets, PAD);
  assert.deepEqual([...inputs.subarray(0, T)], [0, 5, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...targets.subarray(0, T)], [I, 1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => writeRow({ prompt: new Array(T).fill(1), completion: [2] }, T, 0, inputs, targets, PAD), /does not fit/);
});
