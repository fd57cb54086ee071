import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { stringifyConfig } from './config.js';
import { configName, dataOverrides, loadConfigFrom, resolveRunDir, runConfigFor } from './request.js';

test('config layers: preset or file, then --set, then the data options; names for runs', () => {
  const cfg = loadConfigFrom({ preset: 'tiny', set: ['optim.lr=1e-3'], data: ['a.txt'], val: ['b.txt'] }, ['train.steps=7']);
  assert.equal(cfg.optim.lr, 1e-3);
  assert.deepEqual(cfg.data.paths, [path.resolve('a.txt')]);
  assert.deepEqual(cfg.data.val_paths, [path.resolve('b.txt')]);
  assert.equal(cfg.train.steps, 7);
  assert.deepEqual(dataOverrides({ dataset: 'moby-dick' }), ['data.dataset="moby-dick"', 'data.paths=[]']);
  assert.throws(() => dataOverrides({ dataset: 'moby-dick', data: ['x'] }), UserError);
  assert.equal(configName({ preset: 'tiny' }), 'tiny');
  assert.equal(configName({ config: 'dir/my-run.toml' }), 'my-run');
  assert.equal(configName({}), 'default');
  assert.throws(() => configName({ preset: 'tiny', config: 'x.toml' }), /not both/);
});

test('run folders: --out as given, --resume finds the latest run of the name, else a new timestamped folder', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-request-'));
  try {
    assert.equal(resolveRunDir({ out: 'x/y', resume: true, name: 'tiny', base }), path.resolve('x/y'));
    assert.throws(() => resolveRunDir({ resume: true, name: 'tiny', base }), /no run of "tiny" with a checkpoint/);
    const fresh = resolveRunDir({ resume: false, name: 'tiny', base, now: new Date('2026-12-01T10:00:00Z') });
    assert.ok(fresh.startsWith(path.resolve(base)) && path.basename(fresh).startsWith('tiny-'), fresh);
    // resuming reads the run's saved config (the preset only named the run), overrides on top
    const run = path.join(base, 'run');
    fs.mkdirSync(run);
    const saved = loadConfigFrom({ preset: 'tiny', set: ['model.d_model=128', 'model.ffn_hidden=512'] });
    fs.writeFileSync(path.join(run, 'config.toml'), stringifyConfig(saved));
    const resumed = runConfigFor({ preset: 'tiny', set: ['optim.lr=2e-3'] }, run, true);
    assert.equal(resumed.model.d_model, 128);
    assert.equal(resumed.optim.lr, 2e-3);
    assert.equal(runConfigFor({ preset: 'tiny' }, run, false).model.d_model, 64);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
