/**
 * End to end, in the system's headless Chromium (Debian's `chromium`; CHROMIUM_PATH points
 * elsewhere): `pocketlm web`'s page trains the tiny preset in Web Workers over one shared
 * WebAssembly.Memory; the validation loss falls below the unigram baseline, a sample appears,
 * a reload resumes from IndexedDB where the run was saved, the weights download as safetensors
 * and GGUF files that parse, and without the isolation headers the page falls back to one
 * thread and says so (trained on a text file picked in the page). POCKETLM_SCREENSHOT=FILE saves a screenshot taken while training (how
 * docs/web.png is made).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { findChromium, launchChromium } from '../dashboard/browser-testing.js';
import { decodeSafetensors } from '../export/safetensors.js';
import { ggufString, readGguf } from '../export/gguf.js';
import { tinystoriesSampleDir } from '../util/paths.js';
import { startWebServer } from './server.js';

const data = (page: Page) => page.evaluate(() => ({ ...document.body.dataset }));
const num = (v: string | undefined) => Number(v ?? NaN);

test('web page in Chromium: trains tiny on 2 threads below the unigram baseline, samples, resumes after a reload, downloads the weights', { timeout: 120_000 }, async () => {
  const exe = findChromium();
  assert.ok(exe, 'no system Chromium: install Debian\'s chromium package (.ci/run does) or set CHROMIUM_PATH');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-web-'));
  const [web, chrome] = await Promise.all([startWebServer({ port: 0 }), launchChromium(exe)]);
  try {
    const ctx = await chrome.browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // 0.3 MB of the sample: the tokenizer trains in a second or two; eval every 25 steps
    await page.goto(`${web.url}?preset=tiny&steps=100000&eval=25&mb=0.3&threads=2&autostart=1`);
    await page.waitForFunction(() => document.body.dataset.running === 'true' || !!document.body.dataset.error, undefined, { timeout: 30_000 });
    let d = await data(page);
    assert.equal(d.error, undefined, d.error);
    assert.equal(d.isolated, 'true', 'the page is cross-origin isolated');
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.equal(d.kernels, 'wasm');
    assert.match(d.build ?? '', /^(relaxed|simd)$/);
    assert.equal(d.threads, '2', 'two threads: the page\'s training worker and one pool worker');
    assert.ok(page.workers().some((w) => w.url().endsWith('/pool-worker.js')), `a pool worker runs (workers: ${page.workers().map((w) => w.url()).join(', ')})`);
    assert.match((await page.textContent('#isolation')) ?? '', /2 threads over one SharedArrayBuffer/);

    // the validation loss (measured every 25 steps) goes below the unigram baseline
    await page.waitForFunction(() => Number(document.body.dataset.valLoss) < Number(document.body.dataset.unigram) || !!document.body.dataset.error, undefined, { timeout: 45_000 });
    d = await data(page);
    assert.equal(d.error, undefined, d.error);
    assert.ok(num(d.valLoss) < num(d.unigram), `val loss ${d.valLoss} < unigram ${d.unigram}`);
    await page.waitForSelector('#samples .sample', { timeout: 10_000 });
    const sample = (await page.textContent('#samples .sample')) ?? '';
    assert.ok(sample.replace(/^step \d+/, '').trim().length > 10, `a sample: ${sample}`);
    assert.equal(await page.evaluate(() => (document.getElementById('chart-loss') as HTMLElement).dataset.baselinesDrawn), '4', 'the four baselines drawn');
    assert.ok(num(await page.evaluate(() => (document.getElementById('stats') as HTMLElement).dataset.tokensPerSecond)) > 0);
    if (process.env.POCKETLM_SCREENSHOT) fs.writeFileSync(process.env.POCKETLM_SCREENSHOT, await page.screenshot());

    // a sample on demand from a prompt
    await page.fill('#prompt', 'Once upon a time');
    await page.click('#sample');
    await page.waitForFunction(() => Number(document.body.dataset.sampled ?? 0) >= 1, undefined, { timeout: 10_000 });
    assert.match((await page.textContent('#sampled')) ?? '', /^Once upon a time./s);

    // reload: the run continues from the step it was last saved at, with its curve and samples
    await page.waitForFunction(() => Number(document.body.dataset.savedStep) >= 25, undefined, { timeout: 10_000 });
    const saved = num((await data(page)).savedStep);
    assert.ok(saved >= 25, `saved at an evaluation (step ${saved})`);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.running === 'true' || !!document.body.dataset.error, undefined, { timeout: 30_000 });
    d = await data(page);
    assert.equal(d.error, undefined, d.error);
    const resumed = num(d.resumedFrom);
    assert.ok(resumed >= saved, `resumed from step ${resumed} (saved at ${saved} before the reload)`);
    await page.waitForFunction((s) => Number(document.body.dataset.step) > s, resumed, { timeout: 15_000 });
    assert.ok(num(await page.evaluate(() => (document.getElementById('chart-loss') as HTMLElement).dataset.points)) > resumed, 'the curve before the reload is back');
    await page.waitForSelector('#samples .sample', { timeout: 5_000 });

    // pause, then download both files and parse them
    await page.click('#stop');
    await page.waitForFunction(() => document.body.dataset.running === 'false', undefined, { timeout: 15_000 });
    const step = num((await data(page)).step);
    for (const [button, ext] of [['#dl-safetensors', 'safetensors'], ['#dl-gguf', 'gguf']] as const) {
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), page.click(button)]);
      assert.equal(download.suggestedFilename(), `pocketlm-tiny-step${step}.${ext}`);
      const file = path.join(tmp, download.suggestedFilename());
      await download.saveAs(file);
      if (ext === 'safetensors') {
        const st = decodeSafetensors(new Uint8Array(fs.readFileSync(file)), file);
        const emb = st.tensors.get('model.embed_tokens.weight');
        assert.ok(emb, `tensors: ${[...st.tensors.keys()].join(', ')}`);
        assert.deepEqual(emb.shape, [1024, 64]);
        assert.ok(Array.from(emb.data as Float32Array).every(Number.isFinite));
        assert.equal(st.tensors.size, 2 + 2 * 9, 'embeddings, final norm, 9 tensors per layer (tied: no lm_head)');
      } else {
        const g = readGguf(file);
        assert.equal(ggufString(g, 'general.architecture'), 'llama');
        assert.equal(g.tensors.length, 2 + 2 * 9);
      }
    }
    assert.deepEqual(errors, [], 'no script errors on the page');
  } finally {
    await Promise.allSettled([chrome.close(), web.close()]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('web page without the isolation headers: one thread, the plain JavaScript kernels, and it says so; trains on a text file the user picks', { timeout: 60_000 }, async () => {
  const exe = findChromium();
  assert.ok(exe, 'no system Chromium');
  const [web, chrome] = await Promise.all([startWebServer({ port: 0, isolate: false }), launchChromium(exe)]);
  try {
    const ctx = await chrome.browser.newContext();
    const page = await ctx.newPage();
    // the plain kernels take seconds per step of tiny: one step shows it trains
    await page.goto(`${web.url}?preset=tiny&steps=100&eval=100&mb=0.1`);
    await page.waitForFunction(() => /no saved run/.test(document.getElementById('status')!.textContent ?? ''), undefined, { timeout: 15_000 });
    await page.setInputFiles('#file', path.join(tinystoriesSampleDir(), 'valid-00.txt'));
    await page.waitForFunction(() => /valid-00\.txt/.test(document.getElementById('status')!.textContent ?? ''), undefined, { timeout: 10_000 });
    await page.selectOption('#source', 'file');
    await page.click('#start');
    await page.waitForFunction(() => Number(document.body.dataset.step) >= 1 || !!document.body.dataset.error, undefined, { timeout: 45_000 });
    const d = await data(page);
    assert.equal(d.error, undefined, d.error);
    assert.equal(d.isolated, 'false');
    assert.equal(d.threads, '1');
    assert.equal(d.kernels, 'js');
    assert.match((await page.textContent('#isolation')) ?? '', /not cross-origin isolated.*ONE thread/);
    assert.match((await page.textContent('#status')) ?? '', /train tokens of valid-00\.txt/);
  } finally {
    await Promise.allSettled([chrome.close(), web.close()]);
  }
});
