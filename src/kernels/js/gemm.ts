import type { FloatArray } from '../types.js';

/**
 * Width of the float64 accumulator strip used by the non-transposed-B form. A fixed
 * size keeps the temporary O(1) while still letting every product accumulate in float64
 * (accumulating straight into a Float32Array C would round at every k).
 */
const STRIP = 64;

/**
 * One gemm at element offsets into A, B, C: C = alpha * op(A) op(B) + beta * C.
 * Offsets instead of subarrays so the batched form allocates no views.
 */
function gemmAt(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, aOff: number, lda: number,
  B: FloatArray, bOff: number, ldb: number,
  beta: number, C: FloatArray, cOff: number, ldc: number,
  acc: Float64Array,
): void {
  // op(A)[i, k] = A[aOff + i*aRow + k*aCol]
  const aRow = transA ? 1 : lda;
  const aCol = transA ? lda : 1;
  for (let i = 0; i < M; i++) {
    const cRow = cOff + i * ldc;
    const aBase = aOff + i * aRow;
    if (transB) {
      // op(B)[k, j] = B[j*ldb + k]: row j of stored B is contiguous in k, so a dot product.
      for (let j = 0; j < N; j++) {
        const bBase = bOff + j * ldb;
        let s = 0;
        for (let k = 0; k < K; k++) s += A[aBase + k * aCol] * B[bBase + k];
        C[cRow + j] = beta === 0 ? alpha * s : alpha * s + beta * C[cRow + j];
      }
    } else {
      // op(B)[k, j] = B[k*ldb + j]: contiguous in j, so i-k-j over a strip of columns.
      for (let j0 = 0; j0 < N; j0 += STRIP) {
        const w = Math.min(STRIP, N - j0);
        acc.fill(0, 0, w);
        for (let k = 0; k < K; k++) {
          const a = A[aBase + k * aCol];
          const bBase = bOff + k * ldb + j0;
          for (let j = 0; j < w; j++) acc[j] += a * B[bBase + j];
        }
        for (let j = 0; j < w; j++) {
          const c = cRow + j0 + j;
          C[c] = beta === 0 ? alpha * acc[j] : alpha * acc[j] + beta * C[c];
        }
      }
    }
  }
}

function checkLd(transA: boolean, transB: boolean, M: number, N: number, K: number, lda: number, ldb: number, ldc: number): void {
  if (lda < (transA ? M : K) || ldb < (transB ? K : N) || ldc < N) {
    throw new RangeError(`gemm: leading dimension too small (M=${M} N=${N} K=${K} lda=${lda} ldb=${ldb} ldc=${ldc} transA=${transA} transB=${transB})`);
  }
}

/** C = alpha * op(A) * op(B) + beta * C (see Kernels.gemm). Accumulates in float64. */
export function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, lda: number, B: FloatArray, ldb: number,
  beta: number, C: FloatArray, ldc: number,
): void {
  checkLd(transA, transB, M, N, K, lda, ldb, ldc);
  gemmAt(transA, transB, M, N, K, alpha, A, 0, lda, B, 0, ldb, beta, C, 0, ldc, new Float64Array(STRIP));
}

/** `batch` independent gemms at strides strideA/B/C (see Kernels.gemmStridedBatched). */
export function gemmStridedBatched(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, lda: number, strideA: number,
  B: FloatArray, ldb: number, strideB: number,
  beta: number, C: FloatArray, ldc: number, strideC: number, batch: number,
): void {
  checkLd(transA, transB, M, N, K, lda, ldb, ldc);
  const acc = new Float64Array(STRIP);
  for (let b = 0; b < batch; b++) {
    gemmAt(transA, transB, M, N, K, alpha, A, b * strideA, lda, B, b * strideB, ldb, beta, C, b * strideC, ldc, acc);
  }
}
