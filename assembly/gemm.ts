// Single-threaded sgemm over one block of C: C = alpha * op(A) * op(B) + beta * C.
// GotoBLAS structure: B is packed into kc x 8 column panels, A into kc x 4 row panels
// (zero-padded at the edges), and a 6 x 8 register tile of FMAs runs over them. Threads
// split C into blocks on the JavaScript side and call this with shifted pointers.
import { madd } from './simd';

export const MR: i32 = 6;
export const NR: i32 = 8;
export const KC: i32 = 384;
export const MC: i32 = 96;
export const NC: i32 = 2048;
/** Bytes of scratch one gemm call needs: packed B block, packed A block, one edge tile. */
export const GEMM_SCRATCH_BYTES: i32 = (KC * NC + MC * KC + MR * NR) * 4;

/** Packs op(B)[pc:pc+kc, jc:jc+nc] into panels of NR columns: panel q holds [p][j] at (q*kc + p)*NR + j. */
function packB(transB: i32, B: usize, ldb: i32, pc: i32, jc: i32, kc: i32, nc: i32, dst: usize): void {
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const w = min(NR, nc - j0);
    const panel = dst + (<usize>(j0 * kc) << 2);
    if (!transB) {
      // stored K x N: a row of the panel is contiguous
      const src = B + ((<usize>pc * <usize>ldb + <usize>(jc + j0)) << 2);
      if (w == NR) {
        for (let p = 0; p < kc; p++) {
          const s = src + (<usize>(p * ldb) << 2);
          const d = panel + (<usize>(p * NR) << 2);
          v128.store(d, v128.load(s));
          v128.store(d, v128.load(s, 16), 16);
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const s = src + (<usize>(p * ldb) << 2);
          const d = panel + (<usize>(p * NR) << 2);
          for (let j = 0; j < NR; j++) store<f32>(d + (<usize>j << 2), j < w ? load<f32>(s + (<usize>j << 2)) : 0);
        }
      }
    } else {
      // stored N x K: column j of op(B) is row j of B, contiguous in p
      for (let j = 0; j < NR; j++) {
        const d = panel + (<usize>j << 2);
        if (j < w) {
          const s = B + ((<usize>(jc + j0 + j) * <usize>ldb + <usize>pc) << 2);
          for (let p = 0; p < kc; p++) store<f32>(d + (<usize>(p * NR) << 2), load<f32>(s + (<usize>p << 2)));
        } else {
          for (let p = 0; p < kc; p++) store<f32>(d + (<usize>(p * NR) << 2), 0);
        }
      }
    }
  }
}

/** Packs op(A)[ic:ic+mc, pc:pc+kc] into panels of MR rows: panel q holds [p][i] at (q*kc + p)*MR + i. */
function packA(transA: i32, A: usize, lda: i32, ic: i32, pc: i32, mc: i32, kc: i32, dst: usize): void {
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const h = min(MR, mc - i0);
    const panel = dst + (<usize>(i0 * kc) << 2);
    if (transA) {
      // stored K x M: the MR values for one p are contiguous
      const src = A + ((<usize>pc * <usize>lda + <usize>(ic + i0)) << 2);
      if (h == MR) {
        for (let p = 0; p < kc; p++) {
          const s = src + (<usize>(p * lda) << 2);
          const d = panel + (<usize>(p * MR) << 2);
          v128.store(d, v128.load(s));
          store<u64>(d, load<u64>(s, 16), 16);
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const s = src + (<usize>(p * lda) << 2);
          const d = panel + (<usize>(p * MR) << 2);
          for (let i = 0; i < MR; i++) store<f32>(d + (<usize>i << 2), i < h ? load<f32>(s + (<usize>i << 2)) : 0);
        }
      }
    } else {
      // stored M x K: gather MR rows; rows 0-3 in 4 x 4 blocks transposed with shuffles
      const src = A + ((<usize>(ic + i0) * <usize>lda + <usize>pc) << 2);
      if (h == MR) {
        const rs = <usize>lda << 2;
        let p = 0;
        for (; p + 4 <= kc; p += 4) {
          const s = src + (<usize>p << 2);
          const r0 = v128.load(s);
          const r1 = v128.load(s + rs);
          const r2 = v128.load(s + 2 * rs);
          const r3 = v128.load(s + 3 * rs);
          const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
          const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
          const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
          const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
          const d = panel + (<usize>(p * MR) << 2);
          v128.store(d, i64x2.shuffle(t0, t1, 0, 2));
          v128.store(d, i64x2.shuffle(t0, t1, 1, 3), MR * 4);
          v128.store(d, i64x2.shuffle(t2, t3, 0, 2), MR * 8);
          v128.store(d, i64x2.shuffle(t2, t3, 1, 3), MR * 12);
          const s4 = s + 4 * rs, s5 = s + 5 * rs;
          for (let q = 0; q < 4; q++) {
            const dq = d + (<usize>(q * MR) << 2);
            store<f32>(dq, load<f32>(s4 + (<usize>q << 2)), 16);
            store<f32>(dq, load<f32>(s5 + (<usize>q << 2)), 20);
          }
        }
        for (; p < kc; p++) {
          const d = panel + (<usize>(p * MR) << 2);
          for (let i = 0; i < MR; i++) store<f32>(d + (<usize>i << 2), load<f32>(src + (<usize>(i * lda + p) << 2)));
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const d = panel + (<usize>(p * MR) << 2);
          for (let i = 0; i < MR; i++) store<f32>(d + (<usize>i << 2), i < h ? load<f32>(src + (<usize>(i * lda + p) << 2)) : 0);
        }
      }
    }
  }
}

/**
 * The 6 x 8 micro-kernel: tile[6][8] = pa^T pb over kc. 12 accumulators + 2 B vectors +
 * 1 A splat fit the 16 xmm registers V8 has; anything else live across the loop (alpha
 * and beta as f32 parameters were) makes V8 spill and halves the speed, so applying
 * alpha/beta to C is a separate step. The loop is not unrolled for the same reason.
 * Exported only so that Binaryen does not inline it into gemm (its single call site):
 * inlined, it shares gemm's registers and V8 spills the accumulators (3x slower).
 * The loop runs on the A pointer alone (no separate counter: ~2% faster). For a full
 * tile with alpha == 1 it writes C itself (mode 1: C = tile, mode 2: C += tile, the same
 * values updateC computes), saving the round trip through `tile`; mode 0 leaves the
 * tile for updateC. Unrolling the loop or ending it with do-while makes V8 hoist the
 * loads and spill (1.5x slower), so keep this shape.
 */
export function micro(kc: i32, pa: usize, pb: usize, tile: usize, c: usize, ldc: i32, mode: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  const end = pa + <usize>(kc * 24);
  while (pa < end) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 16);
    c40 = madd(a, b0, c40); c41 = madd(a, b1, c41);
    a = v128.load32_splat(pa, 20);
    c50 = madd(a, b0, c50); c51 = madd(a, b1, c51);
    pa += 24;
    pb += 32;
  }
  if (mode != 0) {
    // full tile, alpha == 1: mode 1 stores into C, mode 2 adds to it
    const rs = <usize>ldc << 2;
    if (mode == 2) {
      c00 = f32x4.add(c00, v128.load(c)); c01 = f32x4.add(c01, v128.load(c, 16));
      c10 = f32x4.add(c10, v128.load(c + rs)); c11 = f32x4.add(c11, v128.load(c + rs, 16));
      c20 = f32x4.add(c20, v128.load(c + 2 * rs)); c21 = f32x4.add(c21, v128.load(c + 2 * rs, 16));
      c30 = f32x4.add(c30, v128.load(c + 3 * rs)); c31 = f32x4.add(c31, v128.load(c + 3 * rs, 16));
      c40 = f32x4.add(c40, v128.load(c + 4 * rs)); c41 = f32x4.add(c41, v128.load(c + 4 * rs, 16));
      c50 = f32x4.add(c50, v128.load(c + 5 * rs)); c51 = f32x4.add(c51, v128.load(c + 5 * rs, 16));
    }
    v128.store(c, c00); v128.store(c, c01, 16);
    v128.store(c + rs, c10); v128.store(c + rs, c11, 16);
    v128.store(c + 2 * rs, c20); v128.store(c + 2 * rs, c21, 16);
    v128.store(c + 3 * rs, c30); v128.store(c + 3 * rs, c31, 16);
    v128.store(c + 4 * rs, c40); v128.store(c + 4 * rs, c41, 16);
    v128.store(c + 5 * rs, c50); v128.store(c + 5 * rs, c51, 16);
    return;
  }
  v128.store(tile, c00); v128.store(tile, c01, 16);
  v128.store(tile, c10, 32); v128.store(tile, c11, 48);
  v128.store(tile, c20, 64); v128.store(tile, c21, 80);
  v128.store(tile, c30, 96); v128.store(tile, c31, 112);
  v128.store(tile, c40, 128); v128.store(tile, c41, 144);
  v128.store(tile, c50, 160); v128.store(tile, c51, 176);
}

/** C[0:h, 0:w] = alpha * tile + beta * C (beta == 0: C is not read). */
function updateC(tile: usize, c: usize, ldc: i32, h: i32, w: i32, alpha: f32, beta: f32): void {
  const rs = <usize>ldc << 2;
  if (w == NR) {
    const va = f32x4.splat(alpha), vb = f32x4.splat(beta);
    for (let i = 0; i < h; i++) {
      const crow = c + <usize>i * rs;
      const trow = tile + (<usize>(i * NR) << 2);
      let o0 = f32x4.mul(v128.load(trow), va);
      let o1 = f32x4.mul(v128.load(trow, 16), va);
      if (beta != 0) {
        o0 = madd(v128.load(crow), vb, o0);
        o1 = madd(v128.load(crow, 16), vb, o1);
      }
      v128.store(crow, o0);
      v128.store(crow, o1, 16);
    }
    return;
  }
  for (let i = 0; i < h; i++) {
    const crow = c + <usize>i * rs;
    const trow = tile + (<usize>(i * NR) << 2);
    for (let j = 0; j < w; j++) {
      const cj = crow + (<usize>j << 2);
      const t = alpha * load<f32>(trow + (<usize>j << 2));
      store<f32>(cj, beta != 0 ? t + beta * load<f32>(cj) : t);
    }
  }
}

/** C = beta * C over an M x N block (beta == 0 writes zeros without reading C). */
function scaleC(M: i32, N: i32, beta: f32, C: usize, ldc: i32): void {
  for (let i = 0; i < M; i++) {
    const row = C + (<usize>i * <usize>ldc << 2);
    for (let j = 0; j < N; j++) {
      const c = row + (<usize>j << 2);
      store<f32>(c, beta == 0 ? 0 : beta * load<f32>(c));
    }
  }
}

/**
 * One row of C (M = 1, A not transposed): C[0, :] = alpha * a B + beta * C[0, :], without packing.
 * Packing B is what the blocked path costs for a single row (decoding runs every weight matrix
 * this way once per token): here B is read once, in order. B not transposed: C accumulates a
 * few rows of B at a time (C stays in L1); transposed: one dot product per column.
 */
function gemmRow(transB: i32, N: i32, K: i32, alpha: f32, A: usize, B: usize, ldb: i32, beta: f32, C: usize): void {
  if (transB) {
    for (let j = 0; j < N; j++) {
      const row = B + (<usize>j * <usize>ldb << 2);
      let acc = f32x4.splat(0);
      let k = 0;
      for (; k + 4 <= K; k += 4) acc = madd(v128.load(A + (<usize>k << 2)), v128.load(row + (<usize>k << 2)), acc);
      let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
      for (; k < K; k++) s += load<f32>(A + (<usize>k << 2)) * load<f32>(row + (<usize>k << 2));
      const c = C + (<usize>j << 2);
      store<f32>(c, beta == 0 ? alpha * s : alpha * s + beta * load<f32>(c));
    }
    return;
  }
  scaleC(1, N, beta, C, N);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const a0 = alpha * load<f32>(A + (<usize>k << 2)), a1 = alpha * load<f32>(A + (<usize>(k + 1) << 2));
    const a2 = alpha * load<f32>(A + (<usize>(k + 2) << 2)), a3 = alpha * load<f32>(A + (<usize>(k + 3) << 2));
    const v0 = f32x4.splat(a0), v1 = f32x4.splat(a1), v2 = f32x4.splat(a2), v3 = f32x4.splat(a3);
    const r0 = B + (<usize>k * <usize>ldb << 2), r1 = r0 + (<usize>ldb << 2), r2 = r1 + (<usize>ldb << 2), r3 = r2 + (<usize>ldb << 2);
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const o = <usize>j << 2;
      let c = madd(v0, v128.load(r0 + o), v128.load(C + o));
      c = madd(v1, v128.load(r1 + o), c);
      c = madd(v2, v128.load(r2 + o), c);
      v128.store(C + o, madd(v3, v128.load(r3 + o), c));
    }
    for (; j < N; j++) {
      const o = <usize>j << 2;
      store<f32>(C + o, load<f32>(C + o) + a0 * load<f32>(r0 + o) + a1 * load<f32>(r1 + o) + a2 * load<f32>(r2 + o) + a3 * load<f32>(r3 + o));
    }
  }
  for (; k < K; k++) {
    const v0 = f32x4.splat(alpha * load<f32>(A + (<usize>k << 2)));
    const a0 = alpha * load<f32>(A + (<usize>k << 2));
    const r0 = B + (<usize>k * <usize>ldb << 2);
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const o = <usize>j << 2;
      v128.store(C + o, madd(v0, v128.load(r0 + o), v128.load(C + o)));
    }
    for (; j < N; j++) store<f32>(C + (<usize>j << 2), load<f32>(C + (<usize>j << 2)) + a0 * load<f32>(r0 + (<usize>j << 2)));
  }
}

/** See the file comment. `scratch` must hold GEMM_SCRATCH_BYTES and belong to this thread alone. */
export function gemm(
  transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32,
  A: usize, lda: i32, B: usize, ldb: i32, beta: f32, C: usize, ldc: i32, scratch: usize,
): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0) {
    scaleC(M, N, beta, C, ldc);
    return;
  }
  if (M == 1 && !transA) {
    gemmRow(transB, N, K, alpha, A, B, ldb, beta, C);
    return;
  }
  const pB = scratch;
  const pA = scratch + (<usize>(KC * NC) << 2);
  const tile = pA + (<usize>(MC * KC) << 2);
  // K in equal blocks of at most KC (no short last block: each block re-reads C)
  const kb = (K + KC - 1) / KC;
  const kstep = (K + kb - 1) / kb;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += kstep) {
      const kc = min(kstep, K - pc);
      const b = pc == 0 ? beta : <f32>1.0;
      packB(transB, B, ldb, pc, jc, kc, nc, pB);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        packA(transA, A, lda, ic, pc, mc, kc, pA);
        for (let jr = 0; jr < nc; jr += NR) {
          const w = min(NR, nc - jr);
          const pb = pB + (<usize>(jr * kc) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const h = min(MR, mc - ir);
            const c = C + ((<usize>(ic + ir) * <usize>ldc + <usize>(jc + jr)) << 2);
            const mode = h == MR && w == NR && alpha == 1 ? (b == 0 ? 1 : b == 1 ? 2 : 0) : 0;
            micro(kc, pA + (<usize>(ir * kc) << 2), pb, tile, c, ldc, mode);
            if (mode == 0) updateC(tile, c, ldc, h, w, alpha, b);
          }
        }
      }
    }
  }
}

/** Batches b0 <= i < b1 of a strided batched gemm (strides in elements). */
export function gemmBatched(
  transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32,
  A: usize, lda: i32, strideA: i32, B: usize, ldb: i32, strideB: i32,
  beta: f32, C: usize, ldc: i32, strideC: i32, b0: i32, b1: i32, scratch: usize,
): void {
  for (let i = b0; i < b1; i++) {
    gemm(transA, transB, M, N, K, alpha,
      A + (<usize>i * <usize>strideA << 2), lda,
      B + (<usize>i * <usize>strideB << 2), ldb,
      beta, C + (<usize>i * <usize>strideC << 2), ldc, scratch);
  }
}

/** Scratch bytes one thread needs (so JavaScript reads it from the module). */
export function gemmScratchBytes(): i32 {
  return GEMM_SCRATCH_BYTES;
}

/**
 * A gemm shared by several threads: each caller repeatedly claims the next chunk of
 * `chunk` rows (byRows) or columns of C from the counter at `counter` (an atomic i32 the
 * dispatcher zeroes) and computes it with its own scratch. A thread that is slowed down
 * (a busy core) simply claims fewer chunks, so the work stays balanced.
 */
export function gemmShared(
  transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32,
  A: usize, lda: i32, B: usize, ldb: i32, beta: f32, C: usize, ldc: i32, scratch: usize,
  counter: usize, byRows: i32, chunk: i32,
): void {
  const total = byRows ? M : N;
  for (;;) {
    const lo = atomic.add<i32>(counter, 1) * chunk;
    if (lo >= total) break;
    const n = min(chunk, total - lo);
    if (byRows) {
      const a = A + (<usize>(transA ? lo : lo * lda) << 2);
      gemm(transA, transB, n, N, K, alpha, a, lda, B, ldb, beta, C + (<usize>lo * <usize>ldc << 2), ldc, scratch);
    } else {
      const b = B + (<usize>(transB ? lo * ldb : lo) << 2);
      gemm(transA, transB, M, n, K, alpha, A, lda, b, ldb, beta, C + (<usize>lo << 2), ldc, scratch);
    }
  }
}

/** gemmBatched with batches claimed one at a time from `counter` (see gemmShared). */
export function gemmBatchedShared(
  transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32,
  A: usize, lda: i32, strideA: i32, B: usize, ldb: i32, strideB: i32,
  beta: f32, C: usize, ldc: i32, strideC: i32, batch: i32, scratch: usize, counter: usize,
): void {
  for (;;) {
    const i = atomic.add<i32>(counter, 1);
    if (i >= batch) break;
    gemmBatched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, i, i + 1, scratch);
  }
}
