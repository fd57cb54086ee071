import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expandPaths, fileSource, globToRegExp, mobyDickSource } from './sources.js';
import { firstInvalidUtf8 } from './utf8.js';
import { UserError } from '../util/errors.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-src-'));
}

function docsOf(file: string): string[] {
  return [...fileSource(file).docs()];
}

test('<|endoftext|> lines separate documents; inline mentions do not', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'a.txt');
  fs.writeFileSync(f, 'One.\nTwo lines.\n<|endoftext|>\n\nSecond <|endoftext|> inline.\n  <|endoftext|>  \r\nThird.\n<|endoftext|>\n');
  assert.deepEqual(docsOf(f), ['One.\nTwo lines.', 'Second <|endoftext|> inline.', 'Third.']);
  fs.rmSync(dir, { recursive: true });
});

test('without <|endoftext|> lines, blank lines separate documents', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'b.txt');
  fs.writeFileSync(f, '\uFEFFPara one\nstill one.\n\n\n  \nPara two.\r\n\r\nPara three');
  assert.deepEqual(docsOf(f), ['Para one\nstill one.', 'Para two.', 'Para three']);
  fs.rmSync(dir, { recursive: true });
});

test('documents across the 4 MB read chunks come out whole', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'big.txt');
  const docs = Array.from({ length: 5000 }, (_, i) => `Story ${i} é🙂 `.repeat(1 + (i % 300)).trim());
  fs.writeFileSync(f, docs.map((d) => `${d}\n<|endoftext|>\n`).join(''));
  assert.ok(fs.statSync(f).size > 2 * (4 << 20)); // spans at least two read chunks
  assert.deepEqual(docsOf(f), docs);
  fs.rmSync(dir, { recursive: true });
});

test('.jsonl: the text field of each line; bad lines named', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'c.jsonl');
  fs.writeFileSync(f, '{"text":"a b"}\n\n{"text":"line\\nbreak","id":2}\n');
  assert.deepEqual(docsOf(f), ['a b', 'line\nbreak']);
  fs.writeFileSync(f, '{"text":"ok"}\n{"title":"x"}\n');
  assert.throws(() => docsOf(f), (e: unknown) => e instanceof UserError && /c\.jsonl:2: no string "text" field/.test(e.message));
  fs.writeFileSync(f, '{"text":"ok"}\n{oops\n');
  assert.throws(() => docsOf(f), /c\.jsonl:2: not valid JSON/);
  fs.rmSync(dir, { recursive: true });
});

test('bad files: empty, binary, invalid UTF-8 with its byte offset', () => {
  const dir = tmpDir();
  const empty = path.join(dir, 'empty.txt');
  fs.writeFileSync(empty, '');
  assert.throws(() => fileSource(empty), (e: unknown) => e instanceof UserError && /empty\.txt is empty/.test(e.message));
  const bin = path.join(dir, 'bin.txt');
  fs.writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]));
  assert.throws(() => fileSource(bin), /bin\.txt looks like a binary file/);
  const ctl = path.join(dir, 'ctl.txt');
  fs.writeFileSync(ctl, Buffer.from(Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? 1 : 65))));
  assert.throws(() => fileSource(ctl), /looks like a binary file \(334 control bytes/);
  const bad = path.join(dir, 'bad.txt');
  fs.writeFileSync(bad, Buffer.concat([Buffer.from('hello wörld\n'), Buffer.from([0x61, 0xc3, 0x28, 0x0a])]));
  assert.throws(() => docsOf(bad), (e: unknown) => e instanceof UserError && e.message === `${bad} is not valid UTF-8 (byte offset 14)`);
  fs.rmSync(dir, { recursive: true });
});

test('firstInvalidUtf8 finds overlongs, surrogates, truncations', () => {
  const b = (...x: number[]) => new Uint8Array(x);
  assert.equal(firstInvalidUtf8(Buffer.from('aé€🙂')), -1);
  assert.equal(firstInvalidUtf8(b(0x61, 0xc0, 0x80)), 1);
  assert.equal(firstInvalidUtf8(b(0xed, 0xa0, 0x80)), 0);
  assert.equal(firstInvalidUtf8(b(0x61, 0x62, 0xf0, 0x9f)), 2);
  assert.equal(firstInvalidUtf8(b(0x61, 0x62, 0xf0, 0x9f), false), -1);
  assert.equal(firstInvalidUtf8(b(0xf4, 0x90, 0x80, 0x80)), 0);
});

test('folders, globs and ** expand to sorted .txt/.jsonl files', () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, 'sub', 'deep'), { recursive: true });
  for (const f of ['a.txt', 'b.jsonl', 'c.bin', 'sub/d.txt', 'sub/deep/e.txt', '.hidden.txt']) fs.writeFileSync(path.join(dir, f), 'x');
  const rel = (fs_: string[]) => fs_.map((f) => path.relative(dir, f));
  assert.deepEqual(rel(expandPaths([dir])), ['a.txt', 'b.jsonl', 'sub/d.txt', 'sub/deep/e.txt']);
  assert.deepEqual(rel(expandPaths([path.join(dir, '*.txt')])), ['a.txt']);
  assert.deepEqual(rel(expandPaths([path.join(dir, '**/*.txt')])), ['a.txt', 'sub/d.txt', 'sub/deep/e.txt']);
  assert.deepEqual(rel(expandPaths([path.join(dir, 'a.txt'), path.join(dir, '*.txt')])), ['a.txt']);
  assert.throws(() => expandPaths([path.join(dir, '*.csv')]), /no \.txt or \.jsonl files found/);
  assert.throws(() => expandPaths([path.join(dir, 'nope.txt')]), /no such file or folder/);
  assert.ok(globToRegExp('/a/**/b?.txt').test('/a/x/y/b1.txt'));
  assert.ok(!globToRegExp('/a/*.txt').test('/a/x/b.txt'));
  fs.rmSync(dir, { recursive: true });
});

test('moby-dick: one document per chapter, offline', () => {
  const docs = [...mobyDickSource().docs()];
  assert.ok(docs.length > 100);
  assert.ok(docs.some((d) => d.startsWith('Call me Ishmael')));
});
