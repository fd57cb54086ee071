// Our byte-level BPE tokenizer as GGUF tokenizer metadata (what llama.cpp reads), and back.
//
// llama.cpp's "gpt2" tokenizer model is byte-level BPE exactly as GPT-2's: token texts are the
// byte-to-unicode strings of tokenizer.json's vocab, merges are "a b" strings ranked by position.
// The pre-tokenizer type "gpt-2" selects GPT-2's split pattern, the one we use (GPT2_PATTERN),
// which llama.cpp implements by hand (unicode.cpp, unicode_regex_split_custom_gpt2). Two
// classification details differ from JavaScript's regex engine, which our scanner follows:
// llama.cpp's \s includes U+0085 (NEL) and excludes U+FEFF (BOM), JavaScript's the reverse; and
// \p{L} / \p{N} follow each side's Unicode tables (llama.cpp's generated table vs Node's ICU), so
// code points assigned in one version and not the other may split differently. Pre-tokens can
// then differ next to such characters (ids differ only where a learned merge spans the moved
// boundary, rare in practice). Other text tokenizes identically (tested against llama.cpp itself
// in gguf-llama-runtime.test.ts).

import { UserError } from '../util/errors.js';
import { BpeTokenizer } from '../tokenizer/bpe-tokenizer.js';
import { bytesToUnicodeString, unicodeStringToBytes } from '../tokenizer/bytes.js';
import type { BpeSpec, SpecialToken } from '../tokenizer/types.js';
import { ggufString, ggufStringArray, ggufIntArray, ggufInt, type GgufFile, type GgufKv } from './gguf.js';

/** llama.cpp's token types (llama_token_type). */
export const GGUF_TOKEN_NORMAL = 1;
export const GGUF_TOKEN_CONTROL = 3;
const GGUF_TOKEN_USER_DEFINED = 4;
/** llama.cpp's type for filler ids (convert_hf_to_gguf.py pads a vocabulary with "[PAD<id>]" tokens of this type). */
export const GGUF_TOKEN_UNUSED = 5;

/** The tokenizer model and pre-tokenizer type we write and accept. */
export const GGUF_TOKENIZER_MODEL = 'gpt2';
export const GGUF_TOKENIZER_PRE = 'gpt-2';

/**
 * The tokenizer.ggml.* metadata of a tokenizer: model "gpt2", pre "gpt-2", the token texts
 * (byte-level strings; special tokens by their text), their types (normal 1; special tokens
 * control 3), the merges as "a b", and bos = eos = <|endoftext|> set explicitly with
 * add_bos_token / add_eos_token false (our models are trained without a BOS token: documents are
 * separated by <|endoftext|>, which is what generation stops at).
 * `nVocab` (default: the tokenizer's size) may be larger, for a model whose embedding has more
 * rows than the tokenizer has ids: llama.cpp requires one token per row, so the rest are
 * "[PAD<id>]" tokens of type unused, as llama.cpp's own converter writes them.
 */
export function ggufTokenizerKv(tok: BpeTokenizer, nVocab: number = tok.vocabSize): GgufKv[] {
  const spec = tok.toSpec();
  const special = new Map(spec.specials.map((s) => [s.id, s.content]));
  const tokens: string[] = [];
  if (!Number.isInteger(nVocab) || nVocab < spec.vocab.length) throw new Error(`ggufTokenizerKv: nVocab ${nVocab} is below the tokenizer's ${spec.vocab.length} ids`);
  const types = new Int32Array(nVocab);
  spec.vocab.forEach((b, id) => {
    if (b !== null) {
      tokens.push(bytesToUnicodeString(b));
      types[id] = GGUF_TOKEN_NORMAL;
    } else {
      tokens.push(special.get(id)!); // the BpeTokenizer constructor guarantees every null id is special
      types[id] = GGUF_TOKEN_CONTROL;
    }
  });
  for (let id = spec.vocab.length; id < nVocab; id++) {
    tokens.push(`[PAD${id}]`);
    types[id] = GGUF_TOKEN_UNUSED;
  }
  const text = (id: number): string => bytesToUnicodeString(spec.vocab[id]!);
  const merges = spec.merges.map(([a, b]) => `${text(a)} ${text(b)}`);
  const eot = tok.eotId;
  return [
    { key: 'tokenizer.ggml.model', type: 'string', value: GGUF_TOKENIZER_MODEL },
    { key: 'tokenizer.ggml.pre', type: 'string', value: GGUF_TOKENIZER_PRE },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'int32', value: types },
    { key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: merges },
    { key: 'tokenizer.ggml.bos_token_id', type: 'uint32', value: eot },
    { key: 'tokenizer.ggml.eos_token_id', type: 'uint32', value: eot },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: false },
    { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false },
  ];
}

export interface GgufTokenizer {
  tokenizer: BpeTokenizer;
  bosId: number | null;
  eosId: number | null;
  /** tokenizer.ggml.add_bos_token (false when absent): llama.cpp then prepends bos to every prompt. */
  addBos: boolean;
  /** Token count of the file, padding included (the rows the embedding must have). */
  nVocab: number;
}

/**
 * Our tokenizer from a GGUF file's tokenizer.ggml.* metadata. Only what we reproduce exactly is
 * accepted: model "gpt2" with pre-tokenizer "gpt-2"; normal tokens must be byte-level strings,
 * control and user-defined tokens become special tokens (matched whole by encodeWithSpecial);
 * unused tokens are accepted only as padding at the end of the list (ids no text encodes to).
 * Anything else is a UserError naming the field.
 */
export function tokenizerFromGguf(g: GgufFile): GgufTokenizer {
  const where = `${g.file}: GGUF`;
  const model = ggufString(g, 'tokenizer.ggml.model');
  if (model !== GGUF_TOKENIZER_MODEL) {
    throw new UserError(`${where} tokenizer.ggml.model is ${JSON.stringify(model)}; only "${GGUF_TOKENIZER_MODEL}" (byte-level BPE) is supported`);
  }
  const pre = g.kv.has('tokenizer.ggml.pre') ? ggufString(g, 'tokenizer.ggml.pre') : '(absent: llama.cpp\'s default pattern)';
  if (pre !== GGUF_TOKENIZER_PRE) {
    throw new UserError(`${where} tokenizer.ggml.pre is ${JSON.stringify(pre)}; only "${GGUF_TOKENIZER_PRE}" (GPT-2's split pattern) is supported`);
  }
  const tokens = ggufStringArray(g, 'tokenizer.ggml.tokens');
  const types = g.kv.has('tokenizer.ggml.token_type') ? ggufIntArray(g, 'tokenizer.ggml.token_type') : null;
  if (types !== null && types.length !== tokens.length) {
    throw new UserError(`${where} tokenizer.ggml.token_type has ${types.length} entries but tokenizer.ggml.tokens has ${tokens.length}`);
  }
  // Trailing unused tokens are padding: the tokenizer ends before them.
  let nReal = tokens.length;
  while (types !== null && nReal > 0 && types[nReal - 1] === GGUF_TOKEN_UNUSED) nReal--;
  const vocab: Array<Uint8Array | null> = new Array<Uint8Array | null>(nReal).fill(null);
  const specials: SpecialToken[] = [];
  const idOfText = new Map<string, number>();
  for (let id = 0; id < nReal; id++) {
    const text = tokens[id]!;
    const type = types === null ? GGUF_TOKEN_NORMAL : types[id]!;
    if (type === GGUF_TOKEN_CONTROL || type === GGUF_TOKEN_USER_DEFINED) {
      specials.push({ content: text, id });
    } else if (type === GGUF_TOKEN_NORMAL) {
      const bytes = unicodeStringToBytes(text);
      if (bytes === null || bytes.length === 0) {
        throw new UserError(`${where} tokenizer.ggml.tokens[${id}] ${JSON.stringify(text.slice(0, 40))} is not a byte-level token (a character outside GPT-2's byte alphabet)`);
      }
      vocab[id] = bytes;
      idOfText.set(text, id);
    } else {
      throw new UserError(`${where} tokenizer.ggml.token_type[${id}] is ${type}; only normal (1), control (3) and user-defined (4) tokens are supported (unused (5) only as padding at the end)`);
    }
  }
  const mergeStrings = g.kv.has('tokenizer.ggml.merges') ? ggufStringArray(g, 'tokenizer.ggml.merges') : [];
  const merges = mergeStrings.map((m, i): [number, number] => {
    const parts = m.split(' ');
    const a = parts.length === 2 ? idOfText.get(parts[0]!) : undefined;
    const b = parts.length === 2 ? idOfText.get(parts[1]!) : undefined;
    if (a === undefined || b === undefined) {
      throw new UserError(`${where} tokenizer.ggml.merges[${i}] ${JSON.stringify(m.slice(0, 40))} is not two normal tokens separated by one space`);
    }
    return [a, b];
  });
  const spec: BpeSpec = { vocab, merges, specials };
  const tokenizer = new BpeTokenizer(spec, `${g.file} (GGUF tokenizer)`);
  const optId = (key: string): number | null => {
    if (!g.kv.has(key)) return null;
    const id = ggufInt(g, key);
    if (id < 0 || id >= nReal) throw new UserError(`${where} ${key} = ${id} is outside the vocabulary (0..${nReal - 1})`);
    return id;
  };
  const addBosKv = g.kv.get('tokenizer.ggml.add_bos_token');
  if (addBosKv !== undefined && addBosKv.type !== 'bool') throw new UserError(`${where} tokenizer.ggml.add_bos_token has type ${addBosKv.type} (bool expected)`);
  return {
    tokenizer,
    bosId: optId('tokenizer.ggml.bos_token_id'),
    eosId: optId('tokenizer.ggml.eos_token_id'),
    addBos: addBosKv !== undefined && addBosKv.value === true,
    nVocab: tokens.length,
  };
}
