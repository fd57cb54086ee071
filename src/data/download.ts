import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { UserError } from '../util/errors.js';
import { cacheDir } from '../util/paths.js';
import { describeWriteError, fsyncDir, writeFileAtomicSync } from '../util/atomic.js';
import { removeStaleTemps } from './leftovers.js';
import { cutAfterLastStory, endsWithWholeStory, quickStoryProblem, sameText, storyFileProblem } from './text-check.js';

export const TINYSTORIES_BASE_URL = 'https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/';
export const TINYSTORIES_TRAIN = 'TinyStoriesV2-GPT4-train.txt';
export const TINYSTORIES_VALID = 'TinyStoriesV2-GPT4-valid.txt';
export const DEFAULT_MAX_TRAIN_MB = 200;

export interface DownloadProgress { phase: string; done: number; total: number }

export interface DownloadOptions {
  url: string;
  dest: string;
  /** Download only the first maxBytes (HTTP Range). */
  maxBytes?: number;
  /**
   * The file must be TinyStories-style text (UTF-8, `<|endoftext|>` lines, no markup, no
   * binary), checked before it is cached; a failed check removes it. 'whole': it must end
   * with a whole story, else it is refused as truncated. 'cut': a partial last story (a
   * Range slice, a short file) is cut off at the last separator line.
   */
  stories?: 'whole' | 'cut';
  onProgress?: (ev: DownloadProgress) => void;
  phase?: string;
  /** Attempts in a row that may fail without any new byte before giving up (default 5). */
  maxStalls?: number;
  /** Wait between attempts in ms (default 500, doubling). */
  retryDelayMs?: number;
  timeoutMs?: number;
}

interface PartInfo { url: string; total: number | null; limit: number | null }

/** What one HTTP response told us. */
interface Reply { status: number; start: number; end: number | null; total: number | null }

class SizeError extends Error {}

/**
 * A download that failed or delivered the wrong thing (network, HTTP status, sizes, content).
 * `reason` is the message without advice, for a caller that falls back on something else.
 */
export class DownloadError extends UserError {
  readonly reason: string;
  constructor(message: string, reason = message) {
    super(message);
    this.name = 'DownloadError';
    this.reason = reason;
  }
}

const OFFLINE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH']);

/**
 * Downloads url to dest, resumably: bytes go to `dest.part` (with `dest.part.json` naming
 * the url and expected size), a lost connection continues from the partial file with a
 * Range request, a server ignoring Range restarts from zero, and the finished file is
 * checked against Content-Length / Content-Range before it is renamed to dest. A cached
 * dest is reused as is.
 */
export async function downloadFile(o: DownloadOptions): Promise<string> {
  if (fs.existsSync(o.dest)) {
    // A cached file an earlier version stored without checking it: gone, and downloaded again.
    if (!o.stories || quickStoryProblem(o.dest) === null) return o.dest;
    removeFile(o.dest);
  }
  const part = `${o.dest}.part`;
  const infoFile = `${part}.json`;
  try {
    fs.mkdirSync(path.dirname(o.dest), { recursive: true });
  } catch (e) {
    throw describeWriteError(e, o.dest);
  }
  const limit = o.maxBytes ?? null;
  let info = readPartInfo(infoFile);
  if (!info || info.url !== o.url || info.limit !== limit) {
    fs.rmSync(part, { force: true });
    info = { url: o.url, total: null, limit };
  }
  const maxStalls = o.maxStalls ?? 5;
  let stalls = 0;
  let delay = o.retryDelayMs ?? 500;
  let lastError = '';
  let lastCode = '';
  for (;;) {
    const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
    const want = info.total !== null ? (limit !== null ? Math.min(limit, info.total) : info.total) : null;
    if (want !== null && have === want) break;
    if (want !== null && have > want) throw rejectSize(part, infoFile, o.url, have, want);
    let got = 0;
    try {
      got = await fetchInto(o, part, have, limit, info, infoFile);
    } catch (e) {
      if (e instanceof SizeError) { cleanupPart(part, infoFile); throw new DownloadError(`download of ${o.url} failed: ${e.message}; the partial file was removed`); }
      if (e instanceof UserError) throw e;
      lastError = errorText(e);
      lastCode = (e as NodeJS.ErrnoException)?.code ?? '';
    }
    if (got > 0) { stalls = 0; delay = o.retryDelayMs ?? 500; continue; }
    stalls++;
    // No route to the server at all (offline, DNS failure): retrying will not help.
    if (stalls >= maxStalls || OFFLINE_CODES.has(lastCode)) {
      const have2 = fs.existsSync(part) ? fs.statSync(part).size : 0;
      throw new DownloadError(`download of ${o.url} failed (${lastError || 'no data received'})${have2 > 0 ? ` after ${have2} bytes (run again to resume)` : ''}`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay *= 2;
  }
  if (o.stories) checkStories(part, infoFile, o.url, o.stories);
  try {
    const fd = fs.openSync(part, 'r+');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(part, o.dest);
    fsyncDir(path.dirname(o.dest));
  } catch (e) {
    throw describeWriteError(e, o.dest);
  }
  fs.rmSync(infoFile, { force: true });
  return o.dest;
}

/**
 * The finished download must be story text; a 'cut' file loses its partial last story. On a
 * failed check the file is removed (it must not be cached) and the error names the URL.
 */
function checkStories(part: string, infoFile: string, url: string, mode: 'whole' | 'cut'): void {
  // Cut first: a Range slice may also end inside a UTF-8 sequence. Without any separator
  // nothing is cut, and the check below says what the file is instead.
  if (mode === 'cut' && !endsWithWholeStory(part)) cutAfterLastStory(part);
  const problem = storyFileProblem(part, { wholeStories: true });
  if (problem === null) return;
  cleanupPart(part, infoFile);
  throw new DownloadError(`download of ${url} failed: the file ${problem}; it was not kept`);
}

function removeFile(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch (e) {
    throw describeWriteError(e, file);
  }
}

function readPartInfo(file: string): PartInfo | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as PartInfo;
  } catch {
    return null;
  }
}

function cleanupPart(part: string, infoFile: string): void {
  fs.rmSync(part, { force: true });
  fs.rmSync(infoFile, { force: true });
}

function rejectSize(part: string, infoFile: string, url: string, have: number, want: number): UserError {
  cleanupPart(part, infoFile);
  return new DownloadError(`download of ${url} failed: received ${have} bytes, expected ${want}; the partial file was removed`);
}

function errorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code}${err.message && !err.message.includes(err.code) ? ` ${err.message}` : ''}` : String(err?.message ?? e);
}

/**
 * One request. Appends what arrives to part and returns the number of new bytes (0 when
 * the connection failed before any). Throws SizeError when the server's sizes contradict.
 */
async function fetchInto(o: DownloadOptions, part: string, have: number, limit: number | null, info: PartInfo, infoFile: string): Promise<number> {
  const rangeEnd = limit !== null ? limit - 1 : null;
  const headers: Record<string, string> = { 'user-agent': 'pocketlm', 'accept-encoding': 'identity' };
  if (have > 0 || rangeEnd !== null) headers.range = `bytes=${have}-${rangeEnd ?? ''}`;
  const res = await request(o.url, headers, o.timeoutMs ?? 30000);
  const reply = parseReply(res);
  if (reply.status === 416 && info.total !== null && have >= Math.min(info.total, limit ?? Infinity)) { res.resume(); return 0; }
  if (reply.status !== 200 && reply.status !== 206) {
    res.resume();
    throw new DownloadError(`download of ${o.url} failed: HTTP ${reply.status}`);
  }
  if (reply.total !== null && info.total !== null && reply.total !== info.total) {
    res.resume();
    throw new SizeError(`the server reported ${reply.total} bytes, earlier ${info.total} (the file changed?)`);
  }
  if (reply.total !== null && info.total === null) {
    info.total = reply.total;
    writeFileAtomicSync(infoFile, JSON.stringify(info));
  }
  let skip = 0; // bytes of this body we already have
  const flags = 'a';
  if (reply.status === 200) {
    // The server ignored Range: the body starts at byte 0. Keep what we have, skip it in the stream.
    skip = have;
  } else if (reply.start !== have) {
    res.resume();
    throw new SizeError(`asked for bytes from ${have}, the server sent from ${reply.start}`);
  }
  const stop = limit ?? Infinity; // absolute offset where we stop reading
  const fd = fs.openSync(part, flags);
  let pos = have;
  let added = 0;
  const total = info.total !== null ? Math.min(info.total, limit ?? Infinity) : 0;
  const phase = o.phase ?? `download ${path.basename(o.dest)}`;
  o.onProgress?.({ phase, done: pos, total });
  try {
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (e?: Error): void => {
        if (done) return;
        done = true;
        if (e) reject(e); else resolve();
      };
      res.on('data', (chunk: Buffer) => {
        let c = chunk;
        if (skip > 0) {
          const n = Math.min(skip, c.length);
          skip -= n;
          c = c.subarray(n);
        }
        if (pos + c.length > stop) c = c.subarray(0, stop - pos);
        if (c.length > 0) {
          try {
            let off = 0;
            while (off < c.length) off += fs.writeSync(fd, c, off, c.length - off);
          } catch (e) {
            res.destroy();
            finish(describeWriteError(e, o.dest));
            return;
          }
          pos += c.length;
          added += c.length;
          o.onProgress?.({ phase, done: pos, total });
        }
        if (pos >= stop) { res.destroy(); finish(); }
      });
      res.on('end', () => finish());
      res.on('aborted', () => finish(Object.assign(new Error('connection lost'), { code: 'ECONNRESET' })));
      res.on('error', (e) => finish(e));
      res.on('close', () => finish(res.complete ? undefined : Object.assign(new Error('connection lost'), { code: 'ECONNRESET' })));
    });
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (added > 0) return added;
    throw e;
  } finally {
    fs.closeSync(fd);
  }
  // A complete response must have delivered what its headers announced.
  const expectedEnd = reply.end !== null ? Math.min(reply.end + 1, stop) : reply.total !== null ? Math.min(reply.total, stop) : null;
  if (expectedEnd !== null && pos !== expectedEnd && pos < stop) {
    throw new SizeError(`received ${pos} bytes, the server announced ${expectedEnd}`);
  }
  if (info.total === null) {
    // No size announced at all: what arrived is the whole file.
    info.total = pos;
    writeFileAtomicSync(infoFile, JSON.stringify(info));
  }
  return added;
}

function parseReply(res: http.IncomingMessage): Reply {
  const status = res.statusCode ?? 0;
  const len = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : null;
  if (status === 206) {
    const m = /bytes\s+(\d+)-(\d+)\/(\d+|\*)/.exec(String(res.headers['content-range'] ?? ''));
    if (!m) return { status, start: 0, end: null, total: null };
    return { status, start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
  }
  if (status === 416) {
    const m = /\*\/(\d+)/.exec(String(res.headers['content-range'] ?? ''));
    return { status, start: 0, end: null, total: m ? Number(m[1]) : null };
  }
  return { status, start: 0, end: len !== null ? len - 1 : null, total: len };
}

/** GET with redirects followed (Hugging Face redirects to its CDN); Range is kept across them. */
function request(url: string, headers: Record<string, string>, timeoutMs: number, redirects = 0): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try { u = new URL(url); } catch { reject(new DownloadError(`bad download URL: ${url}`)); return; }
    const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null;
    if (!mod) { reject(new DownloadError(`unsupported URL scheme in ${url}`)); return; }
    const req = mod.get(u, { headers, timeout: timeoutMs }, (res) => {
      const loc = res.headers.location;
      if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && loc) {
        res.resume();
        if (redirects >= 10) { reject(new Error('too many redirects')); return; }
        resolve(request(new URL(loc, u).toString(), headers, timeoutMs, redirects + 1));
        return;
      }
      res.setTimeout(timeoutMs, () => res.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      resolve(res);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

export interface TinyStoriesFiles { train: string; val: string; valName: string }

/**
 * The TinyStories validation file and the first maxTrainMb of the train file, cached under
 * cacheDir()/tinystories. POCKETLM_TINYSTORIES_URL overrides the base URL, and
 * POCKETLM_TINYSTORIES_TRAIN / POCKETLM_TINYSTORIES_VALID the file names.
 */
export async function downloadTinyStories(o: { maxTrainMb: number; onProgress?: (ev: DownloadProgress) => void; maxStalls?: number; retryDelayMs?: number }): Promise<TinyStoriesFiles> {
  if (!(o.maxTrainMb > 0)) throw new UserError(`--max-train-mb must be positive, got ${o.maxTrainMb}`);
  let base = process.env.POCKETLM_TINYSTORIES_URL ?? TINYSTORIES_BASE_URL;
  if (!base.endsWith('/')) base += '/';
  const trainName = process.env.POCKETLM_TINYSTORIES_TRAIN ?? TINYSTORIES_TRAIN;
  const validName = process.env.POCKETLM_TINYSTORIES_VALID ?? TINYSTORIES_VALID;
  const dir = path.join(cacheDir(), 'tinystories', hostKey(base));
  const maxBytes = Math.round(o.maxTrainMb * 1e6);
  const trainDest = path.join(dir, `${stem(trainName)}.first${o.maxTrainMb}MB.txt`);
  const valDest = path.join(dir, validName);
  const trainUrl = base + trainName;
  const valUrl = base + validName;
  try {
    if (fs.existsSync(dir)) removeStaleTemps(dir);
    await downloadFile({ url: valUrl, dest: valDest, stories: 'whole', onProgress: o.onProgress, phase: `download ${validName}`, maxStalls: o.maxStalls, retryDelayMs: o.retryDelayMs });
    await downloadFile({ url: trainUrl, dest: trainDest, maxBytes, stories: 'cut', onProgress: o.onProgress, phase: `download ${trainName}`, maxStalls: o.maxStalls, retryDelayMs: o.retryDelayMs });
    // One page served for both names (a catch-all server, a wrong mirror) would otherwise end as
    // "no train documents left after removing validation documents", far from the cause.
    if (sameText(trainDest, valDest)) {
      removeFile(trainDest);
      removeFile(valDest);
      const hint = process.env.POCKETLM_TINYSTORIES_URL ? '; check POCKETLM_TINYSTORIES_URL' : '';
      throw new DownloadError(`the train download (${trainUrl}) and the validation download (${valUrl}) are identical: the server does not serve the two TinyStories files${hint}; both were removed from the cache`);
    }
  } catch (e) {
    if (e instanceof DownloadError) {
      throw new DownloadError(`${e.message}. Without network: --dataset tinystories-sample (bundled with pocketlm) or moby-dick, or --data FILE`, e.reason);
    }
    throw e;
  }
  return { train: trainDest, val: valDest, valName: validName };
}

function stem(name: string): string {
  return name.replace(/\.txt$/i, '');
}

/** Different base URLs (a test server, a mirror) get different cache folders. */
function hostKey(base: string): string {
  return base === TINYSTORIES_BASE_URL ? 'hf' : base.replace(/^[a-z]+:\/\//i, '').replace(/[^A-Za-z0-9.-]+/g, '_').replace(/_+$/, '');
}
