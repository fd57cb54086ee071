import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { cacheDir } from '../util/paths.js';
import { describeWriteError, fsyncDir, writeFileAtomicSync } from '../util/atomic.js';
import { hasLiveTemp, removeStaleTemps, tempOwner } from './leftovers.js';
import { NpyWriter, dtypeForVocab } from './npy.js';
import { DATA_FORMAT_VERSION, pocketlmVersion, readMeta, type DatasetMeta, type SplitStats } from './meta.js';
import { DEFAULT_VAL_FRACTION, docKey, isValKey, keyFraction } from './split.js';
import { detach, expandPaths, fileSource, mobyDickSource, type DocSource } from './sources.js';
import { downloadTinyStories, DownloadError, DEFAULT_MAX_TRAIN_MB, type TinyStoriesFiles } from './download.js';
import { tinystoriesSampleSources } from './bundled.js';
import { defaultTokenizerApi, type DataTokenizer, type TokenizerApi } from './tokenizer-api.js';
import { addContentWordCounts, contentVocabulary, DEFAULT_WORDS_OPTIONS, formatWordsDocument, isWordsDocument, selectWords } from '../tasks/words.js';

/** Named datasets: TinyStories (downloaded; the bundled sample without network), its bundled sample, Moby Dick (bundled). */
export const DATASET_NAMES = ['tinystories', 'tinystories-sample', 'moby-dick'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export interface PrepareOptions {
  dataset?: DatasetName;
  data?: string[];
  val?: string[];
  vocabSize: number;
  /** Output folder; default: under cacheDir()/datasets, keyed by the fingerprint. */
  out?: string;
  /** tokenizer.json path or 'gpt2'; default: train one on the train split. */
  tokenizer?: string;
  /** TinyStories: how much of the train file to download. */
  maxTrainMb?: number;
  threads?: number;
  /** Share of documents sent to validation when no validation files exist (default 0.02; moby-dick 0.05). */
  valFraction?: number;
  /** Cap on the train text used to train a tokenizer, in MB (default 20). */
  tokenizerTrainMb?: number;
  /** Prepare again even if the folder already holds this exact dataset. */
  force?: boolean;
  /** The tokenizer implementation (default: src/tokenizer); tests pass a stand-in. */
  tokenizerApi?: TokenizerApi;
  /**
   * Share of train documents written in the words-task format (`Words: a, b, c\nStory: ...`,
   * src/tasks/words.ts), chosen by a hash of each text; 0 or absent = none. Validation stays
   * plain stories. The content-word vocabulary is saved as words.json.
   */
  wordsFraction?: number;
}

/** words.json of a dataset prepared with wordsFraction > 0: what the words task needs to build prompts. */
export interface WordsFile {
  fraction: number;
  count: number;
  minCount: number;
  /** Content words occurring at least minCount times in the train split, sorted. */
  vocabulary: string[];
}

export const WORDS_FILE = 'words.json';


/**
 * Progress of a phase; `notice`, when present, is one line for the user (e.g. that the
 * bundled TinyStories sample replaces a failed download), printed by the caller.
 */
export interface PrepareProgress { phase: string; done: number; total: number; notice?: string }
export type ProgressFn = (ev: PrepareProgress) => void;

export interface PreparedDataset {
  dir: string;
  meta: DatasetMeta;
  reused: boolean;
  /** The named dataset these files hold: 'tinystories-sample' when tinystories fell back on it. */
  datasetUsed?: DatasetName;
}

const DEFAULT_TOKENIZER_TRAIN_MB = 20;
/** Documents are tokenized and written in batches of about this many UTF-16 units. */
const BATCH_CHARS = 4 << 20;

interface ResolvedSources { train: DocSource[]; val: DocSource[]; description: string; datasetUsed?: DatasetName }

/**
 * Turns text into train.npy / val.npy / meta.json / tokenizer.json in one folder, streaming
 * documents in batches. Re-running with the same inputs and options reuses the folder.
 */
export async function prepareDataset(opts: PrepareOptions, progress?: ProgressFn): Promise<PreparedDataset> {
  validateOptions(opts);
  const report: ProgressFn = progress ?? (() => {});
  const sources = await resolveSources(opts, report);
  // Moby Dick has only 139 chapters: 5% of them keeps a usable validation set (~7 chapters).
  const valFraction = opts.valFraction ?? (opts.dataset === 'moby-dick' ? 0.05 : DEFAULT_VAL_FRACTION);
  const tokTrainMb = opts.tokenizerTrainMb ?? DEFAULT_TOKENIZER_TRAIN_MB;
  const fingerprint = fingerprintOf(opts, sources, valFraction, tokTrainMb);
  const dir = path.resolve(opts.out ?? path.join(cacheDir(), 'datasets', fingerprint.slice(0, 16)));

  if (!opts.out) sweepDatasetCache(path.dirname(dir));
  if (!opts.force) {
    const existing = reusable(dir, fingerprint);
    if (existing) return { dir, meta: existing, reused: true, datasetUsed: sources.datasetUsed };
  }
  const created = !fs.existsSync(dir);
  // Built in a temp folder inside dir (named with our pid), moved into place when complete:
  // a failure leaves dir as it was, a kill leaves a temp folder the next start removes.
  const build = path.join(dir, `.prepare-${process.pid}-${Date.now().toString(36)}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    removeStaleTemps(dir);
    fs.mkdirSync(build);
  } catch (e) {
    throw describeWriteError(e, dir);
  }
  try {
    const meta = await buildDataset(build, opts, sources, fingerprint, valFraction, tokTrainMb, report);
    installDataset(build, dir);
    return { dir, meta, reused: false, datasetUsed: sources.datasetUsed };
  } catch (e) {
    try {
      fs.rmSync(build, { recursive: true, force: true });
      if (created && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
    } catch { /* the error being reported matters more than litter, which the next start removes */ }
    // Name the files where they were going, not the temp folder that no longer exists.
    if (e instanceof UserError) e.message = e.message.split(build).join(dir);
    throw e;
  }
}

/** Files of a prepared dataset; meta.json is written last and vouches for the others. */
const DATASET_FILES = ['train.npy', 'val.npy', 'tokenizer.json'] as const;

/**
 * Moves a finished build into dir: the old meta.json goes first (it must not vouch for a mix
 * of old and new files), meta.json comes last. Other files in dir (a user's --out folder) stay.
 */
function installDataset(build: string, dir: string): void {
  try {
    fs.rmSync(path.join(dir, 'meta.json'), { force: true });
    for (const f of DATASET_FILES) fs.renameSync(path.join(build, f), path.join(dir, f));
    if (fs.existsSync(path.join(build, WORDS_FILE))) fs.renameSync(path.join(build, WORDS_FILE), path.join(dir, WORDS_FILE));
    else fs.rmSync(path.join(dir, WORDS_FILE), { force: true });
    fs.renameSync(path.join(build, 'meta.json'), path.join(dir, 'meta.json'));
    fsyncDir(dir);
    fs.rmdirSync(build);
  } catch (e) {
    throw describeWriteError(e, dir);
  }
}

/** Writes train.npy, val.npy, tokenizer.json and (last) meta.json into dir; returns the meta. */
async function buildDataset(
  dir: string, opts: PrepareOptions, sources: ResolvedSources, fingerprint: string, valFraction: number, tokTrainMb: number, report: ProgressFn,
): Promise<DatasetMeta> {
  const explicitVal = sources.val.length > 0;

  // Pass 1 over train: which documents go to validation, and the text a new tokenizer learns from.
  const valKeys = new Set<string>();
  if (explicitVal) for (const src of sources.val) for (const d of src.docs()) valKeys.add(docKey(d));
  const wordsFraction = opts.wordsFraction ?? 0;
  const scan = scanTrain(sources.train, explicitVal ? valKeys : null, valFraction, opts.tokenizer ? 0 : tokTrainMb * 1e6, report, wordsFraction > 0);
  if (scan.total === 0) throw new UserError(`no documents found in ${sources.description}`);
  // Hash-split on a tiny corpus may send nothing to validation: then the lowest hash goes.
  const forcedVal = !explicitVal && scan.valCount === 0 ? scan.minKey : null;
  const isVal = explicitVal ? (k: string) => valKeys.has(k) : (k: string) => isValKey(k, valFraction) || k === forcedVal;
  if (!explicitVal && scan.total - scan.valCount - (forcedVal ? 1 : 0) <= 0) {
    throw new UserError(`${sources.description} has too few documents to split into train and validation (${scan.total}); give --val FILE`);
  }

  const api = opts.tokenizerApi ?? await defaultTokenizerApi();
  let tok: DataTokenizer;
  let origin: string;
  if (opts.tokenizer) {
    tok = await api.loadTokenizer(opts.tokenizer);
    origin = opts.tokenizer;
  } else {
    report({ phase: 'train tokenizer', done: 0, total: 1 });
    tok = api.trainTokenizer(scan.tokenizerTexts, {
      vocabSize: opts.vocabSize, specialTokens: ['<|endoftext|>'],
      onProgress: (done, total) => report({ phase: 'train tokenizer', done, total }),
    });
    origin = `trained on ${(scan.tokenizerBytes / 1e6).toFixed(1)} MB of the train split`;
  }
  scan.tokenizerTexts.length = 0;
  // A given tokenizer decides the vocabulary (opts.vocabSize is then ignored); the trainer checks it fits the model.
  const dtype = dtypeForVocab(tok.vocabSize);

  const valSources = explicitVal ? sources.val : sources.train;
  const valStats = await writeSplit(path.join(dir, 'val.npy'), dtype, tok, api, opts.threads, valSources,
    explicitVal ? () => true : isVal, scan.valCount + (forcedVal ? 1 : 0), 'tokenize val', report);
  let words: WordsFile | null = null;
  let transform: ((doc: string) => string) | undefined;
  if (wordsFraction > 0) {
    const { count, minCount } = DEFAULT_WORDS_OPTIONS;
    words = { fraction: wordsFraction, count, minCount, vocabulary: contentVocabulary(scan.wordCounts, minCount) };
    const vocab = new Set(words.vocabulary);
    transform = (doc) => {
      if (!isWordsDocument(doc, wordsFraction)) return doc;
      const chosen = selectWords(doc, vocab, count);
      return chosen ? formatWordsDocument(chosen, doc) : doc;
    };
  }
  const trainStats = await writeSplit(path.join(dir, 'train.npy'), dtype, tok, api, opts.threads, sources.train,
    (k) => !isVal(k), scan.total - scan.valCount, 'tokenize train', report, transform);
  if (valStats.documents === 0) throw new UserError(`no validation documents found in ${sources.val.map((s) => s.name).join(', ')}`);
  if (trainStats.documents === 0) {
    throw new UserError(`no train documents left in ${sources.description} after removing validation documents (all ${scan.total} are also in the validation set)`);
  }

  writeFileAtomicSync(path.join(dir, 'tokenizer.json'), `${JSON.stringify(tok.toJSON(), null, 2)}\n`);
  if (words) writeFileAtomicSync(path.join(dir, WORDS_FILE), `${JSON.stringify(words)}\n`);
  const meta: DatasetMeta = {
    formatVersion: DATA_FORMAT_VERSION,
    pocketlmVersion: pocketlmVersion(),
    fingerprint,
    createdAt: new Date().toISOString(),
    source: sources.description,
    valRule: explicitVal
      ? `validation files (${sources.val.map((s) => s.name).join(', ')}); train documents equal to a validation document (whitespace-normalised) removed`
      : `documents whose sha1 (whitespace-normalised) falls in the lowest ${valFraction} of the hash range${forcedVal ? ', plus the lowest-hash document (none fell there)' : ''}`,
    tokenizer: { hash: tok.hash(), vocabSize: tok.vocabSize, eotId: tok.eotId, origin },
    vocabSize: tok.vocabSize,
    dtype,
    splits: { train: trainStats, val: valStats },
  };
  writeFileAtomicSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  return meta;
}

/**
 * Cleans the dataset cache of what killed or failed runs left: temp files and build folders of
 * dead processes, and folders without meta.json (not a dataset: an earlier version's failed
 * prepare, or a kill while a build was moved into place). A folder younger than a minute or
 * with a live build inside is left alone: another process may be filling it right now.
 */
function sweepDatasetCache(root: string): void {
  if (!fs.existsSync(root)) return;
  removeStaleTemps(root);
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory() || tempOwner(e.name) !== null) continue;
    const sub = path.join(root, e.name);
    try {
      const young = Date.now() - fs.statSync(sub).mtimeMs < 60_000;
      removeStaleTemps(sub);
      if (young || fs.existsSync(path.join(sub, 'meta.json')) || hasLiveTemp(sub)) continue;
      fs.rmSync(sub, { recursive: true, force: true });
    } catch (err) {
      throw describeWriteError(err, sub);
    }
  }
}

function validateOptions(opts: PrepareOptions): void {
  const hasData = (opts.data?.length ?? 0) > 0;
  if (!opts.dataset && !hasData) throw new UserError(`say what to prepare: --dataset ${DATASET_NAMES.join('|')} or --data PATH...`);
  if (opts.dataset && hasData) throw new UserError('give either --dataset or --data, not both');
  if (opts.dataset && !(DATASET_NAMES as readonly string[]).includes(opts.dataset)) {
    throw new UserError(`unknown dataset "${String(opts.dataset)}" (known: ${DATASET_NAMES.join(', ')})`);
  }
  if (!opts.tokenizer && !(Number.isInteger(opts.vocabSize) && opts.vocabSize >= 258 && opts.vocabSize <= 1 << 20)) {
    throw new UserError(`the vocabulary of the BPE tokenizer to train must be a whole number from 258 to ${1 << 20}, got ${opts.vocabSize}`);
  }
  if (opts.valFraction !== undefined && !(opts.valFraction > 0 && opts.valFraction < 0.5)) {
    throw new UserError(`the validation fraction must be in (0, 0.5), got ${opts.valFraction}`);
  }
}

function sampleSources(val: DocSource[]): ResolvedSources & { summary: string } {
  const s = tinystoriesSampleSources();
  return { train: [s.train], val: val.length ? val : [s.val], description: s.description, datasetUsed: 'tinystories-sample', summary: s.summary };
}

async function resolveSources(opts: PrepareOptions, report: ProgressFn): Promise<ResolvedSources> {
  const val = (opts.val?.length ? expandPaths(opts.val) : []).map(fileSource);
  if (opts.dataset === 'moby-dick') {
    const src = mobyDickSource();
    return { train: [src], val, description: src.name, datasetUsed: 'moby-dick' };
  }
  if (opts.dataset === 'tinystories-sample') return sampleSources(val);
  if (opts.dataset === 'tinystories') {
    const maxMb = opts.maxTrainMb ?? DEFAULT_MAX_TRAIN_MB;
    let files: TinyStoriesFiles;
    try {
      files = await downloadTinyStories({ maxTrainMb: maxMb, onProgress: report });
    } catch (e) {
      // No network (or a download that failed or was refused, with nothing cached): the
      // sample inside the package still gives real TinyStories to train on, said in one line.
      if (!(e instanceof DownloadError)) throw e;
      const s = sampleSources(val);
      report({
        phase: 'use the bundled TinyStories sample', done: 0, total: 0,
        notice: `TinyStories could not be downloaded (${e.reason}): using the TinyStories sample bundled with pocketlm instead (${s.summary}); for the full data, run again when online with --dataset tinystories`,
      });
      return s;
    }
    const vs = val.length ? val : [fileSource(files.val)];
    return { train: [fileSource(files.train)], val: vs, description: `TinyStories V2 (first ${maxMb} MB of train, ${files.valName})`, datasetUsed: 'tinystories' };
  }
  const train = expandPaths(opts.data ?? []).map(fileSource);
  return { train, val, description: train.map((s) => s.name).join(', ') };
}

function fingerprintOf(opts: PrepareOptions, s: ResolvedSources, valFraction: number, tokTrainMb: number): string {
  let tokFp: string | null = null;
  if (opts.tokenizer) {
    tokFp = opts.tokenizer;
    try {
      const st = fs.statSync(opts.tokenizer);
      tokFp = `${path.resolve(opts.tokenizer)}:${st.size}:${Math.floor(st.mtimeMs)}`;
    } catch { /* a name like 'gpt2' */ }
  }
  const key = {
    formatVersion: DATA_FORMAT_VERSION,
    train: s.train.map((x) => x.fingerprint),
    val: s.val.map((x) => x.fingerprint),
    vocabSize: opts.tokenizer ? null : opts.vocabSize,
    tokenizer: tokFp,
    valFraction: s.val.length ? null : valFraction,
    tokenizerTrainMb: opts.tokenizer ? null : tokTrainMb,
    // only when set, so datasets prepared without it keep their fingerprint
    ...(opts.wordsFraction ? { wordsFraction: opts.wordsFraction, words: DEFAULT_WORDS_OPTIONS } : {}),
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex');
}

function reusable(dir: string, fingerprint: string): DatasetMeta | null {
  if (!fs.existsSync(path.join(dir, 'meta.json'))) return null;
  try {
    const meta = readMeta(dir);
    if (meta.fingerprint !== fingerprint) return null;
    for (const f of ['train.npy', 'val.npy', 'tokenizer.json']) if (!fs.existsSync(path.join(dir, f))) return null;
    return meta;
  } catch {
    return null;
  }
}

interface TrainScan {
  total: number; valCount: number; minKey: string | null; tokenizerTexts: string[]; tokenizerBytes: number;
  /** Content-word counts over the train documents (only when counting was asked for). */
  wordCounts: Map<string, number>;
}

function scanTrain(train: DocSource[], valKeys: Set<string> | null, valFraction: number, tokBytesCap: number, report: ProgressFn, countWords = false): TrainScan {
  const scan: TrainScan = { total: 0, valCount: 0, minKey: null, tokenizerTexts: [], tokenizerBytes: 0, wordCounts: new Map() };
  let minFrac = 2;
  for (const src of train) {
    for (const d of src.docs()) {
      const k = docKey(d);
      scan.total++;
      const val = valKeys ? valKeys.has(k) : isValKey(k, valFraction);
      if (val) scan.valCount++;
      const f = keyFraction(k);
      if (f < minFrac) { minFrac = f; scan.minKey = k; }
      if (!val && countWords) addContentWordCounts(d, scan.wordCounts);
      if (!val && scan.tokenizerBytes < tokBytesCap) {
        scan.tokenizerTexts.push(detach(d));
        scan.tokenizerBytes += Buffer.byteLength(d, 'utf8');
      }
      if (scan.total % 5000 === 0) report({ phase: 'read documents', done: scan.total, total: 0 });
    }
  }
  return scan;
}

async function writeSplit(
  target: string, dtype: 'uint16' | 'uint32', tok: DataTokenizer, api: TokenizerApi, threads: number | undefined,
  sources: DocSource[], keep: (key: string) => boolean, expectedDocs: number, phase: string, report: ProgressFn,
  transform?: (doc: string) => string,
): Promise<SplitStats> {
  const writer = new NpyWriter(target, dtype);
  const stats: SplitStats = { file: path.basename(target), tokens: 0, bytes: 0, documents: 0 };
  const eot = [tok.eotId];
  let batch: string[] = [];
  let chars = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const encoded = await api.encodeParallel(tok, batch, threads ? { threads } : undefined);
    for (const ids of encoded) {
      writer.append(ids);
      writer.append(eot);
    }
    stats.documents += batch.length;
    report({ phase, done: stats.documents, total: expectedDocs });
    batch = [];
    chars = 0;
  };
  try {
    for (const src of sources) {
      for (const d of src.docs()) {
        if (!keep(docKey(d))) continue;
        const doc = transform ? transform(detach(d)) : detach(d);
        batch.push(doc);
        chars += doc.length;
        stats.bytes += Buffer.byteLength(doc, 'utf8');
        if (chars >= BATCH_CHARS) await flush();
      }
    }
    await flush();
    stats.tokens = writer.count;
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return stats;
}
