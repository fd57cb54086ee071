// `pocketlm export` and `pocketlm import`, run as a user would: node bin/pocketlm.js (needs a build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { loadConfig, stringifyConfig } from '../train/config.js';
import { saveCheckpoint } from '../train/checkpoint.js';
import { runPaths } from '../train/run.js';
import { planLayout } from '../model/layout.js';
import { mulberry32 } from '../util/rng.js';
import { saveTokenizer } from '../tokenizer/load.js';
import { trainBpe } from '../tokenizer/train.js';
import { sampleDocs } from '../tokenizer/test-fixtures.js';

const bin = path.join(packageRoot(), 'bin', 'pocketlm.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-exportcli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, POCKETLM_CACHE: path.join(tmp, 'cache') } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A run folder with random (untrained) weights: enough for the commands' plumbing. */
async function makeRun(dir: string): Promise<void> {
  const cfg = loadConfig({ preset: 'tiny', set: ['model.vocab_size=300', 'model.d_model=16', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=16', 'model.ffn_hidden=32', 'train.batch_size=2'] });
  const layout = planLayout(cfg.model);
  const u = mulberry32(3);
  const params = Float32Array.from({ length: layout.numParams }, () => (u() - 0.5) * 0.2);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(runPaths(dir).config, stringifyConfig(cfg));
  await saveTokenizer(trainBpe(sampleDocs(40_000), { vocabSize: 300 }), runPaths(dir).tokenizer);
  saveCheckpoint(dir, cfg.model as unknown as Record<string, number | boolean | string>, { tensors: layout.tensors, weights: params }, {
    step: 5, tokens: 160, elapsed_seconds: 1, loader: null, rng: null, optimizer: 'adamw', optim_scalars: {}, dataset: { dir: '', tokenizer_hash: '' },
  });
}

function oneLineError(r: { code: number; out: string; err: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, r.err);
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.err);
  assert.match(lines[0]!, /^pocketlm: /);
  assert.match(lines[0]!, pattern);
}

test('export --format hf, import --from hf, then sample runs on the imported run', async () => {
  const runDir = path.join(tmp, 'run');
  await makeRun(runDir);
  const e = run(['export', '--run', runDir, '--format', 'hf', '--dtype', 'f16', '--out', path.join(tmp, 'hf')]);
  assert.equal(e.code, 0, e.err);
  assert.match(e.err, /note: .* has no best checkpoint yet .*using the last checkpoint \(step 5\)/);
  assert.match(e.out, /^wrote .*hf: 11 tensors, [\d.]+ KiB \(f16\) in [\d.]+ s\n$/);
  const i = run(['import', '--from', 'hf', path.join(tmp, 'hf'), '--out', path.join(tmp, 'imported')]);
  assert.equal(i.code, 0, i.err);
  assert.match(i.out, /^imported .* into .*imported: [\d,]+ parameters\nnote: weights stored as F16 were widened to float32\nnote: no optimizer state/);
  const s = run(['sample', '--run', path.join(tmp, 'imported'), '--max-tokens', '5', '--temperature', '0', '--prompt', 'Once', '--backend', 'js']);
  assert.equal(s.code, 0, s.err);
  assert.match(s.out, /^Once/);
  oneLineError(run(['eval', '--run', path.join(tmp, 'imported'), '--backend', 'js']), /imported.* has no dataset of its own \(an imported model\); evaluate on files with --data FILE/);
  const ev = run(['eval', '--run', path.join(tmp, 'imported'), '--backend', 'js', '--data', path.join(tinystoriesSampleDir(), 'valid-00.txt'), '--batches', '1', '--json']);
  assert.equal(ev.code, 0, ev.err);
  assert.ok(Number.isFinite((JSON.parse(ev.out) as { val_loss: number }).val_loss));
});

test('bad input gives one line: missing run, existing out, unknown format, dtype or source', () => {
  const runDir = path.join(tmp, 'run');
  oneLineError(run(['export', '--run', path.join(tmp, 'missing'), '--format', 'hf', '--out', path.join(tmp, 'o1')]), /run folder .*missing does not exist/);
  oneLineError(run(['export', '--run', runDir, '--format', 'hf', '--out', runDir]), /--out .*run already exists and is not empty/);
  oneLineError(run(['export', '--run', runDir, '--format', 'onnx', '--out', path.join(tmp, 'o2')]), /--format must be one of hf, gguf, got "onnx"/);
  oneLineError(run(['export', '--run', runDir, '--format', 'hf', '--dtype', 'f8', '--out', path.join(tmp, 'o3')]), /--dtype must be one of f32, f16, bf16, got "f8"/);
  oneLineError(run(['export', '--run', runDir, '--format', 'hf', '--checkpoint', 'first', '--out', path.join(tmp, 'o4')]), /--checkpoint must be best or last/);
  oneLineError(run(['import', '--from', 'onnx', runDir, '--out', path.join(tmp, 'o5')]), /--from must be one of hf, gguf, got "onnx"/);
  oneLineError(run(['import', '--from', 'hf', runDir, '--out', path.join(tmp, 'o6')]), /config\.json does not exist/);
  for (const o of ['o1', 'o2', 'o3', 'o4', 'o5', 'o6']) assert.ok(!fs.existsSync(path.join(tmp, o)), o);
});
