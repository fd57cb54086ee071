// llama.cpp's conventions for Llama weights that differ from ours and Hugging Face's.
//
// Rotary embeddings: we (like Hugging Face's Llama) rotate each head's dimensions in halves, the
// pair (i, i + D/2) by the angle pos * theta^(-2i/D). llama.cpp's `llama` architecture rotates
// adjacent pairs (2i, 2i + 1) by that same angle. Reordering the output rows of the q and k
// projections of each head, row i to 2i and row i + D/2 to 2i + 1, turns one into the other;
// q.k dot products are unchanged because q and k are reordered alike. llama.cpp's own Hugging
// Face converter does the same (its `permute`).

function checkShape(w: Float32Array, rows: number, cols: number, nHead: number): number {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || w.length !== rows * cols) {
    throw new Error(`permute: ${w.length} values is not a [${rows}, ${cols}] matrix`);
  }
  if (!Number.isInteger(nHead) || nHead < 1 || rows % nHead !== 0 || (rows / nHead) % 2 !== 0) {
    throw new Error(`permute: ${rows} rows do not split into ${nHead} heads of an even size`);
  }
  return rows / nHead;
}

/**
 * q or k projection weights, [out = nHead * D, in] row-major (Hugging Face orientation), from
 * rotate-half order to llama.cpp's interleaved-pair order: in each head, row i goes to 2i and row
 * i + D/2 to 2i + 1. For k with fewer kv heads, pass the kv head count.
 */
export function permuteForGguf(w: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const D = checkShape(w, rows, cols, nHead);
  const half = D / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      const src0 = (h * D + i) * cols;
      const src1 = (h * D + i + half) * cols;
      out.set(w.subarray(src0, src0 + cols), (h * D + 2 * i) * cols);
      out.set(w.subarray(src1, src1 + cols), (h * D + 2 * i + 1) * cols);
    }
  }
  return out;
}

/** The inverse of permuteForGguf: llama.cpp's interleaved-pair order back to rotate-half order. */
export function unpermuteFromGguf(w: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const D = checkShape(w, rows, cols, nHead);
  const half = D / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      const src0 = (h * D + 2 * i) * cols;
      const src1 = (h * D + 2 * i + 1) * cols;
      out.set(w.subarray(src0, src0 + cols), (h * D + i) * cols);
      out.set(w.subarray(src1, src1 + cols), (h * D + i + half) * cols);
    }
  }
  return out;
}
