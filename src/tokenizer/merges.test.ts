import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import './test-fixtures.js'; // fixed fast-check seed
import { applyMergesHeap, applyMergesLinear, MergeTable, MinHeap } from './merges.js';

/** Reference: rescan every pair after every merge; lowest rank, leftmost on ties. */
function naiveMerge(input: number[], merges: Array<[number, number]>, results: number[]): number[] {
  const syms = input.slice();
  for (;;) {
    let best = Infinity;
    let at = -1;
    for (let i = 0; i + 1 < syms.length; i++) {
      const r = merges.findIndex(([a, b]) => a === syms[i] && b === syms[i + 1]);
      if (r >= 0 && r < best) { best = r; at = i; }
    }
    if (at < 0) return syms;
    syms.splice(at, 2, results[best]!);
  }
}

// A random merge list over a 4-symbol alphabet: each merge joins two existing ids into a new one.
const mergeList = fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 40 }).map((raw) => {
  const merges: Array<[number, number]> = [];
  const results: number[] = [];
  let nextId = 4;
  for (const [x, y] of raw) {
    merges.push([x % nextId, y % nextId]);
    results.push(nextId++);
  }
  return { merges, results };
});

test('linear and heap merging agree with the naive reference (ties go leftmost)', () => {
  fc.assert(fc.property(mergeList, fc.array(fc.nat(3), { maxLength: 120 }), ({ merges, results }, input) => {
    const table = new MergeTable(merges, results);
    const want = naiveMerge(input, merges, results);
    if (input.length >= 2) {
      assert.deepEqual(applyMergesLinear(input, table), want);
      assert.deepEqual(applyMergesHeap(input, table), want);
    }
  }), { numRuns: 400 });
});

test('MergeTable: rank lookup, missing pairs, duplicate pairs keep the first rank', () => {
  const t = new MergeTable([[1, 2], [3, 4], [1, 2]], [10, 11, 12]);
  assert.equal(t.rank(1, 2), 0);
  assert.equal(t.rank(3, 4), 1);
  assert.equal(t.rank(2, 1), -1);
  assert.equal(t.rank(0, 0), -1);
});

test('MinHeap pops in ascending order', () => {
  fc.assert(fc.property(fc.array(fc.nat()), (xs) => {
    const h = new MinHeap();
    for (const x of xs) h.push(x);
    const out: number[] = [];
    while (h.length) out.push(h.pop());
    assert.deepEqual(out, [...xs].sort((a, b) => a - b));
  }));
});
