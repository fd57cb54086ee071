#!/usr/bin/env node
// docs/web.png: `pocketlm web`'s page in headless Chromium while it trains the tiny preset
// (a few hundred steps, evaluations every 50). Needs a build and the system Chromium.
//   node scripts/web-screenshot.mjs [out.png] [--steps 300]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(pathToFileURL(path.join(root, 'dist', p)).href);
const { findChromium, launchChromium } = await dist('dashboard/browser-testing.js');
const { startWebServer } = await dist('web/server.js');
const out = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : path.join(root, 'docs', 'web.png');
const i = process.argv.indexOf('--steps');
const steps = i >= 0 ? Number(process.argv[i + 1]) : 300;

const [web, chrome] = await Promise.all([startWebServer({ port: 0 }), launchChromium(findChromium())]);
try {
  const ctx = await chrome.browser.newContext({ viewport: { width: 1100, height: 820 } });
  const page = await ctx.newPage();
  await page.goto(`${web.url}?preset=tiny&eval=50&mb=1&autostart=1`);
  await page.waitForFunction((n) => Number(document.body.dataset.step) >= n || !!document.body.dataset.error, steps, { timeout: 600_000, polling: 500 });
  await page.fill('#prompt', 'Once upon a time');
  await page.click('#sample');
  await page.waitForFunction(() => Number(document.body.dataset.sampled ?? 0) >= 1, undefined, { timeout: 30_000 });
  await page.waitForTimeout(500);
  fs.writeFileSync(out, await page.screenshot());
  console.log(`${out}: ${fs.statSync(out).size} bytes`);
} finally {
  await Promise.allSettled([chrome.close(), web.close()]);
}
