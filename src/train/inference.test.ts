import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { loadConfig } from './config.js';
import { train } from './trainer.js';
import { readLog } from './log.js';
import { evaluateRun, generateText, openRun } from './inference.js';
import { inferenceMemoryPlan } from './memory.js';

// `sample` and `eval` work from the run folder alone; checked on a tiny run trained here.

const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
let work = '';
let runDir = '';
let savedCache: string | undefined;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-infer-'));
  savedCache = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(work, 'cache');
  runDir = path.join(work, 'run');
  const config = loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=512', 'model.d_model=32', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=32', 'model.ffn_hidden=64',
      'train.batch_size=8', 'train.steps=40', 'train.time_seconds=0', 'train.eval_every=0', 'train.eval_batches=3',
      'train.sample_tokens=0', 'train.backend="wasm"', 'train.threads=1', `data.paths=[${JSON.stringify(DATA)}]`,
    ],
  });
  await train({ config, runDir, resume: false }, () => {}, () => false);
});

after(() => {
  if (savedCache === undefined) delete process.env.POCKETLM_CACHE;
  else process.env.POCKETLM_CACHE = savedCache;
  fs.rmSync(work, { recursive: true, force: true });
});

test('eval on the run\'s own split reproduces the final val loss of the training log exactly', async () => {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1 });
  try {
    const r = evaluateRun(run, {});
    const last = readLog(path.join(runDir, 'log.jsonl')).at(-1)!;
    assert.equal(r.loss, last.val_loss);
    assert.equal(r.bpb, last.val_bpb);
    assert.equal(r.windows, 3 * 8);
    // on files: the same text again (train-01 is not what it trained on), more windows
    const f = evaluateRun(run, { data: [path.join(tinystoriesSampleDir(), 'train-01.txt')], batches: 5 });
    assert.equal(f.windows, 40);
    assert.ok(f.loss > 0 && f.loss < Math.log(512), `loss ${f.loss}`);
    assert.ok(f.bpb > 0.5 && f.bpb < 8, `bpb ${f.bpb}`);
  } finally {
    await run.close();
  }
});

test('sampling is reproducible for a seed, stops at the token budget, and streams pieces', async () => {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1, batchSize: 1 });
  try {
    const req = { prompt: 'Once upon a time', maxTokens: 30, temperature: 1, topK: 0, topP: 1, seed: 7, stopAtEnd: false };
    const a = [...generateText(run, req)];
    const b = [...generateText(run, req)];
    const c = [...generateText(run, { ...req, seed: 8 })];
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.join(''), c.join(''));
    assert.ok(a.length > 1, 'several pieces, streamed');
    // one piece per token at most (plus a final flush of an incomplete character)
    assert.ok(a.length <= 31, `${a.length} pieces`);
    // a shorter budget gives a prefix of the same stream
    const short = [...generateText(run, { ...req, maxTokens: 10 })].join('');
    assert.ok(short.length < a.join('').length);
    assert.ok(a.join('').startsWith(short.replace(/\uFFFD$/, '')), `${JSON.stringify(short)} vs ${JSON.stringify(a.join(''))}`);
    // greedy decoding does not depend on the seed
    const g1 = [...generateText(run, { ...req, temperature: 0, seed: 1 })].join('');
    const g2 = [...generateText(run, { ...req, temperature: 0, seed: 2 })].join('');
    assert.equal(g1, g2);
  } finally {
    await run.close();
  }
});

test('the sample and eval commands run from the folder alone and refuse bad input in one line', () => {
  const env = { ...process.env };
  const s = spawnSync(process.execPath, [BIN, 'sample', '--run', runDir, '--prompt', 'The cat', '--max-tokens', '20', '--backend', 'wasm', '--threads', '1', '--seed', '3'], { encoding: 'utf8', env });
  assert.equal(s.status, 0, s.stderr);
  assert.ok(s.stdout.startsWith('The cat'), s.stdout);
  assert.ok(s.stdout.length > 'The cat'.length + 1);
  const e = spawnSync(process.execPath, [BIN, 'eval', '--run', runDir, '--json', '--backend', 'wasm', '--threads', '1'], { encoding: 'utf8', env });
  assert.equal(e.status, 0, e.stderr);
  const j = JSON.parse(e.stdout) as { val_loss: number; step: number };
  assert.equal(j.step, 40);
  assert.equal(j.val_loss, readLog(path.join(runDir, 'log.jsonl')).at(-1)!.val_loss);
  for (const [args, pattern] of [
    [['sample', '--run', path.join(work, 'nope')], /not a pocketlm run folder/],
    [['sample', '--run', runDir, '--temperature', '-1'], /--temperature must be a number >= 0/],
    [['eval', '--run', runDir, '--batches', 'x'], /--batches must be a whole number/],
    [['eval', '--run', runDir, '--checkpoint', 'first'], /--checkpoint must be best or last, got "first"/],
    [['sample', '--run', runDir, '--checkpoint', 'latest'], /--checkpoint must be best or last, got "latest"/],
  ] as const) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
});

test('openRun refuses a folder without a checkpoint', async () => {
  const empty = path.join(work, 'empty');
  fs.mkdirSync(empty);
  fs.copyFileSync(path.join(runDir, 'config.toml'), path.join(empty, 'config.toml'));
  fs.copyFileSync(path.join(runDir, 'tokenizer.json'), path.join(empty, 'tokenizer.json'));
  await assert.rejects(openRun(empty, { backend: 'wasm', threads: 1 }), (e: unknown) => e instanceof UserError && /no checkpoint yet/.test(e.message));
});

test('the memory plan of sample and eval matches the arena they use, and an oversized run is refused before allocating', async () => {
  for (const batchSize of [1, undefined]) {
    const run = await openRun(runDir, { backend: 'wasm', threads: 1, batchSize });
    try {
      // sample builds its KV-cache decoder on top: the plan counts it either way
      [...generateText(run, { prompt: 'A', maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 1, stopAtEnd: false })];
      const used = run.backend.arena.bytesUsed();
      const plan = inferenceMemoryPlan(run.config, { batchSize: run.model.batchSize, backend: 'wasm', threads: 1 });
      assert.ok(plan.bytes >= used && plan.bytes <= used * 1.01, `batch ${run.model.batchSize}: plan ${plan.bytes}, used ${used}`);
    } finally {
      await run.close();
    }
  }
  const big = path.join(work, 'big');
  fs.mkdirSync(big);
  fs.writeFileSync(path.join(big, 'config.toml'), fs.readFileSync(path.join(runDir, 'config.toml'), 'utf8').replace(/seq_len = \d+/, 'seq_len = 1000000'));
  fs.copyFileSync(path.join(runDir, 'tokenizer.json'), path.join(big, 'tokenizer.json'));
  await assert.rejects(openRun(big, { backend: 'wasm', threads: 1, batchSize: 1 }),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`the run in ${big} needs `) && /but the wasm32 arena holds at most 4\.0 GiB/.test(e.message));
  // sample runs one row (nothing to lower but the model); eval runs train.batch_size rows
  // (a million positions need GiBs, no longer TiBs: no activation grows with seq_len squared)
  for (const [cmd, end] of [['sample', 'GiB'], ['eval', "GiB; lower train\\.batch_size in the run's config\\.toml"]] as const) {
    const r = spawnSync(process.execPath, [BIN, cmd, '--run', big], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^pocketlm: the run in .* needs [\\d.]+ GiB of memory \\(activations .* but the wasm32 arena holds at most 4\\.0 ${end}\n$`));
  }
});

test('best is the default checkpoint; a run without one falls back to the last and says so', async () => {
  const run = await openRun(runDir, { backend: 'wasm', threads: 1 });
  try {
    assert.equal(run.checkpoint, 'best');
    assert.equal(run.notice, null);
    assert.equal(run.manifest.step, 40);
  } finally {
    await run.close();
  }
  // a run folder from before best/ existed (or stopped before its first evaluation)
  const older = path.join(work, 'no-best');
  fs.cpSync(runDir, older, { recursive: true });
  fs.rmSync(path.join(older, 'best'), { recursive: true });
  const fallback = await openRun(older, { backend: 'wasm', threads: 1 });
  try {
    assert.equal(fallback.checkpoint, 'last');
    assert.match(fallback.notice!, /has no best checkpoint yet \(no evaluation has finished\); using the last checkpoint \(step 40\)$/);
  } finally {
    await fallback.close();
  }
  const env = { ...process.env };
  const e = spawnSync(process.execPath, [BIN, 'eval', '--run', older, '--json', '--backend', 'wasm', '--threads', '1'], { encoding: 'utf8', env });
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stderr, /^note: .*has no best checkpoint yet.*\(step 40\)\n$/);
  assert.deepEqual((JSON.parse(e.stdout) as { checkpoint: string; step: number }).checkpoint, 'last');
  const l = spawnSync(process.execPath, [BIN, 'eval', '--run', runDir, '--checkpoint', 'last', '--backend', 'wasm', '--threads', '1'], { encoding: 'utf8', env });
  assert.equal(l.status, 0, l.stderr);
  assert.equal(l.stderr, '');
  assert.match(l.stdout, /, last checkpoint at step 40,/);
});
