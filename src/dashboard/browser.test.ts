/**
 * End to end, in the system's headless Chromium: a tiny training runs in a child process while
 * the dashboard page follows it. New points arrive, the validation curve and a sample appear,
 * the baselines are drawn on both loss charts, and a screenshot is not blank. Needs Debian's
 * `chromium` (.ci/run installs it); CHROMIUM_PATH points elsewhere. POCKETLM_SCREENSHOT=FILE
 * also saves the screenshot there (how docs/dashboard.png is made).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { decodePng, countPixels } from '../plot/png.js';
import { startDashboard } from './server.js';
import { findChromium, launchChromium } from './browser-testing.js';

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('dashboard in Chromium: a live tiny run shows new points, the validation curve, a sample and the baselines', { timeout: 90_000 }, async () => {
  const exe = findChromium();
  assert.ok(exe, 'no system Chromium: install Debian\'s chromium package (.ci/run does) or set CHROMIUM_PATH');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-browser-'));
  const roots = path.join(tmp, 'runs');
  const runDir = path.join(roots, 'live');
  fs.mkdirSync(roots);
  const child = spawn(process.execPath, [
    path.join(packageRoot(), 'bin', 'pocketlm.js'), 'train', '--preset', 'tiny', '--out', runDir,
    '--data', path.join(tinystoriesSampleDir(), 'valid-00.txt'), '--steps', '100000', '--time', '0', '--threads', '1',
    '--set', 'model.vocab_size=512', '--set', 'train.eval_every=30', '--set', 'train.eval_batches=2', '--set', 'train.log_every=2',
    '--set', 'train.sample_tokens=24', '--set', 'train.checkpoint_minutes=0',
  ], { env: { ...process.env, POCKETLM_CACHE: path.join(tmp, 'cache') }, stdio: ['ignore', 'ignore', 'pipe'] });
  let childErr = '';
  child.stderr!.on('data', (d) => { childErr += String(d); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const [dash, chrome] = await Promise.all([startDashboard({ roots: [roots], port: 0 }), launchChromium(exe)]);
  try {
    const logFile = path.join(runDir, 'log.jsonl');
    await waitFor('the first logged step', () => child.exitCode === null ? fs.existsSync(logFile) && fs.statSync(logFile).size > 0 : (() => { throw new Error(`training exited: ${childErr}`); })(), 30_000);
    const ctx = chrome.browser.contexts()[0] ?? (await chrome.browser.newContext());
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${dash.url}#runs=${encodeURIComponent('runs/live')}`);
    const points = () => page.evaluate(() => Number((document.getElementById('chart-loss') as HTMLElement).dataset.points ?? 0));
    await page.waitForFunction(() => Number((document.getElementById('chart-loss') as HTMLElement).dataset.points ?? 0) > 0, undefined, { timeout: 15_000 });
    const first = await points();
    // new points arrive while the page is open (the child keeps appending to log.jsonl)
    await page.waitForFunction((n) => Number((document.getElementById('chart-loss') as HTMLElement).dataset.points ?? 0) > n, first, { timeout: 15_000 });
    // the validation curve, a sample, the baselines on both loss charts
    await page.waitForFunction(() => Number((document.getElementById('chart-bpb') as HTMLElement).dataset.points ?? 0) >= 1, undefined, { timeout: 15_000 });
    await page.waitForSelector('#samples .sample', { timeout: 15_000 });
    const drawn = await page.evaluate(() => ['chart-loss', 'chart-bpb'].map((id) => (document.getElementById(id) as HTMLElement).dataset.baselinesDrawn));
    assert.deepEqual(drawn, ['4', '4'], 'uniform, unigram, bigram and trigram drawn on both charts');
    const sample = await page.textContent('#samples .sample');
    assert.ok(sample && sample.length > 10, `a sample: ${sample}`);
    assert.match((await page.textContent('#run-stats')) ?? '', /^training · step \d+/);
    assert.match((await page.textContent('#runs li')) ?? '', /runs\/live/);
    assert.match((await page.textContent('#system')) ?? '', /memory: .* free of/);
    assert.deepEqual(errors, [], 'no script errors on the page');
    const png = await page.screenshot({ fullPage: false });
    if (process.env.POCKETLM_SCREENSHOT) fs.writeFileSync(process.env.POCKETLM_SCREENSHOT, png);
    const img = decodePng(png);
    assert.deepEqual([img.width, img.height], [1280, 900]);
    // Below the dark header bar the page is mostly background even when full (about 94% here,
    // 90% on another machine's fonts), so "not blank" counts what is drawn there: charts, text
    // and samples cover some 6% of it; an empty body would be under 0.5% (borders only).
    const header = 41;
    const body = { rgba: img.rgba.subarray(header * img.width * 4) };
    const bodyPixels = img.width * (img.height - header);
    const drawnPixels = bodyPixels - countPixels(body, [255, 255, 255], 2) - countPixels(body, [0xfa, 0xfa, 0xfa], 2);
    assert.ok(drawnPixels > 0.02 * bodyPixels, `the screenshot is not blank (${drawnPixels} of ${bodyPixels} pixels below the header drawn)`);
    assert.ok(countPixels(img, [0x1f, 0x77, 0xb4], 30) > 300, 'the run\'s curves (#1f77b4) are on screen');
  } finally {
    // each step whatever the others do: a server or browser left open would keep the test process alive
    child.kill('SIGTERM');
    await exited;
    await Promise.allSettled([chrome.close(), dash.close()]);
    fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
});
