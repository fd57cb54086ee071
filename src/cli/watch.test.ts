// The watching commands through the built CLI: train --dashboard and the chart under the report,
// dashboard's bind warning, status, plot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { pngInfo } from '../plot/png.js';

const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
let tmp = '';
let env: NodeJS.ProcessEnv = {};

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-watch-'));
  env = { ...process.env, POCKETLM_CACHE: path.join(tmp, 'cache') };
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TINY = [
  '--preset', 'tiny', '--data', path.join(tinystoriesSampleDir(), 'valid-00.txt'), '--steps', '60', '--time', '0', '--threads', '1',
  '--set', 'model.vocab_size=512', '--set', 'model.d_model=32', '--set', 'model.n_layer=1', '--set', 'train.eval_every=20',
  '--set', 'train.eval_batches=2', '--set', 'train.sample_tokens=8', '--set', 'train.batch_size=4',
];

test('train --dashboard serves the run while it trains, stops with it, and the report ends with the validation chart', async () => {
  const runDir = path.join(tmp, 'runs', 'watched');
  const child = spawn(process.execPath, [BIN, 'train', ...TINY, '--out', runDir, '--dashboard', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let listed: unknown = null;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    const first = !/dashboard: /.test(out);
    out += d;
    const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)#runs=(\S+)/.exec(out);
    if (m && first) {
      // the server answers while the run prepares and trains
      fetch(`${m[1]}api/list`).then((r) => r.json()).then((j) => { listed = j; }, () => { listed = 'failed'; });
    }
  });
  let err = '';
  child.stderr.on('data', (d) => { err += String(d); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, err);
  assert.match(out, /dashboard: http:\/\/127\.0\.0\.1:\d+\/#runs=runs%2Fwatched \(stops when the run ends/);
  assert.ok(listed && typeof listed === 'object' && Array.isArray((listed as { roots: unknown }).roots), `the dashboard answered: ${JSON.stringify(listed)}`);
  const lines = out.split('\n');
  const at = lines.indexOf('validation bits per byte by step:');
  assert.ok(at > 0, out);
  assert.ok(lines.slice(0, at).some((l) => l.includes('this model, last (step 60)')), 'the chart comes under the report');
  assert.match(lines[at + 1]!, /^\s*\d\.\d{3} ┼/, 'the top row starts with the highest value');
  assert.match(lines.slice(at).join('\n'), /step 20\s+step 60/);
  // the server stopped with the run: the process exited on its own (code 0 above)

  // plot: the same run as a PNG of the requested size, and an SVG
  const png = path.join(tmp, 'curve.png');
  const p = spawnSync(process.execPath, [BIN, 'plot', runDir, '--metric', 'loss', '--x', 'tokens', '--out', png, '--width', '640', '--height', '360'], { env, encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  assert.deepEqual([pngInfo(fs.readFileSync(png)).width, pngInfo(fs.readFileSync(png)).height], [640, 360]);
  const bad = spawnSync(process.execPath, [BIN, 'plot', path.join(tmp, 'cache'), '--out', path.join(tmp, 'x.svg')], { env, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^pocketlm: .* is not a run folder/);
});

test('dashboard --host 0.0.0.0 prints a warning line; status reports the machine', async () => {
  const child = spawn(process.execPath, [BIN, 'dashboard', '--host', '0.0.0.0', '--port', '0', '--runs', tmp], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += String(d); });
  child.stderr.on('data', (d) => { err += String(d); });
  const end = Date.now() + 15_000;
  while (!/dashboard: http/.test(out) && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.match(out, /^dashboard: http:\/\/127\.0\.0\.1:\d+\/ \(Ctrl-C to stop\)/);
  assert.match(err, /^warning: the dashboard listens on 0\.0\.0\.0/);
  assert.equal(err.trim().split('\n').length, 1);

  const s = spawnSync(process.execPath, [BIN, 'status', '--runs', tmp], { env, encoding: 'utf8' });
  assert.equal(s.status, 0, s.stderr);
  for (const k of ['memory:', 'cpu:', 'temperature:', 'battery:', 'disk:']) assert.match(s.stdout, new RegExp(`^${k} `, 'm'));
  assert.match(s.stdout, /nothing in progress in /);
});
