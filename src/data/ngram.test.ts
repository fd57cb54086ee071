import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addKCrossEntropy, buildKneserNey, countNgrams, kneserNeyCrossEntropy, knTotalProbability } from './ngram.js';

/** A deterministic token stream with structure a trigram can learn (a noisy cycle). */
function stream(n: number, V: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const noise = (s >>> 16) % 10 === 0;
    out.push(noise ? (s >>> 8) % V : i < 2 ? i : (3 * out[i - 1]! + (out[i - 2]! % 3)) % V);
  }
  return out;
}

test('counts of 1-, 2- and 3-grams', () => {
  const c = countNgrams([1, 2, 1, 2, 1], 3, 3);
  assert.equal(c.counts[0]!.get(1), 3);
  assert.equal(c.counts[1]!.get(1 * 3 + 2), 2);
  assert.equal(c.counts[1]!.get(2 * 3 + 1), 2);
  assert.equal(c.counts[2]!.get((1 * 3 + 2) * 3 + 1), 2);
  assert.equal(c.counts[2]!.size, 2);
});

test('Kneser-Ney distributions sum to 1 for seen and unseen histories', () => {
  const V = 12;
  const c = countNgrams(stream(3000, V, 1), V, 3);
  for (const order of [1, 2, 3]) {
    const m = buildKneserNey(c, order);
    for (const h of [[0, 1], [3, 4], [11, 11], [5, 7]]) {
      assert.ok(Math.abs(knTotalProbability(m, h) - 1) < 1e-9, `order ${order} history ${h}`);
    }
  }
});

test('add-k with k=1 on an unseen stream equals the hand-computed value', () => {
  // train: [0,0,1]; V=2; unigram counts {0:2,1:1}; eval positions from 2: token 1 then 0
  const c = countNgrams([0, 0, 1], 2, 3);
  const uni = addKCrossEntropy(c, 1, 1, [0, 0, 1, 0]);
  const expected = -(Math.log((1 + 1) / (3 + 2)) + Math.log((2 + 1) / (3 + 2))) / 2;
  assert.ok(Math.abs(uni - expected) < 1e-12);
  // bigram: P(1|0) = (c(0,1)+1)/(c(0)+2) = 2/4, P(0|1) = (0+1)/(1+2)
  const bi = addKCrossEntropy(c, 2, 1, [0, 0, 1, 0]);
  assert.ok(Math.abs(bi - -(Math.log(2 / 4) + Math.log(1 / 3)) / 2) < 1e-12);
});

test('on structured data: trigram < bigram < unigram ~ uniform (Kneser-Ney; the stream is near-uniform in unigrams)', () => {
  const V = 30;
  const c = countNgrams(stream(30000, V, 2), V, 3);
  const val = stream(3000, V, 3);
  const h = [1, 2, 3].map((o) => kneserNeyCrossEntropy(buildKneserNey(c, o), val));
  assert.ok(h[2]! < h[1]! && h[1]! < h[0]! && h[0]! < Math.log(V) + 0.01, h.join(' '));
});
