// Shared inputs for the tokenizer tests (imported only by *.test.ts files).

import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { tinystoriesSampleDir } from '../util/paths.js';
import { trainBpe } from './train.js';
import { splitDocuments } from './text-io.js';
import type { BpeTokenizer } from './bpe-tokenizer.js';

// Property tests run with a fixed seed, so a run is repeatable (a failure prints its seed and path).
fc.configureGlobal({ seed: 20261124 });

export function sampleFile(name: string): string {
  return path.join(tinystoriesSampleDir(), name);
}

/** The first `chars` characters of the TinyStories training sample, as documents. */
export function sampleDocs(chars: number): string[] {
  return splitDocuments(fs.readFileSync(sampleFile('train-00.txt'), 'utf8').slice(0, chars));
}

/** A small tokenizer trained on TinyStories (fast: ~300k characters, 1024 ids). */
export function smallTrained(): BpeTokenizer {
  return trainBpe(sampleDocs(300_000), { vocabSize: 1024 });
}

/** Odd Unicode: combining marks, ZWJ emoji, flags, CJK, RTL, control characters, odd spaces and digits. */
export const STRESS_TEXT = [
  'e\u0301 a\u0308\u0304 Z\u0351\u0352\u0353\u0354 café naïve',
  '👩‍👩‍👧‍👦 👍🏽 🇯🇵🇫🇷 🏳️‍🌈 ❤️ ☺︎ 🙂🙂🙂',
  '中文字符，日本語のテキスト。한국어 텍스트',
  'שלום עולם مرحبا بالعالم \u202Eevil\u202C \u200Fmark',
  '\u0000\u0001\u0007\b\u001b[31mred\u001b[0m \u007f\u0080\u009f',
  'line\u0085next\u2028sep\u2029para\u000bvt\u000cff\r\nwin\rmac',
  'nb\u00a0sp\u2003em\u3000ideo\u202fnarrow \ufeffbom\u200b\u200c\u200dzw',
  '١٢٣ ४५६ Ⅻ ½ ² 𝟙𝟚 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 123abc456',
  "I'm you're he'll she'd it's we've THEY'LL 'S 's'''",
  '    \n\n\t \t  \n   x  ',
  'a'.repeat(120) + ' ' + '🙂'.repeat(40) + ' ' + 'z9'.repeat(60),
  '<|endoftext|> <|endoftext <| endoftext |>',
].join('\n');

/** Strings of pieces chosen to hit every branch of the split pattern, plus any code point. */
const PIECES = [
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", ' ', '  ', '\n', '\r\n', '\t', '\u00a0', '\u3000',
  'a', 'the', 'Hello', ' world', 'é', 'e\u0301', '1', '42', '٣', 'Ⅻ', '!', '...', '<|endoftext|>', '<|', '|>',
  '👩‍👧', '🇯🇵', '中文', 'שלום', '\u0000', '\ufeff', '\u200d',
];
const codePoint = fc.integer({ min: 0, max: 0x10ffff })
  .filter((c) => c < 0xd800 || c > 0xdfff)
  .map((c) => String.fromCodePoint(c));
const unit = fc.oneof(fc.constantFrom(...PIECES), codePoint);

/** Well-formed strings (no lone surrogates). */
export const nastyString = fc.string({ unit, maxLength: 60 });

/** Strings that may hold lone surrogates (not valid UTF-16, so with no UTF-8 form). */
export const stringWithLoneSurrogates = fc.string({
  unit: fc.oneof(unit, fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))),
  maxLength: 40,
});

/** What a JS string becomes in UTF-8: each lone surrogate replaced by U+FFFD. */
export function toWellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
