import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readGguf, writeGguf, type GgufKv } from './gguf.js';
import { ggufTokenizerKv, tokenizerFromGguf } from './gguf-tokenizer.js';
import { trainBpe } from '../tokenizer/train.js';
import { UserError } from '../util/errors.js';
import { STRESS_TEXT } from '../tokenizer/test-fixtures.js';
import type { BpeTokenizer } from '../tokenizer/bpe-tokenizer.js';

let dir = '';
let tok: BpeTokenizer;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-gguf-tok-'));
  tok = trainBpe([STRESS_TEXT, 'the cat sat on the mat. the dog sat on the log.', "I'm here, you're there"], { vocabSize: 300 });
});
after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function roundTrip(kv: GgufKv[], name: string) {
  const file = path.join(dir, name);
  writeGguf(file, kv, []);
  return readGguf(file);
}

test('ggufTokenizerKv: gpt2 model, gpt-2 pre, byte-level token texts, control <|endoftext|>, merges, explicit bos/eos', () => {
  const kv = ggufTokenizerKv(tok);
  const get = (k: string) => kv.find((p) => p.key === k)!;
  assert.equal(get('tokenizer.ggml.model').value, 'gpt2');
  assert.equal(get('tokenizer.ggml.pre').value, 'gpt-2');
  const tokens = get('tokenizer.ggml.tokens').value as string[];
  const hf = tok.toJSON() as { model: { vocab: Record<string, number>; merges: string[] } };
  assert.equal(tokens.length, tok.vocabSize);
  // Same strings as Hugging Face's GPT-2 vocab (tokenizer.json), specials by their text.
  for (const [text, id] of Object.entries(hf.model.vocab)) assert.equal(tokens[id], text);
  assert.equal(tokens[32], 'Ġ');
  assert.equal(tokens[10], 'Ċ');
  assert.equal(tokens[tok.eotId], '<|endoftext|>');
  const types = get('tokenizer.ggml.token_type').value as ArrayLike<number>;
  assert.equal(types[tok.eotId], 3);
  assert.equal(Array.from(types).filter((t) => t === 1).length, tok.vocabSize - 1);
  assert.deepEqual(get('tokenizer.ggml.merges').value, hf.model.merges);
  assert.equal(get('tokenizer.ggml.bos_token_id').value, tok.eotId);
  assert.equal(get('tokenizer.ggml.eos_token_id').value, tok.eotId);
  assert.equal(get('tokenizer.ggml.add_bos_token').value, false);
});

test('tokenizerFromGguf: the same tokenizer back (spec and ids)', () => {
  const g = roundTrip(ggufTokenizerKv(tok), 'tok.gguf');
  const back = tokenizerFromGguf(g);
  assert.deepEqual(back.tokenizer.toSpec(), tok.toSpec());
  assert.equal(back.tokenizer.hash(), tok.hash());
  assert.equal(back.bosId, tok.eotId);
  assert.equal(back.eosId, tok.eotId);
  assert.equal(back.addBos, false);
  assert.deepEqual(back.tokenizer.encodeWithSpecial(STRESS_TEXT), tok.encodeWithSpecial(STRESS_TEXT));
});

test('tokenizerFromGguf refuses what it cannot reproduce, naming the field', () => {
  const base = ggufTokenizerKv(tok);
  const withKv = (key: string, p: GgufKv | null): GgufKv[] => {
    const out = base.filter((x) => x.key !== key);
    return p ? [...out, p] : out;
  };
  const refuses = (kv: GgufKv[], re: RegExp, name: string): void => {
    const g = roundTrip(kv, name);
    assert.throws(() => tokenizerFromGguf(g), (e: Error) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
  };
  refuses(withKv('tokenizer.ggml.model', { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' }), /tokenizer.ggml.model is "llama"; only "gpt2"/, 'm.gguf');
  refuses(withKv('tokenizer.ggml.pre', { key: 'tokenizer.ggml.pre', type: 'string', value: 'llama-bpe' }), /tokenizer.ggml.pre is "llama-bpe"; only "gpt-2"/, 'p.gguf');
  refuses(withKv('tokenizer.ggml.pre', null), /tokenizer.ggml.pre is "\(absent/, 'p2.gguf');
  refuses(withKv('tokenizer.ggml.tokens', null), /"tokenizer.ggml.tokens" is missing/, 't.gguf');
  const types = Int32Array.from(base.find((p) => p.key === 'tokenizer.ggml.token_type')!.value as ArrayLike<number>);
  types[5] = 6;
  refuses(withKv('tokenizer.ggml.token_type', { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'int32', value: types }), /token_type\[5\] is 6/, 'tt.gguf');
  const tokens = [...(base.find((p) => p.key === 'tokenizer.ggml.tokens')!.value as string[])];
  tokens[40] = 'not byte level ✗';
  refuses(withKv('tokenizer.ggml.tokens', { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens }), /tokenizer.ggml.tokens\[40\] .* is not a byte-level token/, 'bl.gguf');
  refuses(withKv('tokenizer.ggml.merges', { key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: ['Ġ t h'] }), /tokenizer.ggml.merges\[0\]/, 'mg.gguf');
  refuses(withKv('tokenizer.ggml.bos_token_id', { key: 'tokenizer.ggml.bos_token_id', type: 'uint32', value: 99999 }), /bos_token_id = 99999 is outside/, 'bos.gguf');
});

test('padding: nVocab above the tokenizer adds unused "[PAD<id>]" tokens, dropped again on reading; unused tokens elsewhere are refused', () => {
  const kv = ggufTokenizerKv(tok, tok.vocabSize + 3);
  const tokens = kv.find((p) => p.key === 'tokenizer.ggml.tokens')!.value as string[];
  const types = kv.find((p) => p.key === 'tokenizer.ggml.token_type')!.value as Int32Array;
  assert.equal(tokens.length, tok.vocabSize + 3);
  assert.deepEqual(tokens.slice(-3), [300, 301, 302].map((i) => `[PAD${i}]`));
  assert.deepEqual(Array.from(types.slice(-3)), [5, 5, 5]);
  assert.ok(Array.from(types.slice(0, -3)).every((t) => t === 1 || t === 3));
  const back = tokenizerFromGguf(roundTrip(kv, 'pad.gguf'));
  assert.equal(back.nVocab, tok.vocabSize + 3);
  assert.equal(back.tokenizer.hash(), tok.hash());
  assert.throws(() => ggufTokenizerKv(tok, tok.vocabSize - 1), /below the tokenizer's 300 ids/);
  const mid = Int32Array.from(types);
  mid[7] = 5;
  const bad = kv.map((p) => (p.key === 'tokenizer.ggml.token_type' ? { ...p, value: mid } : p)) as GgufKv[];
  assert.throws(() => tokenizerFromGguf(roundTrip(bad, 'padmid.gguf')), (e: Error) => e instanceof UserError && /token_type\[7\] is 5; .*unused \(5\) only as padding at the end/.test(e.message));
});
