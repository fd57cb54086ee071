import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { readMeta, bitsPerByte, type DatasetMeta } from './meta.js';
import { bytesPerToken, readNpyInfo } from './npy.js';
import { EVAL_FROM, addKCrossEntropy, buildKneserNey, countNgrams, kneserNeyCrossEntropy } from './ngram.js';

/**
 * Reference losses a trained model should beat, on the validation split, with the models
 * counted on the train split: uniform, unigram, bigram, trigram. Each n-gram model is
 * tried with add-k for k in ADD_K and with interpolated Kneser-Ney; every variant is
 * reported, and the best on validation is named (so the "best" is chosen on the data it is
 * scored on: a slightly optimistic reference, stated in the result).
 */
export const ADD_K = [1, 0.1, 0.01, 0.001] as const;
/** Train tokens counted at most (memory of the trigram table); validation is used whole. */
export const MAX_TRAIN_TOKENS = 20_000_000;
const BASELINES_VERSION = 1;

export interface BaselineScore { nats: number; bpb: number; smoothing?: string }
export interface BaselineEntry extends BaselineScore { variants?: Record<string, BaselineScore> }

export interface Baselines {
  uniform: BaselineEntry;
  unigram: BaselineEntry;
  bigram: BaselineEntry;
  trigram: BaselineEntry;
  /** how the numbers were obtained, for the report */
  info: { fingerprint: string; version: number; trainTokens: number; valTokens: number; vocabSize: number; choice: string };
}

/** Computes (or reads from baselines.json, keyed by the dataset fingerprint) the baselines of a prepared dataset. */
export async function computeBaselines(dir: string, opts: { maxTrainTokens?: number } = {}): Promise<Baselines> {
  const meta = readMeta(dir);
  const cacheFile = path.join(dir, 'baselines.json');
  const maxTrain = opts.maxTrainTokens ?? MAX_TRAIN_TOKENS;
  const cached = readCached(cacheFile, meta);
  if (cached && cached.info.trainTokens === Math.min(maxTrain, meta.splits.train.tokens)) return cached;

  const train = readTokens(path.join(dir, meta.splits.train.file), maxTrain);
  const val = readTokens(path.join(dir, meta.splits.val.file), Infinity);
  if (val.length <= EVAL_FROM) throw new UserError(`the validation split of ${dir} is too short to score (${val.length} tokens)`);
  const result = baselinesFromTokens(train, val, meta.vocabSize, (nats) => bitsPerByte(nats, meta, 'val'), meta.fingerprint);
  writeFileAtomicSync(cacheFile, JSON.stringify(result, null, 2) + '\n');
  return result;
}

/**
 * The baselines of token ids already in memory (the browser trainer has no dataset folder):
 * `bpb` turns nats per validation token into bits per byte.
 */
export function baselinesFromTokens(train: ArrayLike<number>, val: ArrayLike<number>, V: number, bpb: (nats: number) => number, fingerprint: string): Baselines {
  const score = (nats: number, smoothing?: string): BaselineScore => ({ nats, bpb: bpb(nats), ...(smoothing ? { smoothing } : {}) });
  const counts = countNgrams(train, V, 3);
  const entry = (order: number): BaselineEntry => {
    const variants: Record<string, BaselineScore> = {};
    for (const k of ADD_K) variants[`add-k ${k}`] = score(addKCrossEntropy(counts, order, k, val), `add-k ${k}`);
    variants['kneser-ney'] = score(kneserNeyCrossEntropy(buildKneserNey(counts, order), val), 'interpolated Kneser-Ney');
    const best = Object.values(variants).reduce((a, b) => (b.nats < a.nats ? b : a));
    return { ...best, variants };
  };
  return {
    uniform: score(Math.log(V)),
    unigram: entry(1),
    bigram: entry(2),
    trigram: entry(3),
    info: {
      fingerprint,
      version: BASELINES_VERSION,
      trainTokens: train.length,
      valTokens: val.length,
      vocabSize: V,
      choice: `counted on ${train.length} train tokens, scored on val positions ${EVAL_FROM}..${val.length - 1}; best smoothing chosen on val among add-k k=${ADD_K.join(',')} and interpolated Kneser-Ney (per-order discount n1/(n1+2 n2))`,
    },
  };
}

function readCached(file: string, meta: DatasetMeta): Baselines | null {
  try {
    const b = JSON.parse(fs.readFileSync(file, 'utf8')) as Baselines;
    return b.info?.fingerprint === meta.fingerprint && b.info.version === BASELINES_VERSION ? b : null;
  } catch {
    return null;
  }
}

/** The first `max` ids of a token file, in memory (baselines need random access to counts anyway). */
function readTokens(file: string, max: number): Uint32Array {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    throw new UserError(`cannot read ${file}; prepare the dataset again`);
  }
  try {
    const info = readNpyInfo(fd, file);
    const n = Math.min(info.length, max);
    const bpt = bytesPerToken(info.dtype);
    const buf = Buffer.alloc(n * bpt);
    fs.readSync(fd, buf, 0, buf.length, info.dataOffset);
    const src = bpt === 2 ? new Uint16Array(buf.buffer, buf.byteOffset, n) : new Uint32Array(buf.buffer, buf.byteOffset, n);
    return Uint32Array.from(src);
  } finally {
    fs.closeSync(fd);
  }
}
