import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';
import type { TokenDtype } from './npy.js';

/** Bumped whenever the layout of a prepared dataset folder changes. */
export const DATA_FORMAT_VERSION = 1;

export type SplitName = 'train' | 'val';

export interface SplitStats {
  file: string;       // file name inside the dataset folder
  tokens: number;     // ids in the .npy, end-of-text ids included
  bytes: number;      // UTF-8 bytes of the document texts (separators not counted)
  documents: number;
}

/** meta.json of a prepared dataset folder. */
export interface DatasetMeta {
  formatVersion: number;
  pocketlmVersion: string;
  fingerprint: string;          // of inputs + options: an equal one means the folder can be reused
  createdAt: string;
  source: string;               // human-readable description of the inputs
  valRule: string;              // how validation documents were chosen
  tokenizer: { hash: string; vocabSize: number; eotId: number; origin: string };
  vocabSize: number;
  dtype: TokenDtype;
  splits: Record<SplitName, SplitStats>;
}

export function pocketlmVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Reads and sanity-checks a dataset folder's meta.json. */
export function readMeta(dir: string): DatasetMeta {
  const file = path.join(dir, 'meta.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UserError(`${dir} is not a prepared dataset (no meta.json); run \`pocketlm prepare\` first`);
  }
  let meta: DatasetMeta;
  try {
    meta = JSON.parse(text) as DatasetMeta;
  } catch {
    throw new UserError(`${file} is not valid JSON`);
  }
  if (meta.formatVersion !== DATA_FORMAT_VERSION || !meta.splits?.train || !meta.splits?.val || !meta.tokenizer?.hash) {
    throw new UserError(`${file} has format version ${String(meta.formatVersion)}, expected ${DATA_FORMAT_VERSION}: prepare the dataset again`);
  }
  return meta;
}

/** Bits per UTF-8 byte of the original text from a mean loss in nats per token over a split. */
export function bitsPerByte(natsPerToken: number, meta: DatasetMeta, split: SplitName): number {
  const s = meta.splits[split];
  if (s.bytes <= 0) throw new UserError(`the ${split} split has no bytes: bits per byte are undefined`);
  return (natsPerToken * s.tokens) / (s.bytes * Math.LN2);
}

/** Throws when token files were made with another tokenizer than the one given. */
export function assertSameTokenizer(meta: DatasetMeta, tokenizerHash: string, what: string): void {
  if (meta.tokenizer.hash !== tokenizerHash) {
    throw new UserError(`the token files were made with another tokenizer (meta.json hash ${meta.tokenizer.hash.slice(0, 12)}, ${what} hash ${tokenizerHash.slice(0, 12)}): prepare the data again with this tokenizer`);
  }
}

/** readMeta + a check that `tokenizerHash` (the tokenizer about to be used) made the token files. */
export function readMetaFor(dir: string, tokenizerHash: string, what: string): DatasetMeta {
  const meta = readMeta(dir);
  assertSameTokenizer(meta, tokenizerHash, what);
  return meta;
}
