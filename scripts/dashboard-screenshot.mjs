#!/usr/bin/env node
// Makes docs/dashboard.png: trains a small `tiny` run on the shared TinyStories sample (about a
// minute), opens the dashboard on it in the system's headless Chromium and takes a screenshot.
// Usage (after npm run build): node scripts/dashboard-screenshot.mjs [OUT.png]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { startDashboard } = await import(path.join(root, 'dist/dashboard/server.js'));
const { findChromium, launchChromium } = await import(path.join(root, 'dist/dashboard/browser-testing.js'));
const { tinystoriesSampleDir } = await import(path.join(root, 'dist/util/paths.js'));

const out = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'dashboard.png'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-shot-'));
const runs = path.join(tmp, 'runs');
const run = spawnSync(process.execPath, [
  path.join(root, 'bin/pocketlm.js'), 'train', '--preset', 'tiny', '--out', path.join(runs, 'tiny-demo'),
  '--data', path.join(tinystoriesSampleDir(), 'train-00.txt'), '--val', path.join(tinystoriesSampleDir(), 'valid-00.txt'),
  '--steps', '600', '--time', '0', '--set', 'train.eval_every=50', '--set', 'train.log_every=2', '--set', 'train.sample_tokens=40',
], { env: { ...process.env, POCKETLM_CACHE: path.join(tmp, 'cache') }, stdio: ['ignore', 'ignore', 'inherit'] });
if (run.status !== 0) throw new Error(`training failed (${run.status})`);

const exe = findChromium();
if (!exe) throw new Error('no system Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
const dash = await startDashboard({ roots: [runs], port: 0 });
const chrome = await launchChromium(exe);
try {
  const ctx = chrome.browser.contexts()[0] ?? (await chrome.browser.newContext());
  const page = await ctx.newPage();
  await page.setViewportSize({ width: 1200, height: 820 });
  await page.goto(`${dash.url}#runs=${encodeURIComponent('runs/tiny-demo')}`);
  await page.waitForSelector('#samples .sample', { timeout: 20_000 });
  await page.waitForTimeout(1500); // the listing and the machine readings
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, await page.screenshot());
  console.log(`wrote ${out} (${(fs.statSync(out).size / 1024).toFixed(0)} KB)`);
} finally {
  await Promise.allSettled([chrome.close(), dash.close()]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
