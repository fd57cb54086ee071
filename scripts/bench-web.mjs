#!/usr/bin/env node
// Training speed in headless Chromium (`pocketlm web`'s page) against Node's wasm backend, same
// machine, same presets, same thread count, alternating browser and Node runs so a busy machine
// slows both alike. Each figure is the median tokens/s of the steps after the first 10 (each
// side times the training step alone: forward, backward, clip, update). Needs a build and the
// system Chromium (CHROMIUM_PATH overrides).
//
//   node scripts/bench-web.mjs [--presets tiny,seed-small] [--rounds 3] [--threads 2] [--steps 120]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(pathToFileURL(path.join(root, 'dist', p)).href);
const { findChromium, launchChromium } = await dist('dashboard/browser-testing.js');
const { startWebServer } = await dist('web/server.js');
const { tinystoriesSampleDir } = await dist('util/paths.js');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const presets = arg('--presets', 'tiny,seed-small').split(',');
const rounds = Number(arg('--rounds', '3'));
const threads = Number(arg('--threads', '2'));
const steps = Number(arg('--steps', '120'));
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-bench-web-'));
const text = path.join(tinystoriesSampleDir(), 'train-00.txt');
const [web, chrome] = await Promise.all([startWebServer({ port: 0 }), launchChromium(findChromium())]);

async function browserRun(preset) {
  const ctx = await chrome.browser.newContext();
  try {
    const page = await ctx.newPage();
    await page.goto(`${web.url}?preset=${preset}&steps=${steps}&eval=100000&mb=1&threads=${threads}&autostart=1`);
    await page.waitForFunction((n) => Number(document.body.dataset.step) >= n || !!document.body.dataset.error, steps, { timeout: 600_000, polling: 500 });
    await page.waitForTimeout(300); // one more render of the stats
    const err = await page.evaluate(() => document.body.dataset.error);
    if (err) throw new Error(err);
    const d = await page.evaluate(() => ({ threads: document.body.dataset.threads, kernels: document.body.dataset.kernels, build: document.body.dataset.build, tps: Number(document.getElementById('stats').dataset.tokensPerSecondMedian) }));
    if (d.kernels !== 'wasm' || Number(d.threads) !== threads) throw new Error(`browser ran ${d.kernels} on ${d.threads} threads`);
    return d;
  } finally {
    await ctx.close();
  }
}

function nodeRun(preset, i) {
  const out = path.join(tmp, `${preset}-${i}`);
  const r = spawnSync(process.execPath, [
    path.join(root, 'bin', 'pocketlm.js'), 'train', '--preset', preset, '--out', out, '--data', text, '--steps', String(steps), '--time', '0',
    '--backend', 'wasm', '--threads', String(threads), '--set', 'train.log_every=1', '--set', 'train.eval_every=0', '--set', 'train.sample_tokens=0',
    '--set', 'train.checkpoint_minutes=0',
  ], { env: { ...process.env, POCKETLM_CACHE: path.join(tmp, 'cache') }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pocketlm train failed: ${r.stderr}`);
  const recs = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => typeof x.step === 'number' && x.step > 10);
  return median(recs.map((x) => x.tokens_per_second));
}

try {
  console.log(`${os.cpus().length} cores (${os.cpus()[0]?.model}), ${threads} threads, ${steps} steps per run; load before: ${load()}`);
  for (const preset of presets) {
    const b = [], n = [];
    for (let i = 0; i < rounds; i++) {
      const d = await browserRun(preset);
      b.push(d.tps);
      n.push(nodeRun(preset, i));
      console.log(`  ${preset} round ${i + 1}: browser (${d.build} build) ${Math.round(b[i])} tok/s, node ${Math.round(n[i])} tok/s (load ${load()})`);
    }
    const mb = median(b), mn = median(n);
    console.log(`${preset}: headless Chromium ${Math.round(mb)} tok/s, Node wasm ${Math.round(mn)} tok/s (median of ${rounds}); browser/node = ${(mb / mn).toFixed(2)}`);
  }
  console.log(`load after: ${load()}`);
} finally {
  await Promise.allSettled([chrome.close(), web.close()]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
