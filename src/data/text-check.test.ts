import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cutAfterLastStory, endsWithWholeStory, quickStoryProblem, sameText, storyFileProblem } from './text-check.js';
import { fileSource } from './sources.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plm-check-'));
}

test('story files: each kind of wrong content is named, real TinyStories passes', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'x.txt');
  const problem = (body: string | Buffer) => { fs.writeFileSync(f, body); return storyFileProblem(f, { wholeStories: true }); };
  assert.match(problem('<!DOCTYPE html>\n<html lang="en"><body>Sign in</body></html>\n')!, /^is an HTML page \(it starts with <!DOCTYPE html>\)/);
  assert.match(problem('\n<!-- generated -->\n<html>\n<p>x</p>\n')!, /^is an HTML page \(it starts with <html>\)/);
  assert.match(problem('Error\n<head><title>404</title></head>\n<|endoftext|>\n')!, /^is an HTML page \(it holds <head>\)/);
  assert.match(problem('<?xml version="1.0"?>\n<feed/>\n')!, /^is an XML document/);
  // no page header, but most lines are tags: markup, even with a separator line among them
  assert.match(problem('<div>\n<p>Once</p>\n<p>Two</p>\n<|endoftext|>\n<span>x</span>\n<|endoftext|>\n')!, /^is markup, not text \(4 of its first 6 lines are tags\)/);
  assert.match(problem('Once upon a time.\n<|endoftext|>\nab\0c\n<|endoftext|>\n')!, /^holds binary data \(a NUL byte at offset 34\)/);
  assert.match(problem(Buffer.concat([Buffer.from('Once.\n<|endoftext|>\nab'), Buffer.from([0xff]), Buffer.from('\n<|endoftext|>\n')]))!, /^is not valid UTF-8 \(byte offset 22\)/);
  assert.match(problem('{"error":"Entry not found"}')!, /^has no <\|endoftext\|> line/);
  assert.match(problem('Once upon a time.\n<|endoftext|>\nThe dog wanted to just take ')!, /^ends mid-story .*"The dog wanted to just take"/);
  assert.equal(problem(''), 'is empty');
  // prose that mentions a tag, a separator with spaces and CRLF, no final newline: fine
  assert.equal(problem('Tom wrote <b> on the board.\n  <|endoftext|>  \r\nThe end.\n<|endoftext|>'), null);
  // the separator must be a whole line to count as the end
  assert.match(problem('A story.\n<|endoftext|>\nThen <|endoftext|> inline\n')!, /^ends mid-story/);
  for (const name of ['train-00.txt', 'train-01.txt', 'valid-00.txt']) {
    assert.equal(storyFileProblem(path.join(tinystoriesSampleDir(), name), { wholeStories: true }), null, name);
    assert.equal(quickStoryProblem(path.join(tinystoriesSampleDir(), name)), null, name);
  }
  fs.rmSync(dir, { recursive: true });
});

test('cutting a story file after its last whole story', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'x.txt');
  fs.writeFileSync(f, 'One.\n<|endoftext|>\nTwo.\n <|endoftext|>\t\nThree is cut <|endoftext|> here');
  assert.equal(endsWithWholeStory(f), false);
  assert.equal(cutAfterLastStory(f), true);
  assert.equal(fs.readFileSync(f, 'utf8'), 'One.\n<|endoftext|>\nTwo.\n <|endoftext|>\t\n');
  assert.equal(endsWithWholeStory(f), true);
  // a separator more than a read window (1 MB) before the end, and one across the window edge
  const big = `Start.\n<|endoftext|>\n${'x'.repeat((1 << 20) - 5)}\n`;
  fs.writeFileSync(f, big);
  assert.equal(cutAfterLastStory(f), true);
  assert.equal(fs.readFileSync(f, 'utf8'), 'Start.\n<|endoftext|>\n');
  fs.writeFileSync(f, 'no separator at all\n');
  assert.equal(cutAfterLastStory(f), false);
  assert.equal(fs.readFileSync(f, 'utf8'), 'no separator at all\n');
  fs.rmSync(dir, { recursive: true });
});

test('sameText: equal files and a file that is a prefix of the other', () => {
  const dir = tmpDir();
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  fs.writeFileSync(a, 'One.\n<|endoftext|>\nTwo.\n<|endoftext|>\n');
  fs.writeFileSync(b, 'One.\n<|endoftext|>\n');
  assert.equal(sameText(a, b), true);
  fs.writeFileSync(b, 'Uno.\n<|endoftext|>\n');
  assert.equal(sameText(a, b), false);
  fs.rmSync(dir, { recursive: true });
});

test('local files: an HTML page is refused in one line; text quoting markup and .jsonl are not', () => {
  const dir = tmpDir();
  const page = path.join(dir, 'saved.txt');
  fs.writeFileSync(page, '<!doctype html>\n<html>\n<head><title>story.txt at main</title></head>\n<body>Once upon a time</body>\n</html>\n');
  assert.throws(() => fileSource(page), (e: unknown) => e instanceof UserError && !e.message.includes('\n') &&
    e.message.startsWith(`${page} is an HTML page (it starts with <!doctype html>), not text`));
  const prose = path.join(dir, 'prose.txt');
  fs.writeFileSync(prose, 'How to write a page:\n<html>\n<body>\nThat is all.\n');
  assert.deepEqual([...fileSource(prose).docs()], ['How to write a page:\n<html>\n<body>\nThat is all.']);
  const jsonl = path.join(dir, 'pages.jsonl');
  fs.writeFileSync(jsonl, `${JSON.stringify({ text: '<!DOCTYPE html><html></html>' })}\n`);
  assert.deepEqual([...fileSource(jsonl).docs()], ['<!DOCTYPE html><html></html>']);
  fs.rmSync(dir, { recursive: true });
});

test('story files past one 4 MB read: a character across the chunk edge is fine, a bad byte is found at its offset', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'big.txt');
  const story = 'Once upon a time, Mia saw a caf\u00e9 \u{1F642}.\n<|endoftext|>\n';
  const chunk = 4 << 20;
  // place the 4-byte emoji so that it starts 2 bytes before the first chunk ends
  const before = Buffer.from('x'.repeat(chunk - 2 - Buffer.byteLength('Once upon a time, Mia saw a caf\u00e9 ')));
  const body = Buffer.concat([Buffer.from('A start.\n<|endoftext|>\n'), before.subarray(Buffer.byteLength('A start.\n<|endoftext|>\n')), Buffer.from(story.repeat(3))]);
  assert.equal(body.subarray(chunk - 2, chunk + 2).toString('utf8'), '\u{1F642}');
  fs.writeFileSync(f, body);
  assert.equal(storyFileProblem(f, { wholeStories: true }), null);
  const bad = Buffer.from(body);
  bad[chunk + 100] = 0xff;
  fs.writeFileSync(f, bad);
  assert.equal(storyFileProblem(f, { wholeStories: true }), `is not valid UTF-8 (byte offset ${chunk + 100})`);
  fs.writeFileSync(f, Buffer.concat([body, Buffer.from([0xf0, 0x9f])]));
  assert.equal(storyFileProblem(f, { wholeStories: true }), `is not valid UTF-8 (byte offset ${body.length})`);
  fs.rmSync(dir, { recursive: true });
});
