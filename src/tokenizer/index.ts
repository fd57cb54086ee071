// The tokenizer module's public surface (see docs/DESIGN.md).
export type { Tokenizer, SpecialToken, BpeSpec } from './types.js';
export { END_OF_TEXT } from './types.js';
export { BpeTokenizer } from './bpe-tokenizer.js';
export { trainTokenizer, trainBpe, type TrainOptions } from './train.js';
export {
  loadTokenizer, loadBpeTokenizer, saveTokenizer, loadGpt2, loadTokenizerJson, loadVocabMerges,
  saveVocabMerges, tokenizerFromJson, tokenizerFileText, GPT2_NAME,
} from './load.js';
export { encodeParallel, type EncodeParallelOptions } from './parallel.js';
export { GPT2_PATTERN, pretokenize } from './pretokenize.js';
export { bytesToUnicodeString, unicodeStringToBytes } from './bytes.js';
export { splitDocuments, readDocuments } from './text-io.js';
// runTokenizerBench lives in ./bench.js (not re-exported: it pulls in js-tiktoken's GPT-2 ranks).
