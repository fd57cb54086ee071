import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fc from 'fast-check';
import { forEachPieceRegex, pretokenize, specialTokensRegex, splitOnSpecials } from './pretokenize.js';
import { nastyString, sampleFile, STRESS_TEXT, stringWithLoneSurrogates } from './test-fixtures.js';

function viaRegex(text: string): string[] {
  const out: string[] = [];
  forEachPieceRegex(text, (p) => out.push(p));
  return out;
}

test('GPT-2 split: contractions, letters, numbers, punctuation runs, whitespace', () => {
  assert.deepEqual(pretokenize("Hello world, it's 2024!!  Ok\n\n  x"), ['Hello', ' world', ',', ' it', "'s", ' 2024', '!!', ' ', ' Ok', '\n\n ', ' x']);
  assert.deepEqual(pretokenize("we'll I'M don't ''s"), ['we', "'ll", ' I', "'", 'M', ' don', "'t", " ''", 's']);
  assert.deepEqual(pretokenize('a  \n'), ['a', '  \n']);
  assert.deepEqual(pretokenize('<|endoftext|>'), ['<|', 'endoftext', '|>']);
  assert.deepEqual(pretokenize('١٢٣abc Ⅻ'), ['١٢٣', 'abc', ' Ⅻ']);
});

test('the scanner matches the regex exactly (random strings, lone surrogates, real text)', () => {
  fc.assert(fc.property(nastyString, (s) => { assert.deepEqual(pretokenize(s), viaRegex(s)); }), { numRuns: 2000 });
  fc.assert(fc.property(stringWithLoneSurrogates, (s) => { assert.deepEqual(pretokenize(s), viaRegex(s)); }), { numRuns: 1000 });
  // every BMP code unit and a sample of astral code points, each between spaces and letters
  const chars: string[] = [];
  for (let c = 0; c < 0x10000; c++) chars.push(String.fromCharCode(c));
  for (let c = 0x10000; c < 0x110000; c += 97) chars.push(String.fromCodePoint(c));
  const all = chars.map((ch) => ` ${ch}a ${ch}${ch}1 ${ch} `).join('');
  assert.deepEqual(pretokenize(all), viaRegex(all));
  assert.deepEqual(pretokenize(STRESS_TEXT), viaRegex(STRESS_TEXT));
  const valid = fs.readFileSync(sampleFile('valid-00.txt'), 'utf8');
  assert.deepEqual(pretokenize(valid), viaRegex(valid));
});

test('pieces always concatenate back to the text', () => {
  fc.assert(fc.property(stringWithLoneSurrogates, (s) => { assert.equal(pretokenize(s).join(''), s); }), { numRuns: 500 });
});

test('special tokens split as whole strings, longest first', () => {
  const re = specialTokensRegex(['<|a|>', '<|a|><|b|>', '.']);
  assert.deepEqual(splitOnSpecials(re, 'x<|a|><|b|>y<|a|>.'), [
    { text: 'x', special: false }, { text: '<|a|><|b|>', special: true }, { text: 'y', special: false },
    { text: '<|a|>', special: true }, { text: '.', special: true },
  ]);
  assert.deepEqual(splitOnSpecials(null, 'abc'), [{ text: 'abc', special: false }]);
  assert.deepEqual(splitOnSpecials(re, ''), []);
});
