import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bytesToUnicodeString, splitUtf8Runs, unicodeStringToBytes, utf8Encode, utf8SequenceLength } from './bytes.js';
import { stringWithLoneSurrogates } from './test-fixtures.js';

test('GPT-2 byte alphabet: 256 distinct characters, printable bytes map to themselves', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const s = bytesToUnicodeString(all);
  assert.equal(s.length, 256);
  assert.equal(new Set(s).size, 256);
  // Known points of GPT-2's table: NUL -> U+0100, space -> 'Ġ', newline -> 'Ċ', 0xA0 -> 'ł', 0xAD -> 'Ń'.
  assert.equal(s[0], '\u0100');
  assert.equal(s[0x20], 'Ġ');
  assert.equal(s[0x0a], 'Ċ');
  assert.equal(s[0xa0], 'ł');
  assert.equal(s[0xad], 'Ń');
  assert.equal(s[0x41], 'A');
  assert.equal(s[0xe9], 'é');
  assert.deepEqual(unicodeStringToBytes(s), all);
  assert.equal(unicodeStringToBytes('a€'), null);
});

test('utf8Encode equals TextEncoder, lone surrogates included', () => {
  const te = new TextEncoder();
  fc.assert(fc.property(stringWithLoneSurrogates, (s) => {
    assert.deepEqual(utf8Encode(s), te.encode(s));
  }), { numRuns: 500 });
});

test('splitUtf8Runs: runs tile the input, valid runs decode strictly, invalid bytes start no sequence', () => {
  const strict = new TextDecoder('utf-8', { fatal: true });
  const bytesArb = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // mostly-valid UTF-8 with a few random bytes spliced in
    fc.tuple(fc.string({ unit: 'binary', maxLength: 20 }), fc.uint8Array({ maxLength: 4 }), fc.nat(40)).map(([s, junk, at]) => {
      const b = new TextEncoder().encode(s);
      const k = Math.min(at, b.length);
      return Uint8Array.from([...b.subarray(0, k), ...junk, ...b.subarray(k)]);
    }),
  );
  fc.assert(fc.property(bytesArb, (b) => {
    const runs = splitUtf8Runs(b);
    let pos = 0;
    for (const r of runs) {
      assert.equal(r.start, pos);
      assert.ok(r.end > r.start);
      pos = r.end;
      const part = b.subarray(r.start, r.end);
      if (r.valid) strict.decode(part); // throws if not well-formed
      else for (let i = r.start; i < r.end; i++) assert.equal(utf8SequenceLength(b, i), 0);
    }
    assert.equal(pos, b.length);
    let wellFormed = true;
    try { strict.decode(b); } catch { wellFormed = false; }
    assert.equal(wellFormed, runs.every((r) => r.valid));
  }), { numRuns: 400 });
});

test('utf8SequenceLength rejects overlongs, surrogates and code points above U+10FFFF', () => {
  for (const bad of [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x80, 0x80, 0x80], [0x80], [0xff]]) {
    assert.equal(utf8SequenceLength(Uint8Array.from(bad), 0), 0, `bytes ${bad}`);
  }
  assert.equal(utf8SequenceLength(Uint8Array.from([0xf4, 0x8f, 0xbf, 0xbf]), 0), 4);
  assert.equal(utf8SequenceLength(Uint8Array.from([0xed, 0x9f, 0xbf]), 0), 3);
});
