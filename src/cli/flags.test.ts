// Bad flag values through the real CLI (node bin/pocketlm.js; needs a build): each is refused
// with exit code 1 and one line naming the flag (or the config key the user set), no stack trace,
// before anything runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { intFlag, numberFlag, choiceFlag } from './flags.js';

const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');

interface Run { code: number; stderr: string }

function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' }, (err, _out, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr });
    });
  });
}

test('flag helpers: decimal whole numbers in range, finite numbers, exact choices', () => {
  assert.equal(intFlag('--n', ' 12 ', 1), 12);
  for (const bad of ['', '1e3', '0x10', '2.0', '-1', 'x', '99999999999999999999']) assert.throws(() => intFlag('--n', bad, 0), /^UserError: --n must be a whole number >= 0, got "/);
  assert.throws(() => intFlag('--n', '300', 1, 256), /--n must be a whole number from 1 to 256, got "300"/);
  assert.equal(numberFlag('--x', '1e-3', (n) => n > 0, 'a number > 0'), 1e-3);
  for (const bad of ['', 'NaN', 'Infinity', '0']) assert.throws(() => numberFlag('--x', bad, (n) => n > 0, 'a number > 0'), /--x must be a number > 0/);
  assert.equal(choiceFlag('--b', 'js', ['auto', 'js'] as const), 'js');
  assert.throws(() => choiceFlag('--b', 'JS', ['auto', 'js']), /--b must be one of auto, js, got "JS"/);
});

test('bad flag values of sample, eval, prepare, bench and train are refused in one line, exit 1', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-flags-'));
  const env = { POCKETLM_CACHE: path.join(work, 'cache') };
  const nope = path.join(work, 'no-run');
  const cases: Array<[string[], RegExp]> = [
    [['sample', '--run', nope, '--backend', 'cuda'], /--backend must be one of auto, wasm, native, js, got "cuda"/],
    [['eval', '--run', nope, '--backend', 'cuda'], /--backend must be one of auto, wasm, native, js, got "cuda"/],
    [['sample', '--run', nope, '--threads', '100000'], /--threads must be a whole number from 1 to 256, got "100000"/],
    [['prepare', '--data', DATA, '--threads', '-1'], /--threads must be a whole number from 1 to 256, got "-1"/],
    [['prepare', '--data', DATA, '--vocab-size', '257'], /--vocab-size must be a whole number from 258 to 1048576, got "257"/],
    [['prepare', '--data', DATA, '--vocab-size', '1e3'], /--vocab-size must be a whole number from 258 to 1048576, got "1e3"/],
    [['prepare', '--data', DATA, '--max-train-mb', '0'], /--max-train-mb must be a number > 0, got "0"/],
    [['prepare', '--data', DATA, '--val-fraction', '0.7'], /--val-fraction must be a number in \(0, 0\.5\), got "0\.7"/],
    [['prepare', '--data', DATA, '--tokenizer-train-mb', '-1'], /--tokenizer-train-mb must be a number > 0, got "-1"/],
    [['bench', 'nothing', '--threads', '100000'], /--threads must be a whole number from 1 to 256, got "100000"/],
    [['bench', 'nothing', '--steps', '5'], /--steps must be a whole number >= 10, got "5"/],
    [['train', '--preset', 'tiny', '--backend', 'cuda', '--data', DATA, '--out', path.join(work, 'run')], /--backend must be one of auto, wasm, native, js, got "cuda"/],
    [['train', '--preset', 'tiny', '--threads', '999', '--data', DATA, '--out', path.join(work, 'run')], /--threads must be a whole number from 0 to 256, got "999"/],
    [['train', '--preset', 'tiny', '--steps', '-3', '--data', DATA, '--out', path.join(work, 'run')], /--steps must be a whole number >= 0, got "-3"/],
    // the config key the user set, not a flag they never used
    [['train', '--preset', 'tiny', '--set', 'model.vocab_size=257', '--data', DATA, '--out', path.join(work, 'run')],
      /model\.vocab_size must be from 258 to 1048576 .*got 257 \(in --set model\.vocab_size=257\)$/],
  ];
  try {
    // a few at a time: each is a node start-up
    const results: Run[] = [];
    for (let i = 0; i < cases.length; i += 4) results.push(...await Promise.all(cases.slice(i, i + 4).map(([args]) => cli(args, env))));
    // every case checked, the failures reported together
    const failed = cases.flatMap(([args, re], i) => {
      const r = results[i]!;
      const lines = r.stderr.trim().split('\n');
      const ok = r.code === 1 && lines.length === 1 && /^pocketlm: /.test(lines[0]!) && re.test(lines[0]!);
      return ok ? [] : [`${args.join(' ')}: exit ${r.code}, stderr:\n${r.stderr}`];
    });
    assert.deepEqual(failed, []);
    assert.equal(fs.existsSync(env.POCKETLM_CACHE), false, 'nothing was prepared');
    assert.equal(fs.existsSync(path.join(work, 'run')), false);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
