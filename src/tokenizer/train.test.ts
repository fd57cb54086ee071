import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UserError } from '../util/errors.js';
import { countPieces, learnMerges, trainBpe, trainTokenizer } from './train.js';
import { sampleDocs } from './test-fixtures.js';

/** Reference trainer: recount every pair of every word before each merge. */
function naiveLearn(counts: Map<string, number>, numMerges: number, K: number): Array<[number, number]> {
  const words = [...counts].map(([p, n]) => ({ syms: Array.from(new TextEncoder().encode(p)), n }));
  const merges: Array<[number, number]> = [];
  while (merges.length < numMerges) {
    const pc = new Map<number, number>();
    for (const w of words) for (let i = 0; i + 1 < w.syms.length; i++) {
      const k = w.syms[i]! * K + w.syms[i + 1]!;
      pc.set(k, (pc.get(k) ?? 0) + w.n);
    }
    let bestKey = -1;
    let bestCount = 0;
    for (const [k, c] of pc) if (c > bestCount || (c === bestCount && k < bestKey)) { bestKey = k; bestCount = c; }
    if (bestKey < 0) break;
    const a = Math.floor(bestKey / K);
    const b = bestKey % K;
    const id = 256 + merges.length;
    merges.push([a, b]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.syms.length;) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) { out.push(id); i += 2; } else out.push(w.syms[i++]!);
      }
      w.syms = out;
    }
  }
  return merges;
}

test('incremental training equals the recount-everything reference (overlaps and ties included)', () => {
  // A tiny alphabet makes overlapping pairs ("aaaa", "abab") and equal counts common.
  const text = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'é', '\n', "'s"), maxLength: 80 });
  fc.assert(fc.property(fc.array(text, { maxLength: 6 }), fc.integer({ min: 1, max: 60 }), (docs, n) => {
    const counts = countPieces(docs);
    assert.deepEqual(learnMerges(counts, n, 1024), naiveLearn(counts, n, 1024));
  }), { numRuns: 300 });
});

test('incremental training equals the reference on real text', () => {
  const counts = countPieces(sampleDocs(40_000));
  assert.deepEqual(learnMerges(counts, 150, 1024), naiveLearn(counts, 150, 1024));
});

test('trained vocabulary: exact size, ids layout, deterministic, order of documents irrelevant', () => {
  const docs = sampleDocs(200_000);
  const tok = trainBpe(docs, { vocabSize: 700, specialTokens: ['<|endoftext|>', '<|pad|>'] });
  assert.equal(tok.vocabSize, 700);
  assert.equal(tok.numMerges, 700 - 256 - 2);
  assert.equal(tok.eotId, 698);
  assert.equal(tok.specialId('<|pad|>'), 699);
  assert.equal(tok.decode([65]), 'A'); // byte ids are the byte values
  const again = trainBpe([...docs].reverse(), { vocabSize: 700, specialTokens: ['<|endoftext|>', '<|pad|>'] });
  assert.equal(again.hash(), tok.hash());
  // The merges compress: fewer tokens than bytes on held-out text.
  const held = sampleDocs(260_000).slice(-20).join('\n');
  assert.ok(tok.encode(held).length < 0.45 * new TextEncoder().encode(held).length);
});

test('training takes any iterable and reports progress up to the total', () => {
  const docs = sampleDocs(50_000);
  function* gen(): Generator<string> { yield* docs; }
  const seen: Array<[number, number]> = [];
  const tok = trainTokenizer(gen(), { vocabSize: 400, onProgress: (d, t) => seen.push([d, t]) });
  assert.equal(tok.hash(), trainTokenizer(docs, { vocabSize: 400 }).hash());
  assert.deepEqual(seen[0], [0, 143]);
  assert.deepEqual(seen[seen.length - 1], [143, 143]);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![0] >= seen[i - 1]![0]);
});

test('a tiny corpus stops early when no pair is left; the minimum size has no merges', () => {
  const tok = trainBpe(['abab'], { vocabSize: 1000 });
  // pairs: ab, ba -> merge ab, then (ab)(ab) -> 2 merges in all
  assert.equal(tok.numMerges, 2);
  assert.equal(tok.vocabSize, 256 + 2 + 1);
  assert.deepEqual(tok.encode('abab'), [257]);
  const min = trainBpe(['hello'], { vocabSize: 257 });
  assert.equal(min.numMerges, 0);
  assert.deepEqual(min.encode('hi'), [104, 105]);
});

test('bad options are UserErrors naming the value', () => {
  assert.throws(() => trainTokenizer(['x'], { vocabSize: 256 }), (e: unknown) => e instanceof UserError && /vocab size 256 .*at least 257/.test(e.message));
  assert.throws(() => trainTokenizer(['x'], { vocabSize: 300, specialTokens: Array.from({ length: 50 }, (_, i) => `<${i}>`) }), /at least 306/);
  assert.throws(() => trainTokenizer(['x'], { vocabSize: 300, specialTokens: ['<a>', '<a>'] }), UserError);
  assert.throws(() => trainTokenizer(['x'], { vocabSize: 300, specialTokens: [''] }), UserError);
  assert.throws(() => trainTokenizer(['x'], { vocabSize: 12.5 }), UserError);
});
