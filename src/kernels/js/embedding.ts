import type { FloatArray } from '../types.js';

function tokenRow(tokens: Int32Array, i: number, C: number, tableLength: number): number {
  const tok = tokens[i];
  const row = tok * C;
  // An out-of-range id would silently read undefined (NaN) or write past the table.
  if (!(tok >= 0) || row + C > tableLength) throw new RangeError(`embedding: token ${tok} at position ${i} is outside the table of ${tableLength / C} rows`);
  return row;
}

/** out[i, :] = table[tokens[i], :]. Writes out [N, C]. */
export function embeddingForward(out: FloatArray, tokens: Int32Array, table: FloatArray, N: number, C: number): void {
  for (let i = 0; i < N; i++) {
    const src = tokenRow(tokens, i, C, table.length);
    const dst = i * C;
    for (let c = 0; c < C; c++) out[dst + c] = table[src + c];
  }
}

/** dtable[tokens[i], :] += dout[i, :]. Accumulates. */
export function embeddingBackward(dtable: FloatArray, dout: FloatArray, tokens: Int32Array, N: number, C: number): void {
  for (let i = 0; i < N; i++) {
    const dst = tokenRow(tokens, i, C, dtable.length);
    const src = i * C;
    for (let c = 0; c < C; c++) dtable[dst + c] += dout[src + c];
  }
}
