import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UserError } from '../util/errors.js';
import { loadGpt2, tokenizerFromJson } from './load.js';
import { nastyString, smallTrained, STRESS_TEXT, stringWithLoneSurrogates, toWellFormed } from './test-fixtures.js';
import type { BpeTokenizer } from './bpe-tokenizer.js';

const EOT = '<|endoftext|>';
const trained = smallTrained();
const gpt2 = await loadGpt2();
const both: Array<[string, BpeTokenizer]> = [['trained', trained], ['gpt2', gpt2]];

for (const [name, tok] of both) {
  test(`${name}: decode(encode(s)) is s for any well-formed string; ids are in range`, () => {
    fc.assert(fc.property(nastyString, (s) => {
      const ids = tok.encode(s);
      for (const id of ids) assert.ok(Number.isInteger(id) && id >= 0 && id < tok.vocabSize);
      assert.equal(tok.decode(ids), s);
      assert.equal(tok.decode(tok.encodeWithSpecial(s)), s);
    }), { numRuns: 400 });
    assert.equal(tok.decode(tok.encode(STRESS_TEXT)), STRESS_TEXT);
  });

  test(`${name}: lone surrogates encode as U+FFFD (a JS string has no UTF-8 form otherwise)`, () => {
    fc.assert(fc.property(stringWithLoneSurrogates, (s) => {
      const ids = tok.encode(s);
      assert.deepEqual(ids, tok.encode(toWellFormed(s)));
      assert.equal(tok.decode(ids), toWellFormed(s));
    }), { numRuns: 300 });
    assert.deepEqual(tok.decode(tok.encode('a\ud800b\udc00')), 'a\ufffdb\ufffd');
  });

  test(`${name}: encodeBytes round-trips any bytes and equals encode on valid UTF-8`, () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
      assert.deepEqual(tok.decodeBytes(tok.encodeBytes(b)), b);
    }), { numRuns: 400 });
    fc.assert(fc.property(nastyString, (s) => {
      assert.deepEqual(tok.encodeBytes(new TextEncoder().encode(s)), tok.encode(s));
    }), { numRuns: 200 });
    const junk = Uint8Array.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf4, 0x90]);
    assert.deepEqual(tok.decodeBytes(tok.encodeBytes(junk)), junk);
  });

  test(`${name}: encoding is deterministic (warm cache, cold instance from toJSON)`, () => {
    const cold = tokenizerFromJson(tok.toJSON());
    fc.assert(fc.property(nastyString, (s) => {
      const a = tok.encode(s);
      assert.deepEqual(tok.encode(s), a);
      assert.deepEqual(cold.encode(s), a);
    }), { numRuns: 200 });
    assert.equal(cold.hash(), tok.hash());
  });

  test(`${name}: special tokens only where allowed`, () => {
    const eot = tok.eotId;
    fc.assert(fc.property(nastyString, nastyString, (a, b) => {
      // encode() never yields a special id, even when the text spells one
      assert.ok(!tok.encode(a + EOT + b).includes(eot));
      // encodeWithSpecial matches whole strings only, and splits the text there
      const parts = (a + EOT + b).split(EOT);
      const want = parts.flatMap((p, i) => (i === 0 ? tok.encode(p) : [eot, ...tok.encode(p)]));
      assert.deepEqual(tok.encodeWithSpecial(a + EOT + b), want);
    }), { numRuns: 200 });
    assert.ok(!tok.encodeWithSpecial('<|endoftext|').includes(eot));
    assert.equal(tok.decode([eot]), EOT);
    assert.deepEqual(tok.decodeBytes([eot]), new TextEncoder().encode(EOT));
  });
}

test('decode keeps a leading BOM and replaces invalid UTF-8 with U+FFFD', () => {
  assert.equal(trained.decode(trained.encode('\ufeffhi')), '\ufeffhi');
  const ids = trained.encodeBytes(Uint8Array.from([0x61, 0xff, 0x62]));
  assert.equal(trained.decode(ids), 'a\ufffdb');
});

test('ids outside the vocabulary are UserErrors', () => {
  for (const bad of [-1, trained.vocabSize, 1.5, NaN]) {
    assert.throws(() => trained.decode([bad]), (e: unknown) => e instanceof UserError && e.message.includes(String(bad)));
  }
});

test('a tokenizer without <|endoftext|> says so when eotId is read', () => {
  const json = trained.toJSON() as { added_tokens: unknown[] };
  const tok = tokenizerFromJson({ ...json, added_tokens: [] }, 'x.json');
  assert.throws(() => tok.eotId, (e: unknown) => e instanceof UserError && /x\.json.*<\|endoftext\|>/.test(e.message));
});
