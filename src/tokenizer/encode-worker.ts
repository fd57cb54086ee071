// Worker thread for encodeParallel: rebuilds the tokenizer from its tokenizer.json object once,
// then encodes chunks of documents, answering each with one flat id buffer plus offsets.

import { parentPort, workerData } from 'node:worker_threads';
import { tokenizerFromJson } from './load.js';
import type { ChunkRequest, ChunkResult } from './parallel.js';

const tok = tokenizerFromJson((workerData as { json: unknown }).json, 'tokenizer (worker copy)');

parentPort!.on('message', (req: ChunkRequest) => {
  const parts: number[][] = req.docs.map((d) => tok.encode(d));
  let total = 0;
  for (const p of parts) total += p.length;
  const ids = new Uint32Array(total);
  const offsets = new Uint32Array(parts.length + 1);
  let off = 0;
  parts.forEach((p, i) => {
    offsets[i] = off;
    ids.set(p, off);
    off += p.length;
  });
  offsets[parts.length] = off;
  const res: ChunkResult = { chunk: req.chunk, ids, offsets };
  parentPort!.postMessage(res, [ids.buffer, offsets.buffer]);
});
