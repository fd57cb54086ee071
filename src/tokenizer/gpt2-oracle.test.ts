// Independent oracle: js-tiktoken's own GPT-2 encoder (tiktoken's rank-based algorithm, a
// different implementation from ours) must give exactly our ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fc from 'fast-check';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { loadGpt2 } from './load.js';
import { nastyString, sampleFile, STRESS_TEXT, stringWithLoneSurrogates } from './test-fixtures.js';

const ours = await loadGpt2();
const oracle = new Tiktoken(gpt2Ranks);
const plain = (s: string): number[] => oracle.encode(s, [], []); // special strings as ordinary text
const withSpecial = (s: string): number[] => oracle.encode(s, 'all');

test('GPT-2 vocabulary: size, <|endoftext|>, known ids', () => {
  assert.equal(ours.vocabSize, 50257);
  assert.equal(ours.eotId, 50256);
  assert.equal(ours.numMerges, 50000);
  assert.deepEqual(ours.encode('Hello world'), [15496, 995]);
});

test('whole valid-00.txt: ids equal js-tiktoken gpt2, with and without special matching', () => {
  const text = fs.readFileSync(sampleFile('valid-00.txt'), 'utf8');
  const want = withSpecial(text);
  assert.ok(want.includes(50256)); // the file separates stories with <|endoftext|>
  assert.deepEqual(ours.encodeWithSpecial(text), want);
  assert.deepEqual(ours.encode(text), plain(text));
  assert.equal(ours.decode(want), text);
});

test('odd Unicode stress text equals js-tiktoken', () => {
  assert.deepEqual(ours.encode(STRESS_TEXT), plain(STRESS_TEXT));
  assert.deepEqual(ours.encodeWithSpecial(STRESS_TEXT), withSpecial(STRESS_TEXT));
  for (const line of STRESS_TEXT.split('\n')) assert.deepEqual(ours.encode(line), plain(line), line);
});

test('random strings (lone surrogates included) equal js-tiktoken', () => {
  fc.assert(fc.property(nastyString, (s) => {
    assert.deepEqual(ours.encode(s), plain(s));
    assert.deepEqual(ours.encodeWithSpecial(s), withSpecial(s));
  }), { numRuns: 500 });
  fc.assert(fc.property(stringWithLoneSurrogates, (s) => {
    assert.deepEqual(ours.encode(s), plain(s));
  }), { numRuns: 300 });
});

test('long pre-tokens (the heap path) equal js-tiktoken', () => {
  const letters = fc.string({ unit: fc.constantFrom('a', 'b', 'e', 'r', 't', 'h', 'é', 'ß'), minLength: 49, maxLength: 300 });
  fc.assert(fc.property(letters, (s) => {
    assert.deepEqual(ours.encode(s), plain(s));
  }), { numRuns: 100 });
  const spaces = ' '.repeat(100) + 'x' + '\n'.repeat(70);
  assert.deepEqual(ours.encode(spaces), plain(spaces));
});
