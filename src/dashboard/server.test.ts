/**
 * The dashboard server without a browser: names resolved only through the listing (traversal
 * attempts are 404s and read nothing), read-only methods, the loopback Host check, the warning
 * when listening beyond loopback, and the event streams following files written by "another
 * process" (here: appends from the test), including a log replaced on resume.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startDashboard, isLoopback, type Dashboard } from './server.js';
import { listRuns } from './listing.js';
import { JsonlTail } from './tail.js';
import { writeFileAtomicSync } from '../util/atomic.js';

let tmp = '';
let roots = '';
let d: Dashboard;

const rec = (step: number, extra: Record<string, number> = {}) =>
  JSON.stringify({ step, loss: 5 - step / 100, lr: 1e-3, grad_norm: 1, tokens: step * 64, tokens_per_second: 1000, elapsed: step / 10, ...extra }) + '\n';

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-dash-'));
  roots = path.join(tmp, 'runs');
  fs.mkdirSync(path.join(roots, 'alpha'), { recursive: true });
  fs.writeFileSync(path.join(roots, 'alpha', 'log.jsonl'), rec(1) + rec(2));
  fs.mkdirSync(path.join(roots, 'study1'));
  fs.writeFileSync(path.join(roots, 'study1', 'journal.jsonl'), '');
  fs.mkdirSync(path.join(roots, 'not-a-run'));
  // a secret beside the roots that no URL may reach
  fs.writeFileSync(path.join(tmp, 'secret.txt'), 'TOP SECRET');
  fs.mkdirSync(path.join(tmp, 'outside'));
  fs.writeFileSync(path.join(tmp, 'outside', 'log.jsonl'), rec(1).replace('"loss":4.99', '"loss":4.99,"secret":"TOP SECRET"'));
  d = await startDashboard({ roots: [roots], port: 0, pollMs: 50 });
});

after(async () => {
  await d.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function request(pathname: string, opts: { method?: string; host?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: d.port, path: pathname, method: opts.method ?? 'GET', headers: opts.host ? { host: opts.host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Reads server-sent events until `done` says enough (or the timeout). */
function readEvents(pathname: string, done: (evs: Array<{ event: string; data: unknown }>) => boolean, onOpen?: () => void, timeoutMs = 5000): Promise<Array<{ event: string; data: unknown }>> {
  return new Promise((resolve, reject) => {
    const evs: Array<{ event: string; data: unknown }> = [];
    const req = http.get({ host: '127.0.0.1', port: d.port, path: pathname }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      let buf = '';
      onOpen?.();
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data !== undefined) evs.push({ event: ev, data: JSON.parse(data) });
        }
        if (done(evs)) { clearTimeout(timer); req.destroy(); resolve(evs); }
      });
    });
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`timeout; got ${JSON.stringify(evs)}`)); }, timeoutMs);
    req.on('error', (e) => { if (!req.destroyed) reject(e); });
  });
}

test('the listing holds the run and the study under the root, nothing else', async () => {
  const r = await request('/api/list');
  assert.equal(r.status, 200);
  const items = (JSON.parse(r.body) as { items: Array<{ id: string; kind: string }> }).items;
  assert.deepEqual(items.map((x) => [x.id, x.kind]).sort(), [['runs/alpha', 'run'], ['runs/study1', 'study']]);
  assert.deepEqual(listRuns([path.join(tmp, 'absent')]), []);
});

test('names outside the listing are 404s: ../, encoded, absolute and double-encoded paths read nothing', async () => {
  const attempts = [
    '../secret.txt', '..%2Fsecret.txt', 'runs/../../secret.txt', 'runs%2F..%2F..%2Foutside', '%2e%2e/outside', '%252e%252e%252foutside',
    encodeURIComponent(path.join(tmp, 'outside')), 'runs/alpha/../../outside', 'runs/alpha%00', 'runs', 'outside', 'runs/not-a-run', 'runs/study1',
  ];
  for (const a of attempts) {
    const r = await request(`/api/run/stream?id=${a}`);
    assert.equal(r.status, 404, `${a}: ${r.status}`);
    assert.ok(!r.body.includes('TOP SECRET'), a);
    const p = await request(`/api/plot.svg?run=${a}`);
    assert.equal(p.status, 404, `plot ${a}`);
  }
  for (const raw of ['/../secret.txt', '/assets/../../secret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/assets/..%2f..%2f..%2fpackage.json', '//etc/passwd']) {
    const r = await request(raw);
    assert.equal(r.status, 404, raw);
    assert.ok(!r.body.includes('TOP SECRET') && !r.body.includes('"name": "pocketlm"'), raw);
  }
  // the listed run is served
  const ok = await request('/api/plot.svg?run=runs%2Falpha&metric=loss');
  assert.equal(ok.status, 200);
  assert.match(ok.body, /<svg /);
});

test('read-only: every method but GET and HEAD is refused; the page and uPlot are served from the package', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const r = await request('/api/list', { method });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.allow, 'GET, HEAD');
  }
  const page = await request('/');
  assert.equal(page.status, 200);
  assert.match(page.body, /<script src="\/assets\/uPlot\.iife\.min\.js">/);
  assert.doesNotMatch(page.body, /https?:\/\//, 'no external URL in the page');
  const uplot = await request('/assets/uPlot.iife.min.js');
  assert.equal(uplot.status, 200);
  assert.ok(uplot.body.length > 20_000 && uplot.body.includes('uPlot'));
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
});

test('on loopback, a request naming another host (DNS rebinding) is refused', async () => {
  assert.equal((await request('/api/list', { host: 'evil.example:80' })).status, 403);
  assert.equal((await request('/api/list', { host: `localhost:${d.port}` })).status, 200);
  assert.equal((await request('/api/list', { host: `[::1]:${d.port}` })).status, 200);
  assert.ok(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('localhost'));
  assert.ok(!isLoopback('0.0.0.0') && !isLoopback('192.168.1.2') && !isLoopback('127.0.0.1.evil.com'));
});

test('listening beyond loopback gives a warning; loopback does not', async () => {
  assert.equal(d.warning, null);
  const wide = await startDashboard({ roots: [roots], host: '0.0.0.0', port: 0 });
  try {
    assert.match(wide.warning ?? '', /^warning: the dashboard listens on 0\.0\.0\.0.*anyone who can reach port \d+ can read your runs/);
  } finally {
    await wide.close();
  }
});

test('a run stream sends the log so far, then appended steps, samples and baselines; a replaced log resets it', async () => {
  const dir = path.join(roots, 'alpha');
  const evs = await readEvents('/api/run/stream?id=runs%2Falpha', (evs) => evs.filter((e) => e.event === 'reset').length >= 1 && evs.some((e) => e.event === 'log' && (e.data as Array<{ step: number }>)[0]!.step === 1 && evs.indexOf(e) > evs.findIndex((x) => x.event === 'reset')), () => {
    setTimeout(() => {
      // a writer mid-line: held back until its newline arrives
      fs.appendFileSync(path.join(dir, 'log.jsonl'), rec(3, { val_loss: 4.5, val_bpb: 2.1 }).slice(0, 20));
    }, 120);
    setTimeout(() => {
      fs.appendFileSync(path.join(dir, 'log.jsonl'), rec(3, { val_loss: 4.5, val_bpb: 2.1 }).slice(20));
      fs.appendFileSync(path.join(dir, 'samples.jsonl'), JSON.stringify({ step: 3, elapsed: 0.3, samples: ['Once upon a time'] }) + '\n');
      fs.writeFileSync(path.join(dir, 'baselines.json'), JSON.stringify({ uniform: { nats: 6, bpb: 3 }, unigram: { nats: 5, bpb: 2.5 }, bigram: { nats: 4, bpb: 2 }, trigram: { nats: 3, bpb: 1.5 } }));
    }, 300);
    // a resume rewrites the log atomically (a new file): the stream starts it over
    setTimeout(() => writeFileAtomicSync(path.join(dir, 'log.jsonl'), rec(1)), 700);
  });
  const logs = evs.filter((e) => e.event === 'log').map((e) => (e.data as Array<{ step: number }>).map((r) => r.step));
  assert.deepEqual(logs, [[1, 2], [3], [1]], 'the first batch, the completed line once, then the rewritten log');
  assert.ok(evs.some((e) => e.event === 'samples' && JSON.stringify(e.data).includes('Once upon a time')));
  const b = evs.filter((e) => e.event === 'baselines');
  assert.equal(b[0]!.data, null, 'no baselines at first');
  assert.equal((b[1]!.data as { trigram: { bpb: number } }).trigram.bpb, 1.5);
  assert.deepEqual(evs.find((e) => e.event === 'status')!.data, { running: false });
});

test('JsonlTail: a shortened file is read again from the start; a multi-byte character split across polls survives', () => {
  const f = path.join(tmp, 'tail.jsonl');
  const t = new JsonlTail(f);
  assert.deepEqual(t.poll(), { reset: false, lines: [] });
  const line = Buffer.from('{"s":"é✓"}\n', 'utf8');
  fs.writeFileSync(f, line.subarray(0, 8)); // cuts the ✓ in the middle
  assert.deepEqual(t.poll(), { reset: false, lines: [] });
  fs.appendFileSync(f, line.subarray(8));
  assert.deepEqual(t.poll(), { reset: false, lines: ['{"s":"é✓"}'] });
  fs.truncateSync(f, 0);
  fs.appendFileSync(f, '{"a":1}\n');
  const r = t.poll();
  assert.equal(r.reset, true);
  assert.deepEqual(r.lines, ['{"a":1}']);
  fs.rmSync(f);
  assert.deepEqual(t.poll(), { reset: true, lines: [] }, 'a removed file: the reader drops what it had');
});

test('a study stream sends the summary of the journal and again when it grows; its progress chart is the report\'s', async () => {
  const { sampleStudy } = await import('../research/testing.js');
  const events = sampleStudy().events;
  const file = path.join(roots, 'study1', 'journal.jsonl');
  fs.writeFileSync(file, events.slice(0, 4).map((e) => JSON.stringify(e) + '\n').join(''));
  const evs = await readEvents('/api/study/stream?id=runs%2Fstudy1', (evs) => evs.filter((e) => e.event === 'summary').length >= 2, () => {
    setTimeout(() => fs.appendFileSync(file, events.slice(4).map((e) => JSON.stringify(e) + '\n').join('')), 150);
  });
  const sums = evs.filter((e) => e.event === 'summary').map((e) => (e.data as { summary: { rows: unknown[] } }).summary.rows.length);
  const { summarize } = await import('../research/summary.js');
  assert.equal(sums[1], summarize(events).rows.length);
  assert.ok(sums[0]! < sums[1]!);
  const svg = await request('/api/study/progress.svg?id=runs%2Fstudy1');
  assert.equal(svg.status, 200);
  assert.match(svg.body, /class="best-line"/);
});
