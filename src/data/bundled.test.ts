import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { readSampleManifest, readSampleSplit, tinystoriesSampleFolder } from './bundled.js';
import { prepareDataset, type PrepareProgress } from './prepare.js';
import { byteTokenizerApi } from './testing.js';
import { tinystoriesSampleDir } from '../util/paths.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The sha256 column of the table in ../shared/data/tinystories/SOURCE.md, by file name. */
function sourceMdHashes(): Record<string, string> {
  const md = fs.readFileSync(path.join(tinystoriesSampleDir(), 'SOURCE.md'), 'utf8');
  const out: Record<string, string> = {};
  for (const m of md.matchAll(/^\| (\S+\.txt) \|.*\| ([0-9a-f]{64}) \|$/gm)) out[m[1]!] = m[2]!;
  return out;
}

test('the bundled sample decompresses to the shared TinyStories files, byte for byte', () => {
  const hashes = sourceMdHashes();
  assert.deepEqual(Object.keys(hashes).sort(), ['train-00.txt', 'train-01.txt', 'valid-00.txt']);
  const m = readSampleManifest();
  assert.equal(m.license, 'CDLA-Sharing-1.0');
  for (const split of ['train', 'val'] as const) {
    const text = readSampleSplit(split, m);
    let at = 0;
    for (const part of m.splits[split].parts) {
      const piece = text.subarray(at, at + part.bytes);
      assert.equal(sha256(piece), hashes[part.name], `${part.name}: sha256 of SOURCE.md`);
      assert.ok(piece.equals(fs.readFileSync(path.join(tinystoriesSampleDir(), part.name))), part.name);
      at += part.bytes;
    }
    assert.equal(at, text.length, `${split}: nothing but the listed files`);
  }
  assert.deepEqual(m.splits.train.parts.map((p) => p.name), ['train-00.txt', 'train-01.txt']);
  assert.deepEqual(m.splits.val.parts.map((p) => p.name), ['valid-00.txt']);
  // the licence notice and the source travel with the data
  const readme = fs.readFileSync(path.join(tinystoriesSampleFolder(), 'README.md'), 'utf8');
  assert.match(readme, /CDLA-Sharing-1\.0/);
  assert.match(readme, /roneneldan\/TinyStories/);
  // small: the compressed files stay under a quarter of the text
  const compressed = fs.statSync(path.join(tinystoriesSampleFolder(), m.splits.train.file)).size + fs.statSync(path.join(tinystoriesSampleFolder(), m.splits.val.file)).size;
  assert.ok(compressed < 0.25 * (m.splits.train.bytes + m.splits.val.bytes), `${compressed} bytes`);
});

/** Every file (not folder) under dir. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile());
}

/** A 127.0.0.1 port with nothing listening (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('no network: tinystories falls back to the bundled sample after a one-line notice', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-bundled-'));
  const saved = { ...process.env };
  try {
    process.env.POCKETLM_CACHE = dir;
    const port = await closedPort();
    process.env.POCKETLM_TINYSTORIES_URL = `http://127.0.0.1:${port}/`;
    const events: PrepareProgress[] = [];
    const r = await prepareDataset({ dataset: 'tinystories', vocabSize: 300, tokenizerApi: byteTokenizerApi() }, (e) => events.push(e));
    const notices = events.filter((e) => e.notice).map((e) => e.notice!);
    assert.equal(notices.length, 1);
    assert.doesNotMatch(notices[0]!, /\n/);
    assert.match(notices[0]!, new RegExp(`127\\.0\\.0\\.1:${port}/.*ECONNREFUSED`));
    assert.match(notices[0]!, /TinyStories sample bundled with pocketlm/);
    assert.match(notices[0]!, /--dataset tinystories\b/);
    assert.equal(r.datasetUsed, 'tinystories-sample');
    assert.match(r.meta.source, /TinyStories sample bundled with pocketlm/);
    assert.equal(r.meta.splits.train.documents, 4042);
    assert.equal(r.meta.splits.val.documents, 1000);
    // what was cached: the prepared sample, and no download litter
    assert.deepEqual(filesUnder(path.join(dir, 'tinystories')), []);
    // asked for by name: no download is tried, the same prepared folder is reused
    let requests = 0;
    const srv = http.createServer((_q, res) => { requests++; res.writeHead(500).end(); });
    await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', () => ok()));
    process.env.POCKETLM_TINYSTORIES_URL = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
    const events2: PrepareProgress[] = [];
    const again = await prepareDataset({ dataset: 'tinystories-sample', vocabSize: 300, tokenizerApi: byteTokenizerApi() }, (e) => events2.push(e));
    await new Promise<void>((ok) => srv.close(() => ok()));
    assert.equal(requests, 0);
    assert.equal(again.reused, true);
    assert.equal(again.dir, r.dir);
    assert.equal(events2.filter((e) => e.notice).length, 0);
  } finally {
    process.env = saved;
    fs.rmSync(dir, { recursive: true });
  }
});

test('a download refused for its content (an HTML page) also falls back, and the notice says why', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-bundled-'));
  const saved = { ...process.env };
  const srv = http.createServer((_q, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html>\n<html><body>Log in to the Wi-Fi</body></html>\n'));
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', () => ok()));
  try {
    process.env.POCKETLM_CACHE = dir;
    process.env.POCKETLM_TINYSTORIES_URL = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`;
    const notices: string[] = [];
    const r = await prepareDataset({ dataset: 'tinystories', vocabSize: 300, tokenizerApi: byteTokenizerApi() }, (e) => { if (e.notice) notices.push(e.notice); });
    assert.equal(notices.length, 1);
    assert.match(notices[0]!, /TinyStoriesV2-GPT4-valid\.txt failed: the file is an HTML page/);
    assert.equal(r.datasetUsed, 'tinystories-sample');
    // the page was not cached
    assert.deepEqual(filesUnder(path.join(dir, 'tinystories')), []);
  } finally {
    await new Promise<void>((ok) => srv.close(() => ok()));
    process.env = saved;
    fs.rmSync(dir, { recursive: true });
  }
});
