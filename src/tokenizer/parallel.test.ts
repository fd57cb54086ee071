import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkDocs, encodeParallel } from './parallel.js';
import { sampleDocs, smallTrained, STRESS_TEXT } from './test-fixtures.js';

const tok = smallTrained();

test('encodeParallel (workers only, and workers + this thread) equals encode() per document, in order', async () => {
  const docs = [...sampleDocs(120_000), STRESS_TEXT, '', 'a<|endoftext|>b'];
  // Force the workers on a small input: tiny chunks, no inline shortcut.
  for (const useThisThread of [false, true]) {
    const got = await encodeParallel(tok, docs, { threads: 2, inlineBelowChars: 0, chunkChars: 5_000, useThisThread });
    assert.equal(got.length, docs.length);
    docs.forEach((d, i) => {
      assert.ok(got[i] instanceof Uint32Array);
      assert.deepEqual(Array.from(got[i]!), tok.encode(d), `doc ${i}`);
    });
    assert.ok(!got[got.length - 1]!.includes(tok.eotId)); // special strings are ordinary text here
  }
});

test('encodeParallel on one thread and on small inputs encodes inline, same result', async () => {
  const docs = sampleDocs(20_000);
  const a = await encodeParallel(tok, docs, { threads: 1 });
  const b = await encodeParallel(tok, docs);
  assert.deepEqual(a.map((x) => Array.from(x)), docs.map((d) => tok.encode(d)));
  assert.deepEqual(b, a);
  assert.deepEqual(await encodeParallel(tok, [], { inlineBelowChars: 0 }), []);
});

test('chunkDocs covers every document once, in order', () => {
  const docs = ['aaaa', 'b', 'cc', 'dddddd', 'e'];
  const chunks = chunkDocs(docs, 5);
  assert.deepEqual(chunks, [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 4, end: 5 }]);
});
