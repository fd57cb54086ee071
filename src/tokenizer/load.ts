// Loading and saving tokenizers: tokenizer.json files, GPT-2's vocab.json + merges.txt, and the
// built-in 'gpt2' (tiktoken ranks shipped in the js-tiktoken package).

import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { parseHfJson, parseVocabMerges, toVocabMerges } from './hf-format.js';
import { GPT2_PATTERN } from './pretokenize.js';
import { parseTiktokenRanks, specFromRanks } from './tiktoken-ranks.js';
import type { Tokenizer } from './types.js';

/** The name that loads GPT-2's vocabulary instead of a file. */
export const GPT2_NAME = 'gpt2';

/**
 * A tokenizer from `spec`: 'gpt2'; a tokenizer.json path; a folder holding tokenizer.json (or
 * vocab.json + merges.txt); or a vocab.json path with merges.txt beside it.
 */
export async function loadTokenizer(spec: string): Promise<Tokenizer> {
  return loadBpeTokenizer(spec);
}

/** loadTokenizer with the concrete class (for tools that need its extras). */
export async function loadBpeTokenizer(spec: string): Promise<BpeTokenizer> {
  if (spec === GPT2_NAME) return loadGpt2();
  let stat: fs.Stats;
  try {
    stat = fs.statSync(spec);
  } catch {
    throw new UserError(`tokenizer file not found: ${spec} (give a tokenizer.json path or 'gpt2')`);
  }
  if (stat.isDirectory()) {
    const json = path.join(spec, 'tokenizer.json');
    if (fs.existsSync(json)) return loadTokenizerJson(json);
    const vocab = path.join(spec, 'vocab.json');
    if (fs.existsSync(vocab)) return loadVocabMerges(vocab, path.join(spec, 'merges.txt'));
    throw new UserError(`${spec}: folder has neither tokenizer.json nor vocab.json + merges.txt`);
  }
  if (path.basename(spec).endsWith('vocab.json')) {
    return loadVocabMerges(spec, path.join(path.dirname(spec), path.basename(spec).replace(/vocab\.json$/, 'merges.txt')));
  }
  return loadTokenizerJson(spec);
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `file not found: ${file}` : `cannot read ${file} (${code ?? String(e)})`);
  }
}

/** Reads a Hugging Face tokenizer.json. */
export function loadTokenizerJson(file: string): BpeTokenizer {
  const text = readText(file);
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return tokenizerFromJson(obj, file);
}

/** Rebuilds a tokenizer from its toJSON() object (how worker threads get theirs). */
export function tokenizerFromJson(obj: unknown, source = 'tokenizer.json'): BpeTokenizer {
  return new BpeTokenizer(parseHfJson(obj, source), source);
}

/** Reads GPT-2's original vocab.json + merges.txt (<|endoftext|> in the vocab is special). */
export function loadVocabMerges(vocabFile: string, mergesFile: string): BpeTokenizer {
  const source = `${vocabFile} + ${path.basename(mergesFile)}`;
  return new BpeTokenizer(parseVocabMerges(readText(vocabFile), readText(mergesFile), source), source);
}

/** GPT-2's vocabulary (50,257 ids, <|endoftext|> = 50256), from js-tiktoken's ranks. */
export async function loadGpt2(): Promise<BpeTokenizer> {
  let ranks: { pat_str: string; special_tokens: Record<string, number>; bpe_ranks: string };
  try {
    ranks = (await import('js-tiktoken/ranks/gpt2')).default;
  } catch {
    throw new UserError("the 'gpt2' tokenizer needs the js-tiktoken package (npm install js-tiktoken)");
  }
  if (ranks.pat_str !== GPT2_PATTERN) throw new Error('js-tiktoken gpt2 uses an unexpected split pattern');
  return new BpeTokenizer(specFromRanks(parseTiktokenRanks(ranks.bpe_ranks, GPT2_NAME), ranks.special_tokens, GPT2_NAME), GPT2_NAME);
}

/** The tokenizer.json text written by saveTokenizer (the canonical JSON, pretty-printed). */
export function tokenizerFileText(tok: Tokenizer): string {
  return `${JSON.stringify(tok.toJSON(), null, 2)}\n`;
}

/** Writes tokenizer.json atomically (temp file + rename). */
export async function saveTokenizer(tok: Tokenizer, file: string): Promise<void> {
  writeFileAtomicSync(file, tokenizerFileText(tok));
}

/** Writes vocab.json and merges.txt into `dir` (GPT-2's original file pair). */
export async function saveVocabMerges(tok: BpeTokenizer, dir: string): Promise<void> {
  const { vocabJson, mergesTxt } = toVocabMerges(tok.toSpec());
  writeFileAtomicSync(path.join(dir, 'vocab.json'), vocabJson);
  writeFileAtomicSync(path.join(dir, 'merges.txt'), mergesTxt);
}
