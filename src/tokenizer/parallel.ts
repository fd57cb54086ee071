// Encoding many documents across worker threads, results in input order.

import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Tokenizer } from './types.js';

export interface EncodeParallelOptions {
  /** Encoding threads, this one included (default: the machine's available parallelism). 1 encodes here only. */
  threads?: number;
  /** Inputs shorter than this many characters in total are encoded on this thread (default 4M):
   *  starting workers and rebuilding the tokenizer in each costs more than it saves. */
  inlineBelowChars?: number;
  /** Whether this thread encodes chunks too (default true); false leaves all to `threads` workers. */
  useThisThread?: boolean;
  /** Characters per chunk handed to a worker (default 256k). */
  chunkChars?: number;
}

/** One chunk of documents sent to a worker. */
export interface ChunkRequest { chunk: number; docs: string[] }
/** A worker's answer: ids of doc k are ids[offsets[k] .. offsets[k+1]). */
export interface ChunkResult { chunk: number; ids: Uint32Array; offsets: Uint32Array }

/**
 * Each document encoded with encode() (special-token strings are ordinary text), in order.
 * `threads` encoders share one queue of chunks: this thread (whose tokenizer is already compiled
 * and has a warm word cache) plus threads-1 workers, which rebuild the tokenizer from toJSON().
 * The arrays of one chunk are views of one buffer.
 */
export async function encodeParallel(tok: Tokenizer, docs: string[], opts: EncodeParallelOptions = {}): Promise<Uint32Array[]> {
  const threads = Math.max(1, Math.floor(opts.threads ?? os.availableParallelism()));
  let totalChars = 0;
  for (const d of docs) totalChars += d.length;
  if (threads === 1 || totalChars < (opts.inlineBelowChars ?? 1 << 22)) {
    return docs.map((d) => Uint32Array.from(tok.encode(d)));
  }
  const chunks = chunkDocs(docs, opts.chunkChars ?? 1 << 18);
  if (chunks.length === 0) return [];
  const results: Uint32Array[] = new Array<Uint32Array>(docs.length);
  const json = tok.toJSON();
  const workers: Worker[] = [];
  let next = 0;
  let done = 0;
  let failed: unknown = null;
  try {
    const allDone = new Promise<void>((resolve, reject) => {
      const finish = (): void => { if (++done === chunks.length) resolve(); };
      const fail = (e: unknown): void => { failed ??= e; reject(e); };
      const feed = (w: Worker): void => {
        if (next < chunks.length && failed === null) {
          const c = chunks[next]!;
          const req: ChunkRequest = { chunk: next++, docs: docs.slice(c.start, c.end) };
          w.postMessage(req);
        }
      };
      const here = opts.useThisThread ?? true;
      const nWorkers = Math.min(here ? threads - 1 : threads, chunks.length);
      for (let i = 0; i < nWorkers; i++) {
        const w = new Worker(new URL('./encode-worker.js', import.meta.url), { workerData: { json } });
        workers.push(w);
        w.on('message', (res: ChunkResult) => {
          const c = chunks[res.chunk]!;
          for (let k = 0; k < c.end - c.start; k++) results[c.start + k] = res.ids.subarray(res.offsets[k]!, res.offsets[k + 1]!);
          finish();
          feed(w);
        });
        w.on('error', fail);
        w.on('exit', (code) => { if (done < chunks.length) fail(new Error(`tokenizer worker exited early (code ${code})`)); });
        feed(w);
      }
      // This thread takes chunks too, yielding between them so worker answers are handled.
      (async () => {
        while (here && next < chunks.length && failed === null) {
          const c = chunks[next++]!;
          for (let k = c.start; k < c.end; k++) results[k] = Uint32Array.from(tok.encode(docs[k]!));
          finish();
          await new Promise<void>((r) => setImmediate(r));
        }
      })().catch(fail);
    });
    await allDone;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}

/** Contiguous ranges of documents of about `chunkChars` characters each (at least one doc). */
export function chunkDocs(docs: string[], chunkChars: number): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  let start = 0;
  let size = 0;
  for (let i = 0; i < docs.length; i++) {
    size += docs[i]!.length;
    if (size >= chunkChars) {
      out.push({ start, end: i + 1 });
      start = i + 1;
      size = 0;
    }
  }
  if (start < docs.length) out.push({ start, end: docs.length });
  return out;
}
