// The `pocketlm tokenizer` commands, run as a user would: node bin/pocketlm.js (needs a build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../util/paths.js';
import { sampleDocs } from './test-fixtures.js';

const bin = path.join(packageRoot(), 'bin', 'pocketlm.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-tokcli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, 'tokenizer', ...args], { input, encoding: 'utf8', cwd: tmp });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const data = path.join(tmp, 'train.txt');
fs.writeFileSync(data, sampleDocs(120_000).join('\n<|endoftext|>\n'));
const tokFile = path.join(tmp, 'tok.json');

test('train writes a tokenizer.json of the asked size', () => {
  const r = run(['train', '--data', data, '--vocab-size', '600', '--out', tokFile]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /600 ids = 256 bytes \+ 343 merges \+ 1 special/);
  const j = JSON.parse(fs.readFileSync(tokFile, 'utf8')) as { model: { merges: unknown[] } };
  assert.equal(j.model.merges.length, 343);
  const info = run(['info', '--tokenizer', tokFile]);
  assert.match(info.out, /vocab size 600, merges 343, special <\|endoftext\|>=599\nsha256 [0-9a-f]{64}/);
});

test('encode | decode round-trips lines and JSON, from a file and from stdin', () => {
  const text = 'Once upon a time, there was a cat.\n\nIt said: "héllo 👋"  \nend';
  const inFile = path.join(tmp, 'in.txt');
  fs.writeFileSync(inFile, text);
  for (const spec of [tokFile, 'gpt2']) {
    const lines = run(['encode', '--tokenizer', spec, '--in', inFile]);
    assert.equal(lines.code, 0, lines.err);
    assert.equal(lines.out.split('\n').length - 1, 4); // one line of ids per input line
    const back = run(['decode', '--tokenizer', spec], lines.out);
    assert.equal(back.code, 0, back.err);
    assert.equal(back.out, `${text}\n`);
    if (spec === 'gpt2') continue; // JSON form once is enough (each gpt2 start costs ~0.5 s)
    const json = run(['encode', '--tokenizer', spec, '--json'], text);
    assert.ok(Array.isArray(JSON.parse(json.out)));
    const idsFile = path.join(tmp, 'ids.json');
    fs.writeFileSync(idsFile, json.out);
    assert.equal(run(['decode', '--tokenizer', spec, '--in', idsFile]).out, text);
  }
  assert.equal(run(['encode', '--tokenizer', 'gpt2'], 'Hello world').out, '15496 995\n');
  assert.equal(run(['encode', '--tokenizer', 'gpt2', '--allow-special'], 'a<|endoftext|>').out, '64 50256\n');
});

test('bad input: one line on stderr naming the file or value, exit code 1', () => {
  const cases: Array<[string[], string | undefined, RegExp]> = [
    [['train', '--data', 'missing.txt', '--vocab-size', '600', '--out', 'x.json'], undefined, /file not found: missing\.txt/],
    [['train', '--data', data, '--vocab-size', '200', '--out', 'x.json'], undefined, /vocab size 200 is too small/],
    [['train', '--data', data, '--vocab-size', 'lots', '--out', 'x.json'], undefined, /--vocab-size "lots"/],
    [['encode', '--tokenizer', 'nope.json'], 'hi', /tokenizer file not found: nope\.json/],
    [['decode', '--tokenizer', tokFile], '1 2 x3', /standard input line 1: "x3" is not a token id/],
    [['decode', '--tokenizer', tokFile], '5 6000', /token id 6000 is not in the vocabulary/],
  ];
  fs.writeFileSync(path.join(tmp, 'broken.json'), '{"model": {"type": "BPE"');
  cases.push([['info', '--tokenizer', 'broken.json'], undefined, /broken\.json: not valid JSON/]);
  for (const [args, input, re] of cases) {
    const r = run(args, input);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, /^pocketlm: /);
    assert.match(lines[0]!, re);
  }
  assert.ok(!fs.existsSync(path.join(tmp, 'x.json')));
});

test('encode refuses invalid UTF-8 with its byte offset; --bytes encodes raw bytes and decode --bytes gives them back exactly', () => {
  const raw = (args: string[], input: Buffer) => spawnSync(process.execPath, [bin, 'tokenizer', ...args], { input, cwd: tmp });
  const bad = Buffer.from([0x61, 0x62, 0x0a, 0x63, 0xff, 0x64, 0x0a]); // "ab\nc", a byte that is never UTF-8, "d\n"
  const badFile = path.join(tmp, 'bad.txt');
  fs.writeFileSync(badFile, bad);
  for (const [args, where] of [[['--json'], 'standard input'], [['--in', badFile], badFile.replace(/[.\\]/g, '\\$&')]] as const) {
    const r = raw(['encode', '--tokenizer', tokFile, ...args], bad);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    const err = r.stderr.toString();
    assert.equal(err.trim().split('\n').length, 1, err);
    assert.match(err, new RegExp(`^pocketlm: ${where} is not valid UTF-8 at byte 4 .*--bytes`));
    assert.equal(r.stdout.length, 0, 'nothing printed');
  }
  // --bytes: every byte is kept; per line and as one JSON sequence
  const lines = raw(['encode', '--tokenizer', tokFile, '--bytes'], bad);
  assert.equal(lines.status, 0, lines.stderr.toString());
  assert.equal(lines.stdout.toString().split('\n').length - 1, 2);
  const back = raw(['decode', '--tokenizer', tokFile, '--bytes'], lines.stdout);
  assert.equal(back.status, 0, back.stderr.toString());
  assert.deepEqual(back.stdout, bad);
  const json = raw(['encode', '--tokenizer', tokFile, '--bytes', '--json'], bad);
  assert.deepEqual(raw(['decode', '--tokenizer', tokFile, '--bytes'], json.stdout).stdout, bad);
  // on valid UTF-8, --bytes gives the same ids as the text path
  const text = Buffer.from('héllo 👋 world\nsecond line\n');
  assert.equal(raw(['encode', '--tokenizer', tokFile, '--bytes'], text).stdout.toString(), raw(['encode', '--tokenizer', tokFile], text).stdout.toString());
  // special tokens are text: not matched in raw bytes
  const both = raw(['encode', '--tokenizer', tokFile, '--bytes', '--allow-special'], text);
  assert.equal(both.status, 1);
  assert.match(both.stderr.toString(), /^pocketlm: --bytes and --allow-special/);
});

test('train refuses a data file that is not valid UTF-8, naming the file and byte (it trained on U+FFFD)', () => {
  const badFile = path.join(tmp, 'bad-train.txt');
  fs.writeFileSync(badFile, Buffer.concat([Buffer.from('Once upon a time.\n<|endoftext|>\nA'), Buffer.from([0xc3, 0x28]), Buffer.from(' story.\n')]));
  const out = path.join(tmp, 'bad-tok.json');
  const r = run(['train', '--data', badFile, '--vocab-size', '300', '--out', out]);
  assert.equal(r.code, 1, r.err);
  assert.equal(r.err.trim().split('\n').length, 1, r.err);
  assert.match(r.err, /^pocketlm: .*bad-train\.txt is not valid UTF-8 at byte 33 \(0xc3\)/);
  assert.ok(!fs.existsSync(out), 'no tokenizer written');
});
