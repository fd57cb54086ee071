/**
 * The dashboard's web server (node:http, no framework): the page and its assets (uPlot served
 * from the installed package: no network, no CDN), the listing of runs and studies, the machine's
 * readings, and server-sent event streams that tail a run's log.jsonl and samples.jsonl or a
 * study's journal.jsonl, polling every 500 ms, so the page follows runs trained by other
 * processes and shows finished ones the same way.
 *
 * Read-only: GET and HEAD only; no endpoint writes anything. A run or study is named in a URL by
 * its listing id and resolved only through a fresh listing (listing.ts): a name that is not
 * listed (../, an encoded path, an absolute path) is a 404 and no path is built from it. It
 * listens on 127.0.0.1 unless told otherwise; then `warning` says who can read the runs. While
 * it listens on a loopback address it also refuses requests whose Host header names another
 * host (a web page that rebinds its domain to 127.0.0.1 cannot read the runs).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isLoopback, listenOn } from '../util/local-server.js';
import { readSystemStatus } from '../util/device.js';
import { runPaths } from '../train/run.js';
import { lockHolder } from '../train/lock.js';
import { journalPath } from '../research/journal.js';
import { summarize } from '../research/summary.js';
import { progressSvg } from '../research/progress-svg.js';
import type { JournalEvent } from '../research/types.js';
import { readRunBaselines, readRunData } from '../plot/run-data.js';
import { lineChartSvg } from '../plot/line-chart.js';
import { METRICS, X_AXES, runChart, type Metric, type XAxis } from '../plot/run-chart.js';
import { listRuns, type Listed } from './listing.js';
import { JsonlTail } from './tail.js';

export interface DashboardOptions {
  /** Folders holding run and study folders (or run/study folders themselves). */
  roots: string[];
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Milliseconds between polls of the files a stream follows. */
  pollMs?: number;
}

export interface Dashboard {
  url: string;
  host: string;
  port: number;
  /** Set when the server listens on a non-loopback address: one line to print. */
  warning: string | null;
  close(): Promise<void>;
}

// which hosts are this machine: shared with `pocketlm web`
export { isLoopback } from '../util/local-server.js';

/** The page's static files: a fixed table, so no request path ever reaches the file system. */
function assetTable(): Map<string, { file: string; type: string }> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/dashboard/server.js -> <package>/src/dashboard/assets (the page is plain JS, shipped as is)
  const assets = path.resolve(here, '..', '..', 'src', 'dashboard', 'assets');
  const require = createRequire(import.meta.url);
  const uplotDir = path.join(path.dirname(require.resolve('uplot/package.json')), 'dist');
  return new Map([
    ['/', { file: path.join(assets, 'index.html'), type: 'text/html; charset=utf-8' }],
    ['/assets/app.js', { file: path.join(assets, 'app.js'), type: 'text/javascript; charset=utf-8' }],
    ['/assets/charts.js', { file: path.join(assets, 'charts.js'), type: 'text/javascript; charset=utf-8' }],
    ['/assets/app.css', { file: path.join(assets, 'app.css'), type: 'text/css; charset=utf-8' }],
    ['/assets/uPlot.iife.min.js', { file: path.join(uplotDir, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' }],
    ['/assets/uPlot.min.css', { file: path.join(uplotDir, 'uPlot.min.css'), type: 'text/css; charset=utf-8' }],
  ]);
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // everything from this server; no inline script (sample texts are shown as text, never as HTML)
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
};

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer, head = false): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...SECURITY_HEADERS });
  res.end(head ? undefined : body);
}

const sendJson = (res: http.ServerResponse, status: number, v: unknown, head = false) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(v), head);

/** The listed item named `id` of the wanted kind, or null. */
function lookup(roots: string[], id: string | null, kind: Listed['kind']): Listed | null {
  if (id === null) return null;
  return listRuns(roots).find((x) => x.id === id && x.kind === kind) ?? null;
}

/** Server-sent events: one `event:`/`data:` block per message. */
function sse(res: http.ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function parseLines(lines: string[]): unknown[] {
  const out: unknown[] = [];
  for (const l of lines) {
    try {
      out.push(JSON.parse(l));
    } catch {
      // a corrupt line: the trainer and the study skip or refuse it; the page just leaves it out
    }
  }
  return out;
}

/** Follows a run: `reset`, `log` (entries of log.jsonl), `samples` (records of samples.jsonl), `baselines`, `status` (running). */
function streamRun(item: Listed, res: http.ServerResponse, pollMs: number): () => void {
  const p = runPaths(item.dir);
  const log = new JsonlTail(p.log);
  const samples = new JsonlTail(p.samples);
  let baselinesKey: string | null = null; // null: nothing sent yet (the first tick always says)
  let running: boolean | null = null;
  const tick = () => {
    const l = log.poll();
    const s = samples.poll();
    if (l.reset) sse(res, 'reset', { what: 'log' });
    if (s.reset) sse(res, 'reset', { what: 'samples' });
    if (l.lines.length) sse(res, 'log', parseLines(l.lines));
    if (s.lines.length) sse(res, 'samples', parseLines(s.lines));
    const b = readRunBaselines(item.dir);
    const key = b ? JSON.stringify([b.uniform, b.unigram, b.bigram, b.trigram]) : '';
    if (key !== baselinesKey) {
      baselinesKey = key;
      sse(res, 'baselines', b && { uniform: b.uniform, unigram: b.unigram, bigram: b.bigram, trigram: b.trigram });
    }
    const now = lockHolder(item.dir) !== null;
    if (now !== running) {
      running = now;
      sse(res, 'status', { running });
    }
  };
  tick();
  const timer = setInterval(tick, pollMs);
  return () => clearInterval(timer);
}

/** Follows a study: `summary` (the journal folded by summarize) each time the journal grows. */
function streamStudy(item: Listed, res: http.ServerResponse, pollMs: number): () => void {
  const journal = new JsonlTail(journalPath(item.dir));
  let events: JournalEvent[] = [];
  let running: boolean | null = null;
  const tick = () => {
    const j = journal.poll();
    if (j.reset) events = [];
    const now = lockHolder(item.dir) !== null;
    if (j.reset || j.lines.length || now !== running) {
      events.push(...(parseLines(j.lines) as JournalEvent[]).filter((e) => typeof e === 'object' && e !== null && typeof e.type === 'string'));
      running = now;
      sse(res, 'summary', { running, summary: summarize(events) });
    }
  };
  tick();
  const timer = setInterval(tick, pollMs);
  return () => clearInterval(timer);
}

/** Starts the server; resolves once it listens. Refuses (UserError) a port in use or a host it cannot bind. */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const host = o.host ?? '127.0.0.1';
  const pollMs = o.pollMs ?? 500;
  const roots = o.roots.map((r) => path.resolve(r));
  const assets = assetTable();
  const loopback = isLoopback(host);
  const streams = new Set<() => void>();

  const server = http.createServer((req, res) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      res.end('the dashboard is read-only\n');
      return;
    }
    if (loopback) {
      const h = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!isLoopback(h)) return send(res, 403, 'text/plain; charset=utf-8', `host ${JSON.stringify(h)} refused: open the dashboard at ${host}\n`, head);
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return send(res, 400, 'text/plain; charset=utf-8', 'bad URL\n', head);
    }
    if (url.pathname === '/favicon.ico') return send(res, 204, 'image/x-icon', '', head);
    const asset = assets.get(url.pathname);
    if (asset) {
      let body: Buffer;
      try {
        body = fs.readFileSync(asset.file);
      } catch {
        return send(res, 500, 'text/plain; charset=utf-8', `missing asset ${url.pathname}\n`, head);
      }
      return send(res, 200, asset.type, body, head);
    }
    try {
      switch (url.pathname) {
        case '/api/list':
          return sendJson(res, 200, { roots, items: listRuns(roots) }, head);
        case '/api/system':
          readSystemStatus({ diskPath: roots[0] && fs.existsSync(roots[0]) ? roots[0] : '.' }).then(
            (s) => sendJson(res, 200, s, head),
            (e: unknown) => sendJson(res, 500, { error: String(e) }, head),
          );
          return;
        case '/api/run/stream':
        case '/api/study/stream': {
          const kind = url.pathname === '/api/run/stream' ? 'run' : 'study';
          const id = url.searchParams.get('id');
          const item = lookup(roots, id, kind);
          if (!item) return sendJson(res, 404, { error: `no ${kind} named ${JSON.stringify(id)} in the listing` }, head);
          res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', ...SECURITY_HEADERS });
          if (head) return void res.end();
          res.write('retry: 2000\n\n');
          const stop = kind === 'run' ? streamRun(item, res, pollMs) : streamStudy(item, res, pollMs);
          streams.add(stop);
          const done = () => { stop(); streams.delete(stop); };
          req.on('close', done);
          res.on('error', done);
          return;
        }
        case '/api/plot.svg': {
          const ids = url.searchParams.getAll('run');
          const items = ids.map((id) => lookup(roots, id, 'run'));
          if (!ids.length || items.some((x) => !x)) return sendJson(res, 404, { error: `not every run in ${JSON.stringify(ids)} is in the listing` }, head);
          const metric = url.searchParams.get('metric') ?? 'val_bpb';
          const x = url.searchParams.get('x') ?? 'step';
          if (!(METRICS as readonly string[]).includes(metric) || !(X_AXES as readonly string[]).includes(x)) return sendJson(res, 400, { error: 'bad metric or x' }, head);
          const runs = items.map((it) => readRunData(it!.dir, it!.id));
          return send(res, 200, 'image/svg+xml', lineChartSvg(runChart(runs, metric as Metric, x as XAxis)), head);
        }
        case '/api/study/progress.svg': {
          const item = lookup(roots, url.searchParams.get('id'), 'study');
          if (!item) return sendJson(res, 404, { error: 'no such study in the listing' }, head);
          const events = parseLines(fs.readFileSync(journalPath(item.dir), 'utf8').split('\n').filter((l) => l.trim())) as JournalEvent[];
          return send(res, 200, 'image/svg+xml', progressSvg(summarize(events), { width: 860, height: 420 }), head);
        }
        default:
          return sendJson(res, 404, { error: `nothing at ${url.pathname}` }, head);
      }
    } catch (e) {
      return sendJson(res, 500, { error: (e as Error).message }, head);
    }
  });

  const { port, url } = await listenOn(server, host, o.port);
  const warning = loopback
    ? null
    : `warning: the dashboard listens on ${host}, not only on this machine: anyone who can reach port ${port} can read your runs and samples (read-only); --host 127.0.0.1 keeps it local`;
  return {
    url,
    host,
    port,
    warning,
    close: () =>
      new Promise<void>((resolve) => {
        for (const stop of streams) stop();
        streams.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
