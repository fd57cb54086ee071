// `pocketlm bench tokenizer`: training time for a 4,096-id vocabulary on the TinyStories sample,
// and single-thread encoding speed with GPT-2's vocabulary against js-tiktoken on the same text.
// Lines go to `out`; nothing here prints by itself.

import fs from 'node:fs';
import path from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { tinystoriesSampleDir } from '../util/paths.js';
import { encodeParallel } from './parallel.js';
import { loadGpt2, tokenizerFromJson } from './load.js';
import { splitDocuments } from './text-io.js';
import { trainBpe } from './train.js';

function seconds(t0: number): number {
  return (performance.now() - t0) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function utf8Mb(s: string): number {
  return Buffer.byteLength(s, 'utf8') / 1e6;
}

export async function runTokenizerBench(out: (line: string) => void): Promise<void> {
  const dir = tinystoriesSampleDir();
  const trainFiles = ['train-00.txt', 'train-01.txt'].map((f) => path.join(dir, f));
  const trainText = trainFiles.map((f) => fs.readFileSync(f, 'utf8'));
  const docs = trainText.flatMap((t) => splitDocuments(t));
  const trainMb = trainText.reduce((a, t) => a + utf8Mb(t), 0);

  // Training: the whole call (pre-token counting + merges + building the tokenizer).
  const t0 = performance.now();
  const trained = trainBpe(docs, { vocabSize: 4096 });
  const trainSecs = seconds(t0);
  out(`train: ${trained.vocabSize} ids (${trained.numMerges} merges) on ${trainMb.toFixed(2)} MB, ${docs.length} documents: ${trainSecs.toFixed(2)} s (target <= 15 s)`);

  // Encoding with GPT-2's vocabulary, one thread, the same text for both.
  const text = fs.readFileSync(path.join(dir, 'valid-00.txt'), 'utf8');
  const mb = utf8Mb(text);
  const t1 = performance.now();
  const gpt2 = await loadGpt2();
  out(`gpt2 load (js-tiktoken ranks -> merges): ${seconds(t1).toFixed(2)} s`);
  const oracle = new Tiktoken(gpt2Ranks);
  const json = gpt2.toJSON();
  // Warm up the JIT of both on other text first.
  const warm = trainText[0]!.slice(0, 200_000);
  gpt2.encode(warm);
  oracle.encode(warm, [], []);

  const cold: number[] = [];
  const hot: number[] = [];
  const tik: number[] = [];
  let same = true;
  for (let rep = 0; rep < 3; rep++) {
    const fresh = tokenizerFromJson(json, 'gpt2'); // empty word cache
    let t = performance.now();
    const a = fresh.encode(text);
    cold.push(seconds(t));
    t = performance.now();
    fresh.encode(text);
    hot.push(seconds(t));
    t = performance.now();
    const b = oracle.encode(text, [], []);
    tik.push(seconds(t));
    same &&= a.length === b.length && a.every((x, i) => x === b[i]);
  }
  const rate = (xs: number[]): string => `${(mb / median(xs)).toFixed(1)} MB/s`;
  out(`encode gpt2, 1 thread, valid-00.txt (${mb.toFixed(2)} MB), median of 3:`);
  out(`  pocketlm, empty word cache: ${rate(cold)}; warm cache: ${rate(hot)}`);
  out(`  js-tiktoken:                ${rate(tik)}  (pocketlm cold / js-tiktoken = ${(median(tik) / median(cold)).toFixed(2)}x; ids identical: ${same ? 'yes' : 'NO'})`);

  // encodeParallel with the trained tokenizer on the training text four times over (worker
  // start-up, ~0.3 s, needs a few MB to pay off): a fresh copy each time (empty word cache).
  const trainedJson = trained.toJSON();
  const many = [...docs, ...docs, ...docs, ...docs];
  for (const threads of [1, 2]) {
    const fresh = tokenizerFromJson(trainedJson, 'trained');
    const t = performance.now();
    await encodeParallel(fresh, many, { threads, inlineBelowChars: 0 });
    out(`encodeParallel, trained 4096 ids, ${threads} thread${threads > 1 ? 's' : ''}: ${(4 * trainMb / seconds(t)).toFixed(1)} MB/s on ${(4 * trainMb).toFixed(1)} MB`);
  }
}
