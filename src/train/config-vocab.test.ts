import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareDataset } from '../data/prepare.js';
import { fileSource } from '../data/sources.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { BPE_MAX_VOCAB, BPE_MIN_VOCAB, loadConfig } from './config.js';

// model.vocab_size with data.tokenizer = "bpe" is the size of the tokenizer prepare trains: the
// config accepts exactly the sizes prepareDataset accepts, and its error names the config key.

test('model.vocab_size for a trained BPE: the config refuses what prepare would, naming the key and where it was set', async () => {
  const tooSmall = BPE_MIN_VOCAB - 1;
  assert.throws(() => loadConfig({ preset: 'tiny', set: [`model.vocab_size=${tooSmall}`] }), (e: unknown) => e instanceof UserError
    && e.message === `model.vocab_size must be from ${BPE_MIN_VOCAB} to ${BPE_MAX_VOCAB} to train a BPE tokenizer of that size on the data (data.tokenizer = "bpe": 256 byte tokens, <|endoftext|> and at least one merge), got ${tooSmall} (in --set model.vocab_size=${tooSmall})`);
  assert.throws(() => loadConfig({ preset: 'tiny', set: [`model.vocab_size=${BPE_MAX_VOCAB + 1}`] }), /model\.vocab_size must be from 258 to 1048576/);
  assert.equal(loadConfig({ preset: 'tiny', set: [`model.vocab_size=${BPE_MIN_VOCAB}`] }).model.vocab_size, BPE_MIN_VOCAB);
  // another tokenizer only needs vocab_size >= its own size (checked when the data is known)
  assert.equal(loadConfig({ preset: 'tiny', set: ['model.vocab_size=257', 'data.tokenizer="my/tokenizer.json"'] }).model.vocab_size, 257);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-vocab-'));
  try {
    const file = path.join(work, 'stories.txt');
    const docs = [...fileSource(path.join(tinystoriesSampleDir(), 'valid-00.txt')).docs()].slice(0, 40);
    fs.writeFileSync(file, docs.map((d) => `${d}\n<|endoftext|>\n`).join(''));
    await assert.rejects(prepareDataset({ data: [file], vocabSize: tooSmall, out: path.join(work, 'a') }),
      /vocabulary of the BPE tokenizer to train must be a whole number from 258 to 1048576, got 257/);
    const ok = await prepareDataset({ data: [file], vocabSize: BPE_MIN_VOCAB, out: path.join(work, 'b'), threads: 1 });
    assert.equal(ok.meta.vocabSize, BPE_MIN_VOCAB);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
