// Writes data/tinystories-sample/ from ../shared/data/tinystories/ (see its SOURCE.md):
// train.txt.br = train-00.txt + train-01.txt, valid.txt.br = valid-00.txt, brotli at quality 11
// (the smallest of Node's built-in codecs for this text), and manifest.json with the sizes and
// sha256 of each split and of each source file. Run: node scripts/make-tinystories-sample.mjs
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const from = path.join(process.env.POCKETLM_SHARED ?? path.resolve(root, '..', 'shared'), 'data', 'tinystories');
const to = path.join(root, 'data', 'tinystories-sample');
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const stories = (b) => b.toString('utf8').split('\n').filter((l) => l.trim() === '<|endoftext|>').length;

const splits = { train: ['train-00.txt', 'train-01.txt'], val: ['valid-00.txt'] };
const names = { train: 'train.txt.br', val: 'valid.txt.br' };
const manifest = {
  about: 'TinyStories sample bundled with pocketlm; see README.md in this folder',
  license: 'CDLA-Sharing-1.0',
  splits: {},
};
mkdirSync(to, { recursive: true });
for (const [split, files] of Object.entries(splits)) {
  const parts = files.map((f) => readFileSync(path.join(from, f)));
  const text = Buffer.concat(parts);
  const br = zlib.brotliCompressSync(text, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: text.length,
    },
  });
  writeFileSync(path.join(to, names[split]), br);
  manifest.splits[split] = {
    file: names[split], compressedBytes: br.length, bytes: text.length, sha256: sha256(text), stories: stories(text),
    parts: files.map((f, i) => ({ name: f, bytes: parts[i].length, sha256: sha256(parts[i]), stories: stories(parts[i]) })),
  };
  console.log(`${names[split]}: ${text.length} bytes -> ${br.length} (${(100 * br.length / text.length).toFixed(1)}%)`);
}
writeFileSync(path.join(to, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
