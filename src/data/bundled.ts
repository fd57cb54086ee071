import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';
import { chunkDocs, type DocSource } from './sources.js';

/**
 * The TinyStories sample that ships inside the package (data/tinystories-sample/, brotli,
 * CDLA-Sharing-1.0): what `tinystories` falls back on without network, and the dataset
 * `tinystories-sample`. Its manifest gives the size and sha256 of each split, checked on
 * every read, so a damaged install is refused instead of trained on.
 */

export type SampleSplit = 'train' | 'val';

interface SamplePart { name: string; bytes: number; sha256: string; stories: number }
interface SampleEntry { file: string; compressedBytes: number; bytes: number; sha256: string; stories: number; parts: SamplePart[] }
export interface SampleManifest { license: string; splits: Record<SampleSplit, SampleEntry> }

export function tinystoriesSampleFolder(): string {
  return path.join(packageRoot(), 'data', 'tinystories-sample');
}

export function readSampleManifest(): SampleManifest {
  const file = path.join(tinystoriesSampleFolder(), 'manifest.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as SampleManifest;
  } catch {
    throw new UserError(`the TinyStories sample bundled with pocketlm is missing or damaged (${file}); reinstall pocketlm`);
  }
}

/** One split of the sample, decompressed and checked against the manifest. */
export function readSampleSplit(split: SampleSplit, manifest = readSampleManifest()): Buffer {
  const entry = manifest.splits[split];
  const file = path.join(tinystoriesSampleFolder(), entry.file);
  const damaged = (why: string) => new UserError(`the TinyStories sample bundled with pocketlm is damaged (${file}: ${why}); reinstall pocketlm`);
  let text: Buffer;
  try {
    text = zlib.brotliDecompressSync(fs.readFileSync(file));
  } catch (e) {
    throw damaged((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'not brotli data');
  }
  if (text.length !== entry.bytes) throw damaged(`${text.length} bytes, expected ${entry.bytes}`);
  if (createHash('sha256').update(text).digest('hex') !== entry.sha256) throw damaged('sha256 differs from manifest.json');
  return text;
}

/** A document source over one split; the text is decompressed on first use and kept by the source. */
function splitSource(split: SampleSplit, manifest: SampleManifest): DocSource {
  const entry = manifest.splits[split];
  let text: string | null = null;
  return {
    name: `${entry.parts.map((p) => p.name).join(' + ')} (bundled, ${entry.stories.toLocaleString('en-US')} stories)`,
    fingerprint: `tinystories-sample/${split}@${entry.sha256}`,
    *docs() {
      text ??= new TextDecoder('utf-8', { fatal: true }).decode(readSampleSplit(split, manifest));
      yield* chunkDocs([text], 'endoftext');
    },
  };
}

export interface SampleSources { train: DocSource; val: DocSource; description: string; summary: string }

/** The sample's train and validation splits as document sources, with a description for meta.json. */
export function tinystoriesSampleSources(): SampleSources {
  const m = readSampleManifest();
  const { train, val } = m.splits;
  const n = (x: number) => x.toLocaleString('en-US');
  const summary = `${n(train.stories)} train / ${n(val.stories)} validation stories, ${((train.bytes + val.bytes) / 1e6).toFixed(1)} MB`;
  return {
    train: splitSource('train', m),
    val: splitSource('val', m),
    description: `TinyStories sample bundled with pocketlm (${summary}; ${m.license})`,
    summary,
  };
}
