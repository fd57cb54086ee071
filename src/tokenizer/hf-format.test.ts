import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { UserError } from '../util/errors.js';
import { loadBpeTokenizer, loadGpt2, loadTokenizer, saveTokenizer, saveVocabMerges, tokenizerFromJson } from './load.js';
import { sampleFile, smallTrained, STRESS_TEXT } from './test-fixtures.js';
import type { BpeTokenizer } from './bpe-tokenizer.js';

const trained = smallTrained();
const gpt2 = await loadGpt2();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-tok-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

type HfJson = {
  added_tokens: Array<{ id: number; content: string; special: boolean }>;
  pre_tokenizer: { type: string; add_prefix_space: boolean; use_regex: boolean };
  decoder: { type: string };
  model: { type: string; vocab: Record<string, number>; merges: string[] };
};

test('tokenizer.json shape: BPE model, ByteLevel pre-tokenizer and decoder, specials as added tokens', () => {
  const j = trained.toJSON() as HfJson;
  assert.equal(j.model.type, 'BPE');
  assert.deepEqual([j.pre_tokenizer.type, j.pre_tokenizer.add_prefix_space, j.pre_tokenizer.use_regex], ['ByteLevel', false, true]);
  assert.equal(j.decoder.type, 'ByteLevel');
  assert.deepEqual(j.added_tokens.map((t) => [t.content, t.id, t.special]), [['<|endoftext|>', 1023, true]]);
  assert.equal(Object.keys(j.model.vocab).length, 1023);
  assert.equal(j.model.vocab['Ġ'], 32);
  assert.equal(j.model.merges.length, 1023 - 256);
  const g = gpt2.toJSON() as HfJson;
  assert.equal(g.model.merges[0], 'Ġ t'); // GPT-2's first merge
  assert.equal(g.model.vocab['Ġthe'], 262);
});

for (const [name, tok] of [['trained', trained], ['gpt2', gpt2]] as Array<[string, BpeTokenizer]>) {
  test(`${name}: Hugging Face tokenizers.js loads our tokenizer.json and encodes identically`, () => {
    const hf = new HfTokenizer(JSON.parse(JSON.stringify(tok.toJSON())), {});
    const valid = fs.readFileSync(sampleFile('valid-00.txt'), 'utf8').slice(0, 150_000);
    for (const text of [valid, ...STRESS_TEXT.split('\n'), STRESS_TEXT]) {
      const ids = hf.encode(text, { add_special_tokens: false }).ids;
      // Hugging Face matches added (special) tokens in the text: our encodeWithSpecial.
      assert.deepEqual(tok.encodeWithSpecial(text), ids, text.slice(0, 40));
      if (ids.length) assert.equal(hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }), tok.decode(ids));
    }
  });

  test(`${name}: save + load keeps the hash and the encodings; the write is atomic`, async () => {
    const file = path.join(tmp, `${name}.json`);
    await saveTokenizer(tok, file);
    const back = await loadTokenizer(file);
    assert.equal(back.hash(), tok.hash());
    assert.equal(back.vocabSize, tok.vocabSize);
    assert.deepEqual(back.encodeWithSpecial(STRESS_TEXT), tok.encodeWithSpecial(STRESS_TEXT));
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), []);
  });
}

test('vocab.json + merges.txt: GPT-2 form round-trips, loads by folder or by vocab.json path', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'vm-'));
  await saveVocabMerges(gpt2, dir);
  const merges = fs.readFileSync(path.join(dir, 'merges.txt'), 'utf8').split('\n');
  assert.equal(merges[0], '#version: 0.2');
  assert.equal(merges[1], 'Ġ t');
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
  assert.equal(vocab['<|endoftext|>'], 50256);
  assert.equal(vocab['!'], 0);
  for (const spec of [dir, path.join(dir, 'vocab.json')]) {
    const back = await loadBpeTokenizer(spec);
    assert.equal(back.hash(), gpt2.hash());
    assert.equal(back.eotId, 50256);
  }
});

test('GPT-2 style tokenizer.json with <|endoftext|> also in the vocab loads it as special', () => {
  const j = structuredClone(gpt2.toJSON()) as HfJson;
  j.model.vocab['<|endoftext|>'] = 50256;
  const tok = tokenizerFromJson(j, 'gpt2-style.json');
  assert.equal(tok.hash(), gpt2.hash());
  // pairs as arrays, the newer Hugging Face form, load too
  const k = structuredClone(trained.toJSON()) as { model: { merges: unknown[] } };
  k.model.merges = k.model.merges.map((m) => (m as string).split(' '));
  assert.equal(tokenizerFromJson(k, 'pairs.json').hash(), trained.hash());
});

test('malformed tokenizer files are one-line UserErrors naming the file', async () => {
  const write = (name: string, text: string): string => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, text);
    return f;
  };
  const good = trained.toJSON() as HfJson;
  const mutate = (f: (j: HfJson) => void): string => {
    const j = structuredClone(good);
    f(j);
    return JSON.stringify(j);
  };
  const cases: Array<[string, string, RegExp]> = [
    ['notjson.json', '{"model": ', /not valid JSON/],
    ['array.json', '[1,2]', /not a tokenizer.json object/],
    ['wordpiece.json', mutate((j) => { j.model.type = 'WordPiece'; }), /WordPiece.*not supported/],
    ['prefix.json', mutate((j) => { j.pre_tokenizer.add_prefix_space = true; }), /add_prefix_space/],
    ['nobyte.json', mutate((j) => { delete j.model.vocab['Ġ']; }), /no token for byte 0x20|missing from the vocabulary/],
    ['badmerge.json', mutate((j) => { j.model.merges[5] = 'Ġ zzzzz'; }), /merge 5 .*missing from the vocabulary/],
    ['gap.json', mutate((j) => { j.added_tokens[0]!.id = 5000; }), /id 1023 has no token/],
    ['badchar.json', mutate((j) => { j.model.vocab['€uro'] = 1023; j.added_tokens[0]!.id = 1024; }), /not a byte-level token/],
  ];
  for (const [name, text, re] of cases) {
    const f = write(name, text);
    await assert.rejects(loadTokenizer(f), (e: unknown) => e instanceof UserError && e.message.includes(f) && re.test(e.message) && !e.message.includes('\n'), name);
  }
  await assert.rejects(loadTokenizer(path.join(tmp, 'missing.json')), (e: unknown) => e instanceof UserError && /not found: .*missing\.json/.test(e.message));
});
