import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareDataset } from './prepare.js';
import { readNpyTokens } from './npy.js';
import { readMeta, bitsPerByte } from './meta.js';
import { docKey } from './split.js';
import { byteTokenizer, byteTokenizerApi } from './testing.js';
import { fileSource } from './sources.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { parseWordsDocument, verifyStory } from '../tasks/words.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-prep-'));
}

/** The first `n` stories of a sample file, as a small file of our own. */
function sampleStories(dir: string, name: string, from: string, n: number, skip = 0): string[] {
  const all = [...fileSource(path.join(tinystoriesSampleDir(), from)).docs()].slice(skip, skip + n);
  fs.writeFileSync(path.join(dir, name), all.map((d) => `${d}\n<|endoftext|>\n`).join(''));
  return all;
}

/** Documents of a token file, decoded (each followed by the end-of-text id). */
function decodeDocs(file: string, eot: number): string[] {
  const ids = readNpyTokens(file);
  assert.equal(ids[ids.length - 1], eot, 'the file ends with end-of-text');
  const docs: string[] = [];
  let start = 0;
  const tok = byteTokenizer();
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === eot) { docs.push(tok.decode(ids.subarray(start, i))); start = i + 1; }
  }
  return docs;
}

test('hash split: deterministic, disjoint, decodes back to the original documents', async () => {
  const dir = tmpDir();
  const docs = sampleStories(dir, 'a.txt', 'train-00.txt', 400);
  // duplicates of a few documents: they must land on the same side as their original
  fs.appendFileSync(path.join(dir, 'a.txt'), docs.slice(0, 50).map((d) => `${d.replace(/ /g, '  ')}\n<|endoftext|>\n`).join(''));
  const api = byteTokenizerApi();
  const events: string[] = [];
  const r = await prepareDataset({ data: [path.join(dir, 'a.txt')], vocabSize: 300, out: path.join(dir, 'out'), tokenizerApi: api, valFraction: 0.1 },
    (ev) => events.push(ev.phase));
  const train = decodeDocs(path.join(r.dir, 'train.npy'), 256);
  const val = decodeDocs(path.join(r.dir, 'val.npy'), 256);
  assert.equal(train.length + val.length, 450);
  assert.ok(val.length > 10 && val.length < 100, `val ${val.length}`);
  const valKeys = new Set(val.map(docKey));
  assert.ok(train.every((d) => !valKeys.has(docKey(d))), 'no validation document in train');
  // every original document is found, in order, on its side
  const expectTrain = [...docs, ...docs.slice(0, 50).map((d) => d.replace(/ /g, '  '))].filter((d) => !valKeys.has(docKey(d)));
  assert.deepEqual(train, expectTrain);
  // the tokenizer was trained on train documents only
  assert.equal(api.trainedOn.length, 1);
  assert.ok(api.trainedOn[0]!.every((d) => !valKeys.has(docKey(d))));
  assert.ok(events.includes('tokenize train') && events.includes('tokenize val'));
  const meta = readMeta(r.dir);
  assert.equal(meta.splits.train.documents, train.length);
  assert.equal(meta.splits.val.documents, val.length);
  assert.equal(meta.splits.val.bytes, val.reduce((s, d) => s + Buffer.byteLength(d), 0));
  assert.equal(meta.splits.train.tokens, readNpyTokens(path.join(r.dir, 'train.npy')).length);
  assert.equal(meta.dtype, 'uint16');
  assert.equal(meta.tokenizer.hash, byteTokenizer(300).hash());
  assert.ok(fs.existsSync(path.join(r.dir, 'tokenizer.json')));
  // byte-level: tokens = bytes + one end-of-text per document, so bpb = nats * tokens / (bytes ln 2)
  assert.ok(Math.abs(bitsPerByte(Math.LN2, meta, 'val') - meta.splits.val.tokens / meta.splits.val.bytes) < 1e-12);
  // same inputs again: reused, not rebuilt
  const again = await prepareDataset({ data: [path.join(dir, 'a.txt')], vocabSize: 300, out: path.join(dir, 'out'), tokenizerApi: api, valFraction: 0.1 });
  assert.equal(again.reused, true);
  assert.equal(api.trainedOn.length, 1);
  // other options: rebuilt, same split
  const other = await prepareDataset({ data: [path.join(dir, 'a.txt')], vocabSize: 301, out: path.join(dir, 'out'), tokenizerApi: api, valFraction: 0.1 });
  assert.equal(other.reused, false);
  assert.deepEqual(decodeDocs(path.join(r.dir, 'val.npy'), 256), val);
  assert.deepEqual(fs.readdirSync(r.dir).sort(), ['meta.json', 'tokenizer.json', 'train.npy', 'val.npy']);
  // litter from a killed run (a pid that cannot exist) is cleaned up by the next one
  fs.writeFileSync(path.join(r.dir, '.train.npy.tmp-999999999-abc'), 'x');
  await prepareDataset({ data: [path.join(dir, 'a.txt')], vocabSize: 302, out: path.join(dir, 'out'), tokenizerApi: api, valFraction: 0.1 });
  assert.deepEqual(fs.readdirSync(r.dir).sort(), ['meta.json', 'tokenizer.json', 'train.npy', 'val.npy']);
  fs.rmSync(dir, { recursive: true });
});

test('explicit validation files: train copies of validation documents are removed', async () => {
  const dir = tmpDir();
  const train = sampleStories(dir, 'train.txt', 'train-00.txt', 100);
  const val = sampleStories(dir, 'val.txt', 'valid-00.txt', 20);
  fs.appendFileSync(path.join(dir, 'train.txt'), `${val[3]}\n<|endoftext|>\n${val[7]}\n<|endoftext|>\n`);
  const r = await prepareDataset({ data: [path.join(dir, 'train.txt')], val: [path.join(dir, 'val.txt')], vocabSize: 300, out: path.join(dir, 'o'), tokenizerApi: byteTokenizerApi() });
  assert.deepEqual(decodeDocs(path.join(r.dir, 'val.npy'), 256), val);
  assert.deepEqual(decodeDocs(path.join(r.dir, 'train.npy'), 256), train);
  assert.match(r.meta.valRule, /validation files/);
  fs.rmSync(dir, { recursive: true });
});

test('moby-dick: chapters split by hash, a fixed validation set', async () => {
  const dir = tmpDir();
  const r = await prepareDataset({ dataset: 'moby-dick', vocabSize: 300, out: path.join(dir, 'o'), tokenizerApi: byteTokenizerApi() });
  assert.ok(r.meta.splits.val.documents >= 1);
  assert.ok(r.meta.splits.train.documents > 100);
  assert.match(r.meta.source, /moby-dick/);
  fs.rmSync(dir, { recursive: true });
});

test('bad inputs are UserErrors naming the problem, and no output is left', async () => {
  const dir = tmpDir();
  const api = byteTokenizerApi();
  const out = path.join(dir, 'o');
  fs.writeFileSync(path.join(dir, 'blank.txt'), '\n\n  \n<|endoftext|>\n\n');
  await assert.rejects(prepareDataset({ data: [path.join(dir, 'blank.txt')], vocabSize: 300, out, tokenizerApi: api }), (e: unknown) => e instanceof UserError && /no documents found/.test(e.message));
  fs.writeFileSync(path.join(dir, 'one.txt'), 'just one document');
  await assert.rejects(prepareDataset({ data: [path.join(dir, 'one.txt')], vocabSize: 300, out, tokenizerApi: api }), /too few documents/);
  await assert.rejects(prepareDataset({ vocabSize: 300, out, tokenizerApi: api }), /say what to prepare/);
  await assert.rejects(prepareDataset({ dataset: 'moby-dick', vocabSize: 10, out, tokenizerApi: api }), /vocabulary of the BPE tokenizer to train must be a whole number from 258/);
  assert.equal(fs.existsSync(path.join(out, 'meta.json')), false);
  fs.rmSync(dir, { recursive: true });
});

/** Every entry under dir (recursive) with a hash of its bytes; {} when dir does not exist. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!fs.existsSync(dir)) return out;
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    out[f] = fs.statSync(p).isFile() ? docKey(fs.readFileSync(p, 'latin1')) : 'dir';
  }
  return out;
}

test('defect: a failed prepare leaves nothing half-made, and the dataset already there stays usable', async () => {
  const dir = tmpDir();
  const api = byteTokenizerApi();
  sampleStories(dir, 'train.txt', 'train-00.txt', 60);
  sampleStories(dir, 'val.txt', 'valid-00.txt', 10);
  fs.copyFileSync(path.join(dir, 'val.txt'), path.join(dir, 'same.txt'));
  const out = path.join(dir, 'o');
  // every train document is also a validation document: fails after val.npy was written
  const failing = { data: [path.join(dir, 'same.txt')], val: [path.join(dir, 'val.txt')], vocabSize: 300, out, tokenizerApi: api, force: true };
  await assert.rejects(prepareDataset(failing), (e: unknown) => e instanceof UserError && /no train documents left/.test(e.message));
  assert.deepEqual(snapshot(out), {});
  // a good dataset, then a failing prepare into the same folder: the good one is untouched
  const good = await prepareDataset({ data: [path.join(dir, 'train.txt')], val: [path.join(dir, 'val.txt')], vocabSize: 300, out, tokenizerApi: api });
  const before = snapshot(out);
  assert.deepEqual(Object.keys(before).sort(), ['meta.json', 'tokenizer.json', 'train.npy', 'val.npy']);
  await assert.rejects(prepareDataset(failing), /no train documents left/);
  assert.deepEqual(snapshot(out), before);
  assert.equal(readMeta(out).fingerprint, good.meta.fingerprint);
  // a folder of the user's with other files in it: they stay, the dataset files join them
  const mine = path.join(dir, 'mine');
  fs.mkdirSync(mine);
  fs.writeFileSync(path.join(mine, 'notes.md'), 'keep me');
  await assert.rejects(prepareDataset({ ...failing, out: mine }), /no train documents left/);
  assert.deepEqual(fs.readdirSync(mine), ['notes.md']);
  await prepareDataset({ data: [path.join(dir, 'train.txt')], vocabSize: 300, out: mine, tokenizerApi: api, valFraction: 0.1 });
  assert.deepEqual(fs.readdirSync(mine).sort(), ['meta.json', 'notes.md', 'tokenizer.json', 'train.npy', 'val.npy']);
  fs.rmSync(dir, { recursive: true });
});

test('defect: leftovers in the dataset cache (a folder without meta.json, dead builds) are removed at the next start', async () => {
  const dir = tmpDir();
  const saved = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(dir, 'cache');
  try {
    sampleStories(dir, 'train.txt', 'train-00.txt', 60);
    const root = path.join(dir, 'cache', 'datasets');
    // what a failed or killed prepare of an earlier version left: token files, no meta.json
    const half = path.join(root, '0123456789abcdef');
    fs.mkdirSync(half, { recursive: true });
    fs.writeFileSync(path.join(half, 'val.npy'), 'x');
    fs.writeFileSync(path.join(half, 'train.npy'), 'x');
    // a build killed midway (its pid cannot exist) inside a folder, and a temp file beside them
    const killed = path.join(root, 'fedcba9876543210');
    fs.mkdirSync(path.join(killed, '.prepare-999999999-abc'), { recursive: true });
    fs.writeFileSync(path.join(killed, '.prepare-999999999-abc', 'val.npy'), 'x');
    fs.writeFileSync(path.join(root, '.meta.json.tmp-999999999-abc'), 'x');
    // a build in progress right now (this process) is left alone
    const live = path.join(root, 'aaaaaaaaaaaaaaaa');
    fs.mkdirSync(path.join(live, `.prepare-${process.pid}-abc`), { recursive: true });
    const old = new Date(Date.now() - 3600_000);
    for (const d of [half, killed, live]) fs.utimesSync(d, old, old);
    const r = await prepareDataset({ data: [path.join(dir, 'train.txt')], vocabSize: 300, tokenizerApi: byteTokenizerApi(), valFraction: 0.1 });
    assert.equal(path.dirname(r.dir), root);
    assert.deepEqual(fs.readdirSync(root).sort(), [path.basename(live), path.basename(r.dir)].sort());
    assert.deepEqual(fs.readdirSync(r.dir).sort(), ['meta.json', 'tokenizer.json', 'train.npy', 'val.npy']);
  } finally {
    if (saved === undefined) delete process.env.POCKETLM_CACHE; else process.env.POCKETLM_CACHE = saved;
    fs.rmSync(dir, { recursive: true });
  }
});

test('wordsFraction: that share of train documents becomes `Words: ...\\nStory: ...` with words from the story; validation stays plain; words.json', async () => {
  const dir = tmpDir();
  const trainDocs = sampleStories(dir, 'train.txt', 'train-00.txt', 300);
  const valDocs = sampleStories(dir, 'val.txt', 'valid-00.txt', 40);
  const api = byteTokenizerApi();
  const base = { data: [path.join(dir, 'train.txt')], val: [path.join(dir, 'val.txt')], vocabSize: 300, tokenizerApi: api };
  const r = await prepareDataset({ ...base, out: path.join(dir, 'out'), wordsFraction: 0.4 });
  const words = JSON.parse(fs.readFileSync(path.join(r.dir, 'words.json'), 'utf8')) as { fraction: number; count: number; vocabulary: string[] };
  assert.equal(words.fraction, 0.4);
  assert.ok(words.vocabulary.length > 50 && !words.vocabulary.includes('the'), `${words.vocabulary.length} words`);
  const vocab = new Set(words.vocabulary);
  const train = decodeDocs(path.join(r.dir, 'train.npy'), 256);
  assert.equal(train.length, trainDocs.length);
  let formatted = 0;
  for (let i = 0; i < train.length; i++) {
    const p = parseWordsDocument(train[i]!);
    if (!p) { assert.equal(train[i], trainDocs[i]); continue; }
    formatted++;
    assert.equal(p.story, trainDocs[i]!.trim());
    assert.equal(p.words.length, words.count);
    for (const w of p.words) assert.ok(vocab.has(w) && verifyStory([w], p.story).missing.length === 0, w);
  }
  assert.ok(formatted > 0.3 * train.length && formatted < 0.5 * train.length, `${formatted} of ${train.length}`);
  assert.deepEqual(decodeDocs(path.join(r.dir, 'val.npy'), 256), valDocs);
  // without the option: another fingerprint, no words.json, every document plain
  const plain = await prepareDataset({ ...base, out: path.join(dir, 'plain') });
  assert.notEqual(plain.meta.fingerprint, r.meta.fingerprint);
  assert.equal(fs.existsSync(path.join(plain.dir, 'words.json')), false);
  assert.deepEqual(decodeDocs(path.join(plain.dir, 'train.npy'), 256), trainDocs);
});
