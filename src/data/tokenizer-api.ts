/**
 * The part of the tokenizer module (src/tokenizer/) the data pipeline uses. It is loaded
 * lazily so the data code builds and tests on its own; tests pass a stand-in.
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

/** The real tokenizer module. */
export async function defaultTokenizerApi(): Promise<TokenizerApi> {
  // A computed specifier keeps this folder compiling before src/tokenizer/ exists.
  const spec = '../tokenizer/index.js';
  return (await import(spec)) as TokenizerApi;
}
