import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startWebServer } from './server.js';

/** A raw GET (fetch would normalize `..` away before sending). */
function get(url: string, pathname: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: pathname, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('web server: the page with the isolation headers, the sample, and nothing outside its table', async () => {
  const w = await startWebServer({ port: 0 });
  try {
    assert.match(w.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(w.warning, null);
    const page = await get(w.url, '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<script type="module" src="main.js">/);
    assert.equal(page.headers['cross-origin-opener-policy'], 'same-origin');
    assert.equal(page.headers['cross-origin-embedder-policy'], 'require-corp');
    for (const f of ['/main.js', '/train-worker.js', '/pool-worker.js', '/presets.json', '/uPlot.iife.min.js', '/charts.js']) {
      const r = await get(w.url, f);
      assert.equal(r.status, 200, f);
      assert.equal(r.headers['cross-origin-resource-policy'], 'same-origin', f);
    }
    const presets = JSON.parse((await get(w.url, '/presets.json')).body) as Record<string, { model: { d_model: number } }>;
    assert.equal(presets.tiny?.model.d_model, 64);
    const val = await get(w.url, '/sample/val.txt');
    assert.equal(val.status, 200);
    assert.match(val.body, /<\|endoftext\|>/);
    for (const p of ['/../package.json', '/%2e%2e/package.json', '/..%2fpackage.json', '//etc/passwd', '/dist/web/index.html', '/sample/../package.json']) {
      assert.equal((await get(w.url, p)).status, 404, p);
    }
    assert.equal((await get(w.url, '/', { Host: 'evil.example:80' })).status, 403, 'another Host is refused on loopback');
    assert.equal((await get(w.url, '/', {}, 'POST')).status, 405);
  } finally {
    await w.close();
  }
  const open = await startWebServer({ port: 0, isolate: false });
  try {
    const r = await get(open.url, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['cross-origin-embedder-policy'], undefined);
  } finally {
    await open.close();
  }
});
