// The data pipeline: sources -> prepared token files -> loader -> metrics.
export { prepareDataset, DATASET_NAMES, type DatasetName, type PrepareOptions, type PrepareProgress, type PreparedDataset, type ProgressFn } from './prepare.js';
export { TokenLoader, fixedValBatches, type LoaderOptions, type LoaderState, type LoaderMode, type FixedBatch } from './loader.js';
export { computeBaselines, type Baselines, type BaselineEntry, type BaselineScore } from './baselines.js';
export { bitsPerByte, readMeta, readMetaFor, assertSameTokenizer, DATA_FORMAT_VERSION, type DatasetMeta, type SplitStats, type SplitName } from './meta.js';
export { downloadFile, downloadTinyStories, DownloadError, DEFAULT_MAX_TRAIN_MB, type DownloadProgress } from './download.js';
export { tinystoriesSampleSources, readSampleSplit, readSampleManifest } from './bundled.js';
export { readNpyTokens, NpyWriter, type TokenDtype } from './npy.js';
export type { DataTokenizer, TokenizerApi } from './tokenizer-api.js';
