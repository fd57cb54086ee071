import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { UserError } from '../util/errors.js';
import {
  closest, editDistance, listPresets, loadConfig, parseSet, stringifyConfig, validateConfig,
  type RunConfig,
} from './config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-config-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
function tomlFile(text: string): string {
  const f = path.join(dir, `c${n++}.toml`);
  fs.writeFileSync(f, text);
  return f;
}

/** Asserts a one-line UserError whose message matches every pattern. */
function throwsUser(fn: () => unknown, ...patterns: (RegExp | string)[]): string {
  let msg = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    msg = e.message;
    assert.ok(!msg.includes('\n'), `one line: ${JSON.stringify(msg)}`);
    for (const p of patterns) {
      if (typeof p === 'string') assert.ok(msg.includes(p), `message ${JSON.stringify(msg)} should include ${JSON.stringify(p)}`);
      else assert.match(msg, p);
    }
    return true;
  });
  return msg;
}

test('the four presets exist and all load', () => {
  const names = listPresets();
  for (const p of ['tiny', 'seed-small', 'default', 'phone']) assert.ok(names.includes(p), `preset ${p}`);
  for (const p of names) {
    const c = loadConfig({ preset: p });
    assert.equal(c.model.d_model % c.model.n_head, 0, p);
  }
});

test('preset values come through exactly, with defaults filled in', () => {
  const s = loadConfig({ preset: 'seed-small' });
  assert.deepEqual(s.model, {
    vocab_size: 1024, d_model: 128, n_layer: 4, n_head: 4, seq_len: 128, ffn_hidden: 512,
    tie_embeddings: false, rope_theta: 10000, norm_eps: 1e-5, init_std: 0.02,
  });
  assert.equal(s.train.batch_size, 4);
  assert.equal(s.train.grad_accum, 2);
  assert.equal(s.optim.name, 'adamw');
  assert.deepEqual(s.data.paths, []);
  const d = loadConfig({});
  assert.equal(d.model.d_model, 192, 'no preset and no file: default');
  assert.equal(d.train.batch_size, 8);
  assert.equal(d.train.grad_accum, 4);
  // the types are the narrow ones
  const backend: 'auto' | 'wasm' | 'native' | 'js' = d.train.backend;
  assert.equal(backend, 'auto');
});

test('--set overrides with TOML values, bare words as strings, in order', () => {
  const c = loadConfig({
    preset: 'tiny',
    set: ['model.d_model=128', 'model.tie_embeddings=false', 'optim.name=lion', 'optim.min_lr=0', 'optim.lr=1e-4', 'optim.lr=2e-4',
      'data.paths=stories.txt', 'data.val_paths=["a.txt", "b.txt"]', 'data.tokenizer="gpt2"', 'model.vocab_size=50257',
      'train.backend = js'],
  });
  assert.equal(c.model.d_model, 128);
  assert.equal(c.model.tie_embeddings, false);
  assert.equal(c.optim.name, 'lion');
  assert.equal(c.optim.lr, 2e-4, 'the last --set wins');
  assert.deepEqual(c.data.paths, ['stories.txt'], 'a single path becomes a list');
  assert.deepEqual(c.data.val_paths, ['a.txt', 'b.txt']);
  assert.equal(c.data.tokenizer, 'gpt2');
  assert.equal(c.train.backend, 'js');
  assert.deepEqual(parseSet('a.b=x=y'), { key: 'a.b', value: 'x=y' });
  assert.deepEqual(parseSet('a.b=true'), { key: 'a.b', value: true });
  throwsUser(() => loadConfig({ set: ['train.steps'] }), '--set expects section.key=value', '"train.steps"');
  throwsUser(() => loadConfig({ set: ['steps=5'] }), 'must be section.key', 'did you mean "train.steps"?');
});

test('an unknown key names the key, where it came from and the closest valid key', () => {
  const f = tomlFile('extends = "tiny"\n[train]\nbatchsize = 8\n');
  throwsUser(() => loadConfig({ file: f }), `unknown key "train.batchsize" in ${f}; did you mean "train.batch_size"?`);
  throwsUser(() => loadConfig({ set: ['train.batchsize=3'] }), 'unknown key "train.batchsize" in --set train.batchsize=3; did you mean "train.batch_size"?');
  throwsUser(() => loadConfig({ set: ['model.n_heads=3'] }), 'did you mean "model.n_head"?');
  // a key in the wrong section points to the right one
  throwsUser(() => loadConfig({ set: ['train.lr=0.1'] }), 'unknown key "train.lr"', 'did you mean "optim.lr"?');
  // a misspelt section
  throwsUser(() => loadConfig({ file: tomlFile('extends = "tiny"\n[trian]\nsteps = 3\n') }), 'unknown section [trian]', 'did you mean "train"?');
  throwsUser(() => loadConfig({ set: ['trian.steps=3'] }), 'unknown key "trian.steps"', 'did you mean "train.steps"?');
  // a key outside any section
  throwsUser(() => loadConfig({ file: tomlFile('extends = "tiny"\nsteps = 3\n') }), 'unknown key "steps"', 'did you mean "train.steps"?');
  // nothing close: no wild guess
  const msg = throwsUser(() => loadConfig({ set: ['train.zzzzzzzzzzzzzzzz=1'] }), 'unknown key "train.zzzzzzzzzzzzzzzz"');
  assert.ok(!msg.includes('did you mean'), msg);
});

test('a wrong type or range names the expected type and the value given', () => {
  throwsUser(() => loadConfig({ set: ['train.batch_size="8"'] }), 'train.batch_size must be an integer >= 1, got "8" (string)', 'in --set train.batch_size="8"');
  throwsUser(() => loadConfig({ set: ['train.batch_size=0'] }), 'train.batch_size must be an integer >= 1, got 0 (number)');
  throwsUser(() => loadConfig({ set: ['train.batch_size=2.5'] }), 'must be an integer >= 1, got 2.5 (number)');
  throwsUser(() => loadConfig({ set: ['optim.beta1=1'] }), 'optim.beta1 must be a number in [0, 1), got 1 (number)');
  throwsUser(() => loadConfig({ set: ['optim.lr=0'] }), 'optim.lr must be a number > 0');
  throwsUser(() => loadConfig({ set: ['optim.lr=nan'] }), 'optim.lr must be a number > 0, got NaN (number)');
  throwsUser(() => loadConfig({ set: ['optim.name=adam'] }), 'optim.name must be one of "adamw", "lion", "sfadamw", "muon", got "adam" (string)');
  throwsUser(() => loadConfig({ set: ['model.tie_embeddings=yes'] }), 'model.tie_embeddings must be true or false, got "yes" (string)');
  throwsUser(() => loadConfig({ set: ['model.vocab_size=256'] }), 'model.vocab_size must be an integer from 257 to');
  throwsUser(() => loadConfig({ set: ['data.paths=[1, 2]'] }), 'data.paths must be a string or an array of strings, got [1,2] (array)');
  const f = tomlFile('extends = "default"\n[train]\nseed = -4\n');
  throwsUser(() => loadConfig({ file: f }), `train.seed must be an integer from 0 to 4294967295, got -4 (number) in ${f}`);
  throwsUser(() => loadConfig({ file: tomlFile('extends = "default"\ntrain = 3\n') }), '"train"', 'must be a [train] section');
});

test('a TOML syntax error names the file, line and column', () => {
  const f = tomlFile('extends = "tiny"\n[train]\nsteps = 3\nbatch_size = = 4\n');
  throwsUser(() => loadConfig({ file: f }), new RegExp(`^${f.replace(/[.\\/]/g, '\\$&')}:4:\\d+: TOML syntax error: `));
});

test('a missing file or preset says so', () => {
  const missing = path.join(dir, 'nope.toml');
  throwsUser(() => loadConfig({ file: missing }), `config file not found: ${missing}`);
  throwsUser(() => loadConfig({ file: dir }), 'is a directory');
  throwsUser(() => loadConfig({ preset: 'defualt' }), 'unknown preset "defualt"; did you mean "default"?', 'presets: ');
  throwsUser(() => loadConfig({ file: tomlFile('extends = "tinny"\n') }), 'unknown preset "tinny"; did you mean "tiny"?');
});

test('a config file without extends must be complete; with extends it lists only changes', () => {
  const partial = tomlFile('[model]\nd_model = 64\n');
  throwsUser(() => loadConfig({ file: partial }), 'missing key "model.vocab_size"', partial, 'extends');
  // a complete file written from a loaded config stands alone
  const full = tomlFile(stringifyConfig(loadConfig({ preset: 'phone' })));
  assert.deepEqual(loadConfig({ file: full }), loadConfig({ preset: 'phone' }));
  const ext = tomlFile('extends = "seed-small"\n[optim]\nname = "sfadamw"\nlr = 1e-3\n');
  const c = loadConfig({ file: ext, set: ['train.steps=7'] });
  assert.equal(c.model.d_model, 128);
  assert.equal(c.optim.name, 'sfadamw');
  assert.equal(c.optim.lr, 1e-3);
  assert.equal(c.train.steps, 7);
  // --preset and --config together: the file layers over the preset
  const over = tomlFile('[train]\nsteps = 11\n');
  const d = loadConfig({ preset: 'tiny', file: over });
  assert.equal(d.train.steps, 11);
  assert.equal(d.model.d_model, 64);
  throwsUser(() => loadConfig({ preset: 'tiny', file: ext }), 'extends preset "seed-small" but --preset tiny');
  throwsUser(() => loadConfig({ file: tomlFile('extends = 3\n') }), 'extends in', 'must be a preset name');
});

test('model.mixer: attention (absent) or rwkv; rwkv allows an odd head size (no RoPE); a wrong name or chunk is refused in one line', () => {
  assert.equal(loadConfig({ preset: 'tiny' }).model.mixer, undefined);
  const r = loadConfig({ preset: 'tiny', set: ['model.mixer=rwkv', 'model.d_model=18', 'model.n_head=2', 'model.rwkv_chunk=8'] });
  assert.equal(r.model.mixer, 'rwkv');
  assert.equal(r.model.rwkv_chunk, 8);
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['model.mixer=lstm'] }), 'model.mixer', 'lstm', '--set model.mixer=lstm');
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['model.mixer=rwkv', 'model.rwkv_chunk=0'] }), 'model.rwkv_chunk', '--set model.rwkv_chunk=0');
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['model.d_model=18', 'model.n_head=2'] }), '= 9 must be even');
});

test('cross-field checks: heads divide d_model, even head size, min_lr <= lr, gpt2 vocab', () => {
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['model.n_head=3'] }), 'model.d_model (64) must be divisible by model.n_head (3)', '--set model.n_head=3');
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['model.d_model=18', 'model.n_head=2'] }), 'head size', '= 9 must be even');
  throwsUser(() => loadConfig({ set: ['optim.min_lr=1'] }), 'optim.min_lr (1) must not exceed optim.lr (0.003)', '(in --set optim.min_lr=1)');
  // reported against the assignment that broke it, not the preset that set the other key
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['optim.lr=1e-4'] }), 'must not exceed optim.lr (0.0001); lower optim.min_lr too (in --set optim.lr=1e-4)');
  throwsUser(() => loadConfig({ set: ['data.tokenizer=gpt2'] }), 'needs model.vocab_size >= 50257, got 1024');
});

test('validateConfig checks a saved config; stringifyConfig round-trips', () => {
  const c: RunConfig = loadConfig({ preset: 'default', set: ['data.paths=["x.txt"]', 'optim.name=lion'] });
  const back = validateConfig(parseToml(stringifyConfig(c)), 'runs/x/config.toml');
  assert.deepEqual(back, c);
  throwsUser(() => validateConfig({ ...c, model: { ...c.model, dmodel: 3 } }, 'runs/x/config.toml'), 'unknown key "model.dmodel" in runs/x/config.toml; did you mean "model.d_model"?');
});

test('edit distance and closest match', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('batchsize', 'batch_size'), 1);
  assert.equal(closest('defualt', ['default', 'tiny']), 'default');
  assert.equal(closest('qqqqqqqq', ['default', 'tiny']), null);
});

test('divergence recovery keys: defaults, and values that would misfire are refused', () => {
  const c = loadConfig({ preset: 'tiny' });
  assert.equal(c.train.spike_factor, 3);
  assert.equal(c.train.rollback_lr_factor, 0.5);
  assert.equal(c.train.max_rollbacks, 3);
  assert.equal(loadConfig({ preset: 'tiny', set: ['train.spike_factor=0'] }).train.spike_factor, 0);
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['train.spike_factor=1'] }), 'train.spike_factor must be 0 (off) or a number > 1, got 1 (number) in --set train.spike_factor=1');
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['train.rollback_lr_factor=0'] }), 'train.rollback_lr_factor must be a number in (0, 1]');
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['train.rollback_lr_factor=2'] }), 'train.rollback_lr_factor must be a number in (0, 1]');
  throwsUser(() => loadConfig({ preset: 'tiny', set: ['train.max_rollbacks=-1'] }), 'train.max_rollbacks must be an integer >= 0');
});
