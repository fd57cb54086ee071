import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { downloadFile, downloadTinyStories } from './download.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';

/** How the test server misbehaves; changed by each test. */
interface ServerMode {
  range: boolean;        // honour Range requests
  dropAfter: number[];   // per request (in order): destroy the socket after this many body bytes
  lieTotal: number[];    // per request: add this to the total announced in Content-Range/Content-Length
  /** Bodies served instead of the sample files, by requested file name ('*' = every name). */
  content: Record<string, Buffer>;
}

interface TestServer { base: string; requests: Array<{ url: string; range?: string }>; mode: ServerMode; close(): Promise<void> }

/** Serves /work/shared/data/tinystories/ on 127.0.0.1 with controllable faults. */
async function startServer(): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const mode: ServerMode = { range: true, dropAfter: [], lieTotal: [], content: {} };
  const server = http.createServer((req, res) => {
    const n = requests.length;
    requests.push({ url: req.url ?? '', range: req.headers.range });
    const name = path.basename(req.url ?? '');
    const file = path.join(tinystoriesSampleDir(), name);
    const given = mode.content[name] ?? mode.content['*'];
    if (!given && !fs.existsSync(file)) { res.writeHead(404).end(); return; }
    const data = given ?? fs.readFileSync(file);
    const lie = mode.lieTotal[n] ?? 0;
    let start = 0;
    let end = data.length - 1;
    const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    if (mode.range && m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      if (start >= data.length) { res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end(); return; }
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${data.length + lie}`, 'content-length': end - start + 1 });
    } else {
      res.writeHead(200, { 'content-length': data.length + lie });
    }
    const body = data.subarray(start, end + 1);
    const drop = mode.dropAfter[n];
    if (drop !== undefined && drop < body.length) {
      res.write(body.subarray(0, drop), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    if (lie > 0) { res.write(body, () => setTimeout(() => res.socket?.destroy(), 20)); return; }
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}/`, requests, mode,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-dl-'));
}

const sample = (name: string) => fs.readFileSync(path.join(tinystoriesSampleDir(), name));
const fast = { maxStalls: 3, retryDelayMs: 10 };

test('a whole file downloads with progress events up to its size', async () => {
  const srv = await startServer();
  const dir = tmpDir();
  const events: Array<{ done: number; total: number }> = [];
  const dest = path.join(dir, 'v.txt');
  await downloadFile({ url: `${srv.base}valid-00.txt`, dest, onProgress: (e) => events.push(e), ...fast });
  assert.ok(sample('valid-00.txt').equals(fs.readFileSync(dest)));
  assert.ok(events.length > 2);
  assert.ok(events.every((e, i) => i === 0 || e.done >= events[i - 1]!.done));
  assert.deepEqual(events.at(-1), { ...events.at(-1), done: 803227, total: 803227 });
  assert.deepEqual(fs.readdirSync(dir), ['v.txt']);
  // cached: no second request
  const before = srv.requests.length;
  await downloadFile({ url: `${srv.base}valid-00.txt`, dest, ...fast });
  assert.equal(srv.requests.length, before);
  await srv.close();
  fs.rmSync(dir, { recursive: true });
});

test('the train slice: first N bytes by Range, cut after the last whole story', async () => {
  const srv = await startServer();
  const dir = tmpDir();
  const dest = path.join(dir, 't.txt');
  await downloadFile({ url: `${srv.base}train-00.txt`, dest, maxBytes: 500_000, stories: 'cut', ...fast });
  const got = fs.readFileSync(dest);
  const full = sample('train-00.txt');
  assert.ok(got.length <= 500_000 && got.length > 490_000);
  assert.ok(full.subarray(0, got.length).equals(got));
  assert.ok(got.toString('utf8').endsWith('\n<|endoftext|>\n'));
  assert.equal(srv.requests[0]!.range, 'bytes=0-499999');
  await srv.close();
  fs.rmSync(dir, { recursive: true });
});

test('a connection cut mid-body resumes from the partial file with a Range request', async () => {
  const srv = await startServer();
  srv.mode.dropAfter = [300_000, 200_000];
  const dir = tmpDir();
  const dest = path.join(dir, 'v.txt');
  await downloadFile({ url: `${srv.base}valid-00.txt`, dest, ...fast });
  assert.ok(sample('valid-00.txt').equals(fs.readFileSync(dest)));
  assert.equal(srv.requests.length, 3);
  assert.equal(srv.requests[1]!.range, 'bytes=300000-');
  assert.equal(srv.requests[2]!.range, 'bytes=500000-');
  await srv.close();
  fs.rmSync(dir, { recursive: true });
});

test('a server without Range support: resume re-reads from 0 and skips what is already there', async () => {
  const srv = await startServer();
  srv.mode.range = false;
  srv.mode.dropAfter = [250_000];
  const dir = tmpDir();
  const dest = path.join(dir, 'v.txt');
  await downloadFile({ url: `${srv.base}valid-00.txt`, dest, ...fast });
  assert.ok(sample('valid-00.txt').equals(fs.readFileSync(dest)));
  // and a slice without Range: the body is read only up to the limit
  const dest2 = path.join(dir, 't.txt');
  await downloadFile({ url: `${srv.base}train-01.txt`, dest: dest2, maxBytes: 100_000, stories: 'cut', ...fast });
  const got = fs.readFileSync(dest2);
  assert.ok(sample('train-01.txt').subarray(0, got.length).equals(got) && got.length > 90_000);
  await srv.close();
  fs.rmSync(dir, { recursive: true });
});

test('a wrong size is rejected and leaves no file that looks finished', async () => {
  const srv = await startServer();
  const dir = tmpDir();
  // the total changes between two requests: the partial data cannot be trusted
  srv.mode.dropAfter = [100_000];
  srv.mode.lieTotal = [0, 5];
  const dest = path.join(dir, 'v.txt');
  await assert.rejects(downloadFile({ url: `${srv.base}valid-00.txt`, dest, ...fast }),
    (e: unknown) => e instanceof UserError && /the server reported 803232 bytes, earlier 803227/.test(e.message));
  assert.deepEqual(fs.readdirSync(dir), []);
  // a server announcing more bytes than it ever sends: gives up, never renames the partial file
  srv.requests.length = 0;
  srv.mode.range = false;
  srv.mode.dropAfter = [];
  srv.mode.lieTotal = [1000, 1000, 1000, 1000, 1000];
  await assert.rejects(downloadFile({ url: `${srv.base}valid-00.txt`, dest, ...fast }), (e: unknown) => e instanceof UserError && /download of .* failed/.test(e.message));
  assert.equal(fs.existsSync(dest), false);
  await srv.close();
  fs.rmSync(dir, { recursive: true });
});

test('TinyStories through POCKETLM_TINYSTORIES_URL; no network is one line pointing to offline options', async () => {
  const srv = await startServer();
  const dir = tmpDir();
  const saved = { ...process.env };
  try {
    process.env.POCKETLM_CACHE = dir;
    process.env.POCKETLM_TINYSTORIES_URL = srv.base;
    process.env.POCKETLM_TINYSTORIES_TRAIN = 'train-01.txt';
    process.env.POCKETLM_TINYSTORIES_VALID = 'valid-00.txt';
    const phases = new Set<string>();
    const files = await downloadTinyStories({ maxTrainMb: 0.5, onProgress: (e) => phases.add(e.phase), ...fast });
    assert.ok(files.train.startsWith(dir) && files.val.startsWith(dir));
    assert.ok(sample('valid-00.txt').equals(fs.readFileSync(files.val)));
    assert.ok(fs.statSync(files.train).size <= 500_000);
    assert.deepEqual([...phases].sort(), ['download train-01.txt', 'download valid-00.txt']);
    await srv.close();
    // the same URL with nothing listening: a fresh cache has nothing to fall back on
    process.env.POCKETLM_CACHE = path.join(dir, 'empty');
    await assert.rejects(downloadTinyStories({ maxTrainMb: 0.5, ...fast }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.doesNotMatch(e.message, /\n/);
      assert.match(e.message, /download of .*valid-00\.txt failed \(ECONNREFUSED.*--dataset tinystories-sample.*moby-dick.*--data FILE/);
      return true;
    });
  } finally {
    process.env = saved;
    fs.rmSync(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------- what is cached must be TinyStories text

const HTML_PAGE = Buffer.from(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sign in to the Wi-Fi</title>
</head>
<body>
<h1>Welcome</h1>
<p>Please accept the terms to continue.</p>
</body>
</html>
`);

/** Every file (not folder) under dir, relative, sorted. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

/** Runs fn with POCKETLM_TINYSTORIES_* pointing at the server and POCKETLM_CACHE at cache. */
async function withServer<T>(srv: TestServer, cache: string, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  try {
    process.env.POCKETLM_CACHE = cache;
    process.env.POCKETLM_TINYSTORIES_URL = srv.base;
    process.env.POCKETLM_TINYSTORIES_TRAIN = 'train-01.txt';
    process.env.POCKETLM_TINYSTORIES_VALID = 'valid-00.txt';
    return await fn();
  } finally {
    process.env = saved;
  }
}

/** Expects a one-line UserError whose message matches every pattern. */
function oneLine(...patterns: RegExp[]): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.doesNotMatch(e.message, /\n/);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('defect: an HTML page served in place of TinyStories is refused with its URL and not cached', async () => {
  const srv = await startServer();
  const cache = tmpDir();
  try {
    await withServer(srv, cache, async () => {
      srv.mode.content = { 'valid-00.txt': HTML_PAGE };
      await assert.rejects(downloadTinyStories({ maxTrainMb: 0.5, ...fast }),
        oneLine(new RegExp(`${escape(srv.base)}valid-00\\.txt`), /HTML page/));
      assert.deepEqual(filesUnder(cache), []);
      // the validation file is fine, the train file is a page: only the good file stays
      srv.mode.content = { 'train-01.txt': HTML_PAGE };
      await assert.rejects(downloadTinyStories({ maxTrainMb: 0.5, ...fast }),
        oneLine(new RegExp(`${escape(srv.base)}train-01\\.txt`), /HTML page/));
      assert.deepEqual(filesUnder(cache).map((f) => path.basename(f)), ['valid-00.txt']);
      // the server is fixed: the next run downloads the real file
      srv.mode.content = {};
      const files = await downloadTinyStories({ maxTrainMb: 0.5, ...fast });
      assert.ok(sample('train-01.txt').subarray(0, fs.statSync(files.train).size).equals(fs.readFileSync(files.train)));
    });
  } finally {
    await srv.close();
    fs.rmSync(cache, { recursive: true });
  }
});

test('defect: a bad file cached by an earlier version is removed and downloaded again', async () => {
  const srv = await startServer();
  const cache = tmpDir();
  try {
    await withServer(srv, cache, async () => {
      const files = await downloadTinyStories({ maxTrainMb: 0.5, ...fast });
      fs.writeFileSync(files.val, HTML_PAGE);
      fs.writeFileSync(files.train, HTML_PAGE);
      const again = await downloadTinyStories({ maxTrainMb: 0.5, ...fast });
      assert.ok(sample('valid-00.txt').equals(fs.readFileSync(again.val)));
      assert.ok(fs.readFileSync(again.train).toString('utf8').endsWith('\n<|endoftext|>\n'));
    });
  } finally {
    await srv.close();
    fs.rmSync(cache, { recursive: true });
  }
});

test('defect: identical train and validation downloads are refused naming that cause', async () => {
  const srv = await startServer();
  const cache = tmpDir();
  try {
    await withServer(srv, cache, async () => {
      // a server that answers every name with one and the same story file
      srv.mode.content = { '*': sample('valid-00.txt') };
      await assert.rejects(downloadTinyStories({ maxTrainMb: 0.5, ...fast }),
        oneLine(/identical/, /valid-00\.txt/, /train-01\.txt/));
      assert.deepEqual(filesUnder(cache), []);
    });
  } finally {
    await srv.close();
    fs.rmSync(cache, { recursive: true });
  }
});

/** The file cut a few bytes before the separator line that follows byte `near`: mid-story. */
function cutMidStory(data: Buffer, near: number): Buffer {
  const sep = data.indexOf('\n<|endoftext|>\n', near);
  return data.subarray(0, sep - 11);
}

test('defect: a validation file cut mid-story (its Content-Length matching) is refused and removed', async () => {
  const srv = await startServer();
  const cache = tmpDir();
  try {
    await withServer(srv, cache, async () => {
      srv.mode.content = { 'valid-00.txt': cutMidStory(sample('valid-00.txt'), 400_000) };
      await assert.rejects(downloadTinyStories({ maxTrainMb: 0.5, ...fast }),
        oneLine(/valid-00\.txt/, /ends mid-story/));
      assert.deepEqual(filesUnder(cache), []);
    });
  } finally {
    await srv.close();
    fs.rmSync(cache, { recursive: true });
  }
});

test('defect: a train file smaller than the limit that ends mid-story keeps whole stories only', async () => {
  const srv = await startServer();
  const cache = tmpDir();
  try {
    await withServer(srv, cache, async () => {
      const full = sample('train-01.txt');
      const served = cutMidStory(full, 300_000);
      srv.mode.content = { 'train-01.txt': served };
      const files = await downloadTinyStories({ maxTrainMb: 0.5, ...fast });
      const got = fs.readFileSync(files.train);
      const lastSep = served.lastIndexOf('\n<|endoftext|>\n') + '\n<|endoftext|>\n'.length;
      assert.equal(got.length, lastSep);
      assert.ok(full.subarray(0, got.length).equals(got));
    });
  } finally {
    await srv.close();
    fs.rmSync(cache, { recursive: true });
  }
});
