/**
 * `pocketlm web`: serves the in-browser trainer (dist/web-app, built by scripts/build-web.mjs) and
 * the bundled TinyStories sample, with the headers that make the page cross-origin isolated
 * (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp), which is
 * what lets its Web Workers share one WebAssembly.Memory. No CDN, nothing fetched from elsewhere.
 *
 * Read-only and path-safe: the files served are a table made at start from the names in
 * dist/web-app (plain files only) plus /sample/train.txt and /sample/val.txt; a request path is only
 * looked up in that table, never joined to a folder. Listens on 127.0.0.1 unless told otherwise,
 * and then refuses requests whose Host header names another host (DNS rebinding).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { readSampleSplit, type SampleSplit } from '../data/bundled.js';
import { isLoopback, listenOn } from '../util/local-server.js';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';

export interface WebOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /**
   * Send the cross-origin isolation headers (default true). False serves the page as a static
   * host without them would: it trains on one thread and says so (the browser test checks this).
   */
  isolate?: boolean;
}

export interface WebServer {
  url: string;
  host: string;
  port: number;
  /** Set when the server listens on a non-loopback address: one line to print. */
  warning: string | null;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
};

export function webAppDir(): string {
  return path.join(packageRoot(), 'dist', 'web-app');
}

/** URL path -> file, from the names in dist/web-app (no request path is ever joined to a folder). */
function staticTable(): Map<string, { file: string; type: string }> {
  const dir = webAppDir();
  let names: string[];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isFile() && TYPES[path.extname(d.name)]).map((d) => d.name);
  } catch {
    throw new UserError(`the web app is not built (${dir} is missing): run npm run build`);
  }
  if (!names.includes('index.html')) throw new UserError(`the web app in ${dir} is incomplete (no index.html): run npm run build`);
  const table = new Map(names.map((n) => [`/${n}`, { file: path.join(dir, n), type: TYPES[path.extname(n)]! }]));
  table.set('/', table.get('/index.html')!);
  return table;
}

export async function startWebServer(o: WebOptions = {}): Promise<WebServer> {
  const host = o.host ?? '127.0.0.1';
  const isolate = o.isolate ?? true;
  const files = staticTable();
  const loopback = isLoopback(host);
  const samples = new Map<SampleSplit, Buffer>(); // decompressed once, on first request

  const headers = (type: string): http.OutgoingHttpHeaders => ({
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // everything from this server; wasm compiled from the bundles' own bytes; downloads are blob: URLs
    'Content-Security-Policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'",
    ...(isolate ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' } : {}),
  });
  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, head: boolean): void => {
    res.writeHead(status, headers(type));
    res.end(head ? undefined : body);
  };

  const server = http.createServer((req, res) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.writeHead(405, { Allow: 'GET, HEAD', ...headers('text/plain; charset=utf-8') });
      res.end('read-only\n');
      return;
    }
    if (loopback) {
      const h = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!isLoopback(h)) return send(res, 403, 'text/plain; charset=utf-8', `host ${JSON.stringify(h)} refused: open the page at ${host}\n`, head);
    }
    let pathname: string;
    try {
      pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      return send(res, 400, 'text/plain; charset=utf-8', 'bad URL\n', head);
    }
    try {
      if (pathname === '/sample/train.txt' || pathname === '/sample/val.txt') {
        const split: SampleSplit = pathname === '/sample/train.txt' ? 'train' : 'val';
        let text = samples.get(split);
        if (!text) samples.set(split, (text = readSampleSplit(split)));
        return send(res, 200, 'text/plain; charset=utf-8', text, head);
      }
      if (pathname === '/favicon.ico') return send(res, 204, 'image/x-icon', '', head);
      const f = files.get(pathname);
      if (!f) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
      return send(res, 200, f.type, fs.readFileSync(f.file), head);
    } catch (e) {
      return send(res, 500, 'text/plain; charset=utf-8', `${(e as Error).message}\n`, head);
    }
  });

  const { port, url } = await listenOn(server, host, o.port);
  return {
    url,
    host,
    port,
    warning: loopback ? null : `warning: pocketlm web listens on ${host}: anyone who can reach port ${port} can open the page (it only serves the app and the TinyStories sample); --host 127.0.0.1 keeps it local`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
