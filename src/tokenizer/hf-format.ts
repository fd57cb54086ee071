// Hugging Face formats: tokenizer.json (model BPE, ByteLevel pre-tokenizer and decoder, special
// tokens as added_tokens) and GPT-2's original vocab.json + merges.txt pair. Vocabulary strings
// use GPT-2's byte-to-unicode mapping, so these files load in the Hugging Face libraries.

import { UserError } from '../util/errors.js';
import { bytesToUnicodeString, unicodeStringToBytes } from './bytes.js';
import { END_OF_TEXT, type BpeSpec, type SpecialToken } from './types.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** The tokenizer.json object of a spec. Key order is fixed, so JSON.stringify of it is canonical. */
export function toHfJson(spec: BpeSpec): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...spec.specials].sort((a, b) => a.id - b.id).map((s) => ({
      id: s.id,
      content: s.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: vocabObject(spec, false),
      merges: mergeStrings(spec),
    },
  };
}

/** vocab as { byte-level string: id } in id order; specials included (by their text) only if asked. */
function vocabObject(spec: BpeSpec, withSpecials: boolean): Record<string, number> {
  // A null prototype, so a token spelled "__proto__" becomes an ordinary key.
  const vocab = Object.create(null) as Record<string, number>;
  const special = new Map(spec.specials.map((s) => [s.id, s.content]));
  spec.vocab.forEach((b, id) => {
    if (b !== null) vocab[bytesToUnicodeString(b)] = id;
    else if (withSpecials && special.has(id)) vocab[special.get(id)!] = id;
  });
  return vocab;
}

function mergeStrings(spec: BpeSpec): string[] {
  const str = (id: number): string => bytesToUnicodeString(spec.vocab[id]!);
  return spec.merges.map(([a, b]) => `${str(a)} ${str(b)}`);
}

function isObject(x: unknown): x is { [k: string]: Json } {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Parses a tokenizer.json object. Only what pocketlm can reproduce exactly is accepted: a BPE
 * model without dropout, unknown token or subword affixes, no normalizer, and the ByteLevel
 * pre-tokenizer with the GPT-2 regex and no prefix space. Every added token is treated as a
 * special token (matched as a whole string by encodeWithSpecial, as Hugging Face's encode does).
 */
export function parseHfJson(obj: unknown, source: string): BpeSpec {
  const bad = (what: string): never => { throw new UserError(`${source}: ${what}`); };
  if (!isObject(obj)) bad('not a tokenizer.json object');
  const root = obj as { [k: string]: Json };
  const model = root.model;
  if (!isObject(model)) bad('no "model" object');
  const m = model as { [k: string]: Json };
  if (m.type !== undefined && m.type !== 'BPE') bad(`model type ${JSON.stringify(m.type)} is not supported (only BPE)`);
  if (m.dropout !== undefined && m.dropout !== null) bad('BPE dropout is not supported');
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (m[k] !== undefined && m[k] !== null && m[k] !== '') bad(`model.${k} is not supported`);
  }
  if (m.byte_fallback === true) bad('model.byte_fallback is not supported');
  if (m.ignore_merges === true) bad('model.ignore_merges is not supported');
  if (root.normalizer !== undefined && root.normalizer !== null) bad('a normalizer is not supported (byte-level BPE needs none)');
  checkPreTokenizer(root.pre_tokenizer, bad);

  const added: SpecialToken[] = [];
  const addedList = root.added_tokens ?? [];
  if (!Array.isArray(addedList)) bad('"added_tokens" is not an array');
  for (const t of addedList as Json[]) {
    if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') bad('an added token lacks a string "content" or a numeric "id"');
    const tt = t as { content: string; id: number };
    added.push({ content: tt.content, id: tt.id });
  }

  if (!isObject(m.vocab)) bad('"model.vocab" is not an object');
  const merges = m.merges;
  if (!Array.isArray(merges)) bad('"model.merges" is not an array');
  const pairs = (merges as Json[]).map((x, i): [string, string] => {
    if (typeof x === 'string') {
      const parts = x.split(' ');
      if (parts.length !== 2) bad(`merge ${i} ${JSON.stringify(x)} is not two tokens separated by one space`);
      return [parts[0]!, parts[1]!];
    }
    if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string') return [x[0], x[1]];
    return bad(`merge ${i} is neither "a b" nor ["a", "b"]`);
  });
  return buildSpec(m.vocab as Record<string, Json>, pairs, added, source);
}

function checkPreTokenizer(pt: Json | undefined, bad: (what: string) => never): void {
  if (!isObject(pt)) return bad('no ByteLevel "pre_tokenizer" (only byte-level BPE is supported)');
  if (pt.type === 'Sequence' && Array.isArray(pt.pretokenizers) && pt.pretokenizers.length === 1) {
    return checkPreTokenizer(pt.pretokenizers[0], bad);
  }
  if (pt.type !== 'ByteLevel') return bad(`pre_tokenizer type ${JSON.stringify(pt.type)} is not supported (only ByteLevel)`);
  if (pt.add_prefix_space === true) bad('pre_tokenizer.add_prefix_space=true is not supported');
  if (pt.use_regex === false) bad('pre_tokenizer.use_regex=false is not supported');
}

/**
 * Builds a spec from string-keyed data. A vocab entry whose text is also an added token with the
 * same id (GPT-2's files list <|endoftext|> in both) is that special token, not an ordinary one.
 */
function buildSpec(vocabObj: Record<string, Json>, merges: Array<[string, string]>, added: SpecialToken[], source: string): BpeSpec {
  const bad = (what: string): never => { throw new UserError(`${source}: ${what}`); };
  const specialIdOf = new Map(added.map((s) => [s.content, s.id]));
  const entries: Array<[string, number]> = [];
  let maxId = -1;
  for (const [text, id] of Object.entries(vocabObj)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) bad(`vocab entry ${JSON.stringify(text)} has id ${JSON.stringify(id)}, not a non-negative integer`);
    const n = id as number;
    if (specialIdOf.get(text) === n) continue;
    entries.push([text, n]);
    if (n > maxId) maxId = n;
  }
  for (const s of added) {
    if (!Number.isInteger(s.id) || s.id < 0) bad(`added token ${JSON.stringify(s.content)} has id ${s.id}, not a non-negative integer`);
    if (s.id > maxId) maxId = s.id;
  }
  if (maxId + 1 > (1 << 20)) bad(`token id ${maxId} is too large`);
  const vocab: Array<Uint8Array | null> = new Array<Uint8Array | null>(maxId + 1).fill(null);
  const idOf = new Map<string, number>();
  for (const [text, id] of entries) {
    const bytes = unicodeStringToBytes(text);
    if (bytes === null) bad(`vocab entry ${JSON.stringify(text)} is not a byte-level token (a character outside GPT-2's byte alphabet)`);
    if (vocab[id] !== null) bad(`id ${id} is given to two vocab entries`);
    vocab[id] = bytes;
    idOf.set(text, id);
  }
  const mergeIds = merges.map(([a, b], i): [number, number] => {
    const ia = idOf.get(a);
    const ib = idOf.get(b);
    if (ia === undefined || ib === undefined) return bad(`merge ${i} ${JSON.stringify(`${a} ${b}`)} uses a token missing from the vocabulary`);
    return [ia, ib];
  });
  return { vocab, merges: mergeIds, specials: added };
}

/** vocab.json text (specials included by their text, GPT-2's convention) and merges.txt text. */
export function toVocabMerges(spec: BpeSpec): { vocabJson: string; mergesTxt: string } {
  return {
    vocabJson: JSON.stringify(vocabObject(spec, true)),
    mergesTxt: `#version: 0.2\n${mergeStrings(spec).join('\n')}\n`,
  };
}

/**
 * Parses GPT-2's vocab.json + merges.txt. The files carry no special-token list: vocab entries
 * whose text is one of `specialTokens` (default <|endoftext|>) are special.
 */
export function parseVocabMerges(vocabText: string, mergesText: string, source: string, specialTokens: readonly string[] = [END_OF_TEXT]): BpeSpec {
  let vocabObj: unknown;
  try {
    vocabObj = JSON.parse(vocabText);
  } catch (e) {
    throw new UserError(`${source}: vocab.json is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(vocabObj)) throw new UserError(`${source}: vocab.json is not a JSON object`);
  const added: SpecialToken[] = [];
  for (const s of specialTokens) {
    const id = vocabObj[s];
    if (typeof id === 'number') added.push({ content: s, id });
  }
  const merges: Array<[string, string]> = [];
  mergesText.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2) throw new UserError(`${source}: merges.txt line ${i + 1} is not two tokens separated by one space`);
    merges.push([parts[0]!, parts[1]!]);
  });
  return buildSpec(vocabObj, merges, added, source);
}
