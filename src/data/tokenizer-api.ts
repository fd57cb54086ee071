import * as tokenizerModule from '../tokenizer/index.js';

/**
 * The part of the tokenizer module (src/tokenizer/) the data pipeline uses, as an interface
 * so tests can pass a fast byte-level stand-in.
 */
export interface DataTokenizer {
  readonly vocabSize: number;
  readonly eotId: number;
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  hash(): string;
  toJSON(): object;
}

export interface TokenizerApi {
  loadTokenizer(spec: string): Promise<DataTokenizer>;
  trainTokenizer(texts: string[] | Iterable<string>, opts: { vocabSize: number; specialTokens?: string[]; onProgress?: (done: number, total: number) => void }): DataTokenizer;
  encodeParallel(tok: DataTokenizer, docs: string[], opts?: { threads?: number }): Promise<Uint32Array[]>;
}

/** The real tokenizer module (src/tokenizer/). */
export async function defaultTokenizerApi(): Promise<TokenizerApi> {
  return tokenizerModule;
}
