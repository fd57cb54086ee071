// End-to-end through the built CLI (node bin/pocketlm.js): prepare, baselines, and one-line errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFile, spawnSync } from 'node:child_process';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { fileSource } from './sources.js';
import { loadTokenizer } from '../tokenizer/index.js';

const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');

interface Run { code: number; stdout: string; stderr: string }

/** Runs the CLI without blocking this process (a test server may be serving it). */
function cli(args: string[], env: Record<string, string> = {}, wrap: string[] = []): Promise<Run> {
  const [cmd, ...pre] = wrap.length ? wrap : [process.execPath];
  const argv = wrap.length ? [...pre, process.execPath, BIN, ...args] : [BIN, ...args];
  return new Promise((resolve) => {
    execFile(cmd!, argv, { env: { ...process.env, ...env }, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function oneLineError(r: Run, re: RegExp): void {
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim().length > 0 && !/\.\.\.$/.test(l));
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^pocketlm: /);
  assert.match(lines[0]!, re);
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-cli-'));
}

function writeStories(file: string, from: string, n: number): string[] {
  const docs = [...fileSource(path.join(tinystoriesSampleDir(), from)).docs()].slice(0, n);
  fs.writeFileSync(file, docs.map((d) => `${d}\n<|endoftext|>\n`).join(''));
  return docs;
}

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('prepare + baselines: numpy reads the token files, which decode back to the text', async (t) => {
  const dir = tmpDir();
  const train = writeStories(path.join(dir, 'train.txt'), 'train-00.txt', 150);
  const val = writeStories(path.join(dir, 'val.txt'), 'valid-00.txt', 30);
  const out = path.join(dir, 'ds');
  const r = await cli(['prepare', '--data', path.join(dir, 'train.txt'), '--val', path.join(dir, 'val.txt'), '--vocab-size', '300', '--out', out], { POCKETLM_CACHE: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /train +150 documents/);
  const meta = JSON.parse(fs.readFileSync(path.join(out, 'meta.json'), 'utf8'));
  const tok = await loadTokenizer(path.join(out, 'tokenizer.json'));
  assert.equal(tok.hash(), meta.tokenizer.hash);
  if (!hasNumpy) {
    t.diagnostic('python3 with numpy not found: numpy read-back skipped');
  } else {
    const py = `import numpy as np, sys, json
for p in sys.argv[1:]:
    a = np.load(p, mmap_mode="r")
    assert a.dtype.str == "<u2" and a.ndim == 1
    print(json.dumps(a.tolist()))`;
    const res = spawnSync('python3', ['-c', py, path.join(out, 'train.npy'), path.join(out, 'val.npy')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(res.status, 0, res.stderr);
    const [trainIds, valIds] = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as number[]);
    const split = (ids: number[]) => {
      const docs: string[] = [];
      let s = 0;
      ids.forEach((id, i) => { if (id === tok.eotId) { docs.push(tok.decode(ids.slice(s, i))); s = i + 1; } });
      assert.equal(s, ids.length, 'every document ends with the end-of-text id');
      return docs;
    };
    assert.deepEqual(split(trainIds!), train);
    assert.deepEqual(split(valIds!), val);
    assert.equal(trainIds!.length, meta.splits.train.tokens);
  }
  const b = await cli(['baselines', out, '--json']);
  assert.equal(b.code, 0, b.stderr);
  const j = JSON.parse(b.stdout);
  for (const k of ['uniform', 'unigram', 'bigram', 'trigram']) assert.ok(j[k].nats > 0 && j[k].bpb > 0);
  assert.ok(Math.abs(j.uniform.nats - Math.log(300)) < 1e-9);
  assert.ok(j.unigram.nats < j.uniform.nats && j.bigram.nats < j.unigram.nats);
  assert.ok(Math.abs(j.bigram.bpb - j.bigram.nats * meta.splits.val.tokens / (meta.splits.val.bytes * Math.LN2)) < 1e-9);
  assert.match(j.trigram.smoothing, /add-k|Kneser-Ney/);
  const table = await cli(['baselines', out]);
  assert.match(table.stdout, /trigram +\d+\.\d{4} +\d+\.\d{4}/);
  // a token file checked against another tokenizer: one line
  const other = path.join(dir, 'other');
  const r2 = await cli(['prepare', '--data', path.join(dir, 'train.txt'), '--val', path.join(dir, 'val.txt'), '--vocab-size', '280', '--out', other]);
  assert.equal(r2.code, 0, r2.stderr);
  oneLineError(await cli(['baselines', out, '--tokenizer', path.join(other, 'tokenizer.json')]), /made with another tokenizer/);
  fs.copyFileSync(path.join(other, 'tokenizer.json'), path.join(out, 'tokenizer.json'));
  oneLineError(await cli(['baselines', out]), /made with another tokenizer/);
  fs.rmSync(dir, { recursive: true });
});

test('prepare --dataset tinystories through a local server, then baselines', async () => {
  const dir = tmpDir();
  const server = http.createServer((req, res) => {
    const f = path.join(tinystoriesSampleDir(), path.basename(req.url ?? ''));
    if (!fs.existsSync(f)) { res.writeHead(404).end(); return; }
    const data = fs.readFileSync(f);
    const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
    res.writeHead(m ? 206 : 200, { 'content-length': end - start + 1, ...(m ? { 'content-range': `bytes ${start}-${end}/${data.length}` } : {}) });
    res.end(data.subarray(start, end + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const env = { POCKETLM_CACHE: dir, POCKETLM_TINYSTORIES_URL: base, POCKETLM_TINYSTORIES_TRAIN: 'train-01.txt', POCKETLM_TINYSTORIES_VALID: 'valid-00.txt' };
  try {
    const r = await cli(['prepare', '--dataset', 'tinystories', '--max-train-mb', '0.4', '--vocab-size', '300'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /val +1,000 documents/);
    const outDir = /prepared: (.*)/.exec(r.stdout)![1]!;
    assert.ok(outDir.startsWith(dir));
    const again = await cli(['prepare', '--dataset', 'tinystories', '--max-train-mb', '0.4', '--vocab-size', '300'], env);
    assert.match(again.stdout, /up to date/);
    const b = await cli(['baselines', outDir]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /uniform +5\.7038/);
  } finally {
    server.close();
  }
  // nothing listening any more, fresh cache: a one-line note, then the bundled sample is prepared
  const off = await cli(['prepare', '--dataset', 'tinystories', '--vocab-size', '258', '--threads', '1'], { ...env, POCKETLM_CACHE: path.join(dir, 'c2') });
  assert.equal(off.code, 0, off.stderr);
  const notes = off.stderr.split('\n').filter((l) => l.startsWith('note: '));
  assert.equal(notes.length, 1, off.stderr);
  assert.match(notes[0]!, /^note: TinyStories could not be downloaded \(download of .*valid-00\.txt failed \(ECONNREFUSED\)\): using the TinyStories sample bundled with pocketlm instead .*--dataset tinystories$/);
  assert.match(off.stdout, /source: +TinyStories sample bundled with pocketlm/);
  assert.match(off.stdout, /val +1,000 documents/);
  // by name it never tries the network, and the prepared sample is reused
  const named = await cli(['prepare', '--dataset', 'tinystories-sample', '--vocab-size', '258'], { ...env, POCKETLM_CACHE: path.join(dir, 'c2') });
  assert.equal(named.code, 0, named.stderr);
  assert.match(named.stdout, /^up to date: /);
  assert.doesNotMatch(named.stderr, /note:/);
  fs.rmSync(dir, { recursive: true });
});

test('bad input: one line, exit 1', async () => {
  const dir = tmpDir();
  const p = (n: string) => path.join(dir, n);
  const prep = (file: string) => cli(['prepare', '--data', file, '--vocab-size', '300', '--out', p('o')], { POCKETLM_CACHE: dir });
  fs.writeFileSync(p('empty.txt'), '');
  oneLineError(await prep(p('empty.txt')), /empty\.txt is empty/);
  fs.writeFileSync(p('blank.txt'), '\n \n<|endoftext|>\n\n<|endoftext|>\n');
  oneLineError(await prep(p('blank.txt')), /no documents found/);
  fs.writeFileSync(p('garbage.txt'), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)));
  oneLineError(await prep(p('garbage.txt')), /garbage\.txt looks like a binary file/);
  fs.writeFileSync(p('latin1.txt'), Buffer.concat([Buffer.from('Once upon a time.\n\nThe caf'), Buffer.from([0xe9]), Buffer.from(' was open.\n')]));
  oneLineError(await prep(p('latin1.txt')), /latin1\.txt is not valid UTF-8 \(byte offset 26\)/);
  oneLineError(await prep(p('missing.txt')), /missing\.txt/);
  oneLineError(await cli(['prepare', '--dataset', 'wikipedia']), /unknown dataset/);
  oneLineError(await cli(['baselines', dir]), /not a prepared dataset/);
  fs.rmSync(dir, { recursive: true });
});

test('write failures (file size limit, permission): one line, no half-written files', async (t) => {
  const dir = tmpDir();
  writeStories(path.join(dir, 'train.txt'), 'train-00.txt', 400);
  const out = path.join(dir, 'o');
  // ulimit -f: the token file outgrows 64 KB and the write fails, as on a full disk
  const r = await cli(['prepare', '--data', path.join(dir, 'train.txt'), '--vocab-size', '300', '--out', out], {},
    ['bash', '-c', 'ulimit -f 64; trap "" XFSZ; exec "$@"', 'bash']);
  oneLineError(r, /while writing .*train\.npy/);
  // nothing half-made: the folder this prepare created is gone again
  assert.equal(fs.existsSync(out), false);
  fs.mkdirSync(out);
  const setpriv = spawnSync('setpriv', ['--version']).status === 0;
  if (process.getuid?.() !== 0 || !setpriv) { t.diagnostic('permission case needs root and setpriv: skipped'); fs.rmSync(dir, { recursive: true }); return; }
  // as user nobody, into a folder owned by root
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(out, 0o755);
  const r2 = await cli(['prepare', '--data', path.join(dir, 'train.txt'), '--vocab-size', '300', '--out', out], { POCKETLM_CACHE: path.join(os.tmpdir(), 'plm-nobody-cache') },
    ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
  oneLineError(r2, new RegExp(`permission denied writing ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  assert.deepEqual(fs.readdirSync(out), []);
  fs.rmSync(dir, { recursive: true });
});
