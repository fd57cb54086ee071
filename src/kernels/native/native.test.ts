import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WasmArena } from '../arena.js';
import { assertAllClose, fillUniform, seededRng, type Rng } from '../testing.js';
import type { Kernels } from '../types.js';
import { createNativeKernels, loadNativeBlas, openblasCoretypeFor, openblasEnv, type NativeBlas } from './index.js';
import { createJsKernels } from '../js/index.js';

const jsKernels = createJsKernels();

const loaded = loadNativeBlas();
const skip = loaded.ok ? false : `native addon not available: ${loaded.reason}`;
if (skip) console.log(`# skipping native BLAS tests: ${skip}`);

const SIZES = [1, 3, 17, 63, 129];
const FORMS: Array<[boolean, boolean]> = [[false, false], [true, false], [false, true], [true, true]];

interface Operand {
  view: Float32Array; // starts at a non-zero, unaligned offset inside the shared memory
  rows: number;
  cols: number;
  ld: number;
}

/** A rows x cols operand with ld = cols + pad, placed `shift` floats past an arena allocation. */
function operand(arena: WasmArena, rng: Rng, rows: number, cols: number, pad: number, shift: number, batch = 1, stride = 0): Operand {
  const ld = cols + pad;
  const span = (batch - 1) * stride + (rows - 1) * ld + cols;
  const view = arena.floats(span + shift).subarray(shift) as Float32Array;
  fillUniform(view, rng);
  return { view, rows, cols, ld };
}

/** float64 reference C = alpha op(A) op(B) + beta C on one matrix of a batch, written to a copy. */
function reference(
  ta: boolean, tb: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, aOff: number, lda: number, B: Float32Array, bOff: number, ldb: number,
  beta: number, C: Float32Array, cOff: number, ldc: number, out: Float64Array,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) {
        const a = ta ? A[aOff + p * lda + i]! : A[aOff + i * lda + p]!;
        const b = tb ? B[bOff + j * ldb + p]! : B[bOff + p * ldb + j]!;
        s += a * b;
      }
      const c = beta === 0 ? 0 : beta * C[cOff + i * ldc + j]!;
      out[cOff + i * ldc + j] = alpha * s + c;
    }
  }
}

/** Runs one (batched) product through `gemm` and checks every element, padding included. */
function checkProduct(
  arena: WasmArena, rng: Rng, gemm: Kernels['gemmStridedBatched'], ta: boolean, tb: boolean,
  M: number, N: number, K: number, beta: number, batch: number,
): void {
  const mark = arena.mark();
  const pad = 3;
  const aRows = ta ? K : M, aCols = ta ? M : K;
  const bRows = tb ? N : K, bCols = tb ? K : N;
  const sA = (aRows - 1) * (aCols + pad) + aCols + 5;
  const sB = (bRows - 1) * (bCols + pad) + bCols + 2;
  const sC = (M - 1) * (N + pad) + N + 7;
  const A = operand(arena, rng, aRows, aCols, pad, 1, batch, sA);
  const B = operand(arena, rng, bRows, bCols, pad + 1, 3, batch, sB + bRows);
  const C = operand(arena, rng, M, N, pad, 5, batch, sC);
  const strideB = sB + bRows;
  if (beta === 0) {
    // beta = 0 must not read C: NaNs inside the matrix must not propagate.
    for (let b = 0; b < batch; b++) for (let i = 0; i < M; i++) C.view.fill(NaN, b * sC + i * C.ld, b * sC + i * C.ld + N);
  }
  const expected = Float64Array.from(C.view);
  const alpha = 0.75;
  for (let b = 0; b < batch; b++) {
    reference(ta, tb, M, N, K, alpha, A.view, b * sA, A.ld, B.view, b * strideB, B.ld, beta, C.view, b * sC, C.ld, expected);
  }
  gemm(ta, tb, M, N, K, alpha, A.view, A.ld, sA, B.view, B.ld, strideB, beta, C.view, C.ld, sC, batch);
  // Elements outside the matrices (row padding, gaps between batch items) must be untouched: exact.
  assertAllClose(C.view, expected, { rtol: 1e-4, atol: 1e-4, label: `${ta ? 't' : 'n'}${tb ? 't' : 'n'} M=${M} N=${N} K=${K} beta=${beta} batch=${batch}` });
  arena.release(mark);
}

describe('native BLAS addon', { skip }, () => {
  const addon = (loaded as { addon: NativeBlas }).addon;

  for (const threads of [1, 2]) {
    it(`sgemm in all four forms on awkward shapes vs float64 (threads=${threads})`, () => {
      addon.setThreads(threads);
      const arena = new WasmArena({ initialBytes: 8 << 20 });
      const rng = seededRng(11 + threads);
      const one: Kernels['gemmStridedBatched'] = (ta, tb, M, N, K, al, A, lda, _sa, B, ldb, _sb, be, C, ldc) =>
        addon.sgemm(ta, tb, M, N, K, al, A as Float32Array, lda, B as Float32Array, ldb, be, C as Float32Array, ldc);
      let n = 0;
      for (const [ta, tb] of FORMS) {
        for (const M of SIZES) {
          for (const N of SIZES) {
            for (const K of [1, 17, 129]) {
              checkProduct(arena, rng, one, ta, tb, M, N, K, n % 2 === 0 ? 0 : 0.5, 1);
              n++;
            }
          }
        }
      }
      assert.equal(n, 4 * 25 * 3);
    });

    it(`sgemmStridedBatched in all four forms vs float64 (threads=${threads})`, () => {
      addon.setThreads(threads);
      const arena = new WasmArena({ initialBytes: 8 << 20 });
      const rng = seededRng(29 + threads);
      const batched: Kernels['gemmStridedBatched'] = (...a) => addon.sgemmStridedBatched(
        a[0], a[1], a[2], a[3], a[4], a[5], a[6] as Float32Array, a[7], a[8], a[9] as Float32Array, a[10], a[11],
        a[12], a[13] as Float32Array, a[14], a[15], a[16]);
      for (const [ta, tb] of FORMS) {
        for (const [M, N, K] of [[17, 63, 3], [129, 17, 63], [1, 129, 17], [63, 1, 129], [3, 3, 1]] as const) {
          checkProduct(arena, rng, batched, ta, tb, M, N, K, 0, 3);
          checkProduct(arena, rng, batched, ta, tb, M, N, K, 0.5, 2);
        }
      }
    });
  }

  it('splits a batch across threads with the same results as product-by-product', () => {
    addon.setThreads(2);
    const arena = new WasmArena({ initialBytes: 8 << 20 });
    const rng = seededRng(5);
    const batched: Kernels['gemmStridedBatched'] = (...a) => addon.sgemmStridedBatched(
      a[0], a[1], a[2], a[3], a[4], a[5], a[6] as Float32Array, a[7], a[8], a[9] as Float32Array, a[10], a[11],
      a[12], a[13] as Float32Array, a[14], a[15], a[16]);
    try {
      for (const split of [true, false]) {
        addon.setBatchSplit(split);
        // 9 = uneven shares (4 + 5), 8 = even, 3 = too uneven: per-product threading
        for (const batch of [9, 8, 3]) checkProduct(arena, rng, batched, false, true, 17, 63, 32, 0.5, batch);
      }
    } finally {
      addon.setBatchSplit(true);
    }
    assert.equal(addon.getThreads(), addon.threadControl ? 2 : 1, 'thread count restored after a split call');
  });

  it('shares the rows or columns of large products between threads (all forms, uneven sizes)', () => {
    addon.setThreads(2);
    const arena = new WasmArena({ initialBytes: 16 << 20 });
    const rng = seededRng(77);
    const one: Kernels['gemmStridedBatched'] = (ta, tb, M, N, K, al, A, lda, _sa, B, ldb, _sb, be, C, ldc) =>
      addon.sgemm(ta, tb, M, N, K, al, A as Float32Array, lda, B as Float32Array, ldb, be, C as Float32Array, ldc);
    // >= 2^20 multiply-adds, so the call is split: by columns when N > M, else by rows;
    // 17 rows leave the second thread a short share, 1031 an unaligned one.
    for (const [ta, tb] of FORMS) {
      for (const [M, N, K] of [[63, 1031, 129], [1031, 63, 129], [17, 1031, 97]] as const) {
        checkProduct(arena, rng, one, ta, tb, M, N, K, 0, 1);
        checkProduct(arena, rng, one, ta, tb, M, N, K, 0.5, 1);
      }
    }
  });

  it('park() puts idle workers to sleep and the next split product wakes them', { skip: typeof addon.park !== 'function' }, () => {
    addon.setThreads(2);
    const arena = new WasmArena({ initialBytes: 16 << 20 });
    const rng = seededRng(78);
    const one: Kernels['gemmStridedBatched'] = (ta, tb, M, N, K, al, A, lda, _sa, B, ldb, _sb, be, C, ldc) =>
      addon.sgemm(ta, tb, M, N, K, al, A as Float32Array, lda, B as Float32Array, ldb, be, C as Float32Array, ldc);
    for (let i = 0; i < 20; i++) {
      addon.park!(); // right after a product (the workers are spinning) and right after park (asleep)
      if (i % 2 === 0) addon.park!();
      checkProduct(arena, rng, one, false, false, 130, 300, 129, 0, 1);
    }
  });

  it('reports the thread count it was given', () => {
    addon.setThreads(2);
    assert.equal(addon.getThreads(), addon.threadControl ? 2 : 1);
    addon.setThreads(1);
    assert.equal(addon.getThreads(), 1);
    assert.throws(() => addon.setThreads(0), RangeError);
  });

  it('K = 0 scales C by beta without reading A or B', () => {
    const arena = new WasmArena();
    const C = arena.floats(4);
    C.set([1, 2, 3, 4]);
    const empty = arena.floats(1);
    addon.sgemm(false, false, 2, 2, 0, 1, empty, 1, empty, 2, 0.5, C, 2);
    assert.deepEqual([...C], [0.5, 1, 1.5, 2]);
    C.set([NaN, NaN, NaN, NaN]);
    addon.sgemm(false, false, 2, 2, 0, 1, empty, 1, empty, 2, 0, C, 2);
    assert.deepEqual([...C], [0, 0, 0, 0]);
  });

  it('rejects Float64Array, short views, small leading dimensions and wrong argument counts', () => {
    const arena = new WasmArena();
    const A = arena.floats(6), B = arena.floats(6), C = arena.floats(4);
    assert.throws(() => addon.sgemm(false, false, 2, 2, 3, 1, new Float64Array(6) as unknown as Float32Array, 3, B, 2, 0, C, 2),
      (e: Error) => e instanceof TypeError && /A must be a Float32Array.*float32 only/.test(e.message));
    assert.throws(() => addon.sgemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, [0, 0, 0, 0] as unknown as Float32Array, 2),
      (e: Error) => e instanceof TypeError && /C must be a Float32Array/.test(e.message));
    // A is 2 x 4 with lda 4: needs 8 elements, the view has 6.
    assert.throws(() => addon.sgemm(false, false, 2, 2, 4, 1, A, 4, B, 2, 0, C, 2), (e: Error) => e instanceof RangeError && /A needs 8/.test(e.message));
    assert.throws(() => addon.sgemm(false, false, 2, 2, 3, 1, A, 2, B, 2, 0, C, 2), (e: Error) => e instanceof RangeError && /lda = 2/.test(e.message));
    assert.throws(() => addon.sgemmStridedBatched(false, false, 2, 2, 3, 1, A, 3, 6, B, 2, 6, 0, C, 2, 4, 2),
      (e: Error) => e instanceof RangeError && /A needs 12/.test(e.message));
    assert.throws(() => (addon.sgemm as (...a: unknown[]) => void)(false, false, 2, 2, 3), (e: Error) => e instanceof TypeError && /expected 13 arguments/.test(e.message));
    assert.throws(() => addon.sgemm(false, false, -1, 2, 3, 1, A, 3, B, 2, 0, C, 2), RangeError);
  });

  it('names the library it linked', () => {
    assert.match(addon.library, /\S/);
    assert.equal(typeof addon.threadControl, 'boolean');
  });
});

describe('createNativeKernels', { skip }, () => {
  const addon = (loaded as { addon: NativeBlas }).addon;

  /** A base whose every method records its name (the delegation target). */
  function recordingBase(calls: string[]): Kernels {
    return new Proxy({ name: 'wasm', threads: 2 } as unknown as Kernels, {
      get(target, prop) {
        if (prop in target) return (target as unknown as Record<string | symbol, unknown>)[prop];
        return (..._a: unknown[]) => {
          calls.push(String(prop));
          return 42;
        };
      },
    });
  }

  it('sends matrix products to BLAS and everything else to the base', async () => {
    const calls: string[] = [];
    const k = createNativeKernels(recordingBase(calls), addon, { threads: 1 });
    assert.equal(k.name, 'native');
    assert.equal(k.threads, 1);
    const arena = new WasmArena();
    const A = arena.floats(6), B = arena.floats(6), C = arena.floats(4);
    A.set([1, 2, 3, 4, 5, 6]);
    B.set([1, 0, 0, 1, 1, 1]);
    k.gemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2);
    assert.deepEqual([...C], [4, 5, 10, 11]);
    k.gemmStridedBatched(true, false, 2, 2, 3, 1, A, 2, 0, B, 2, 0, 0, C, 2, 0, 1);
    // A^T (A stored 3 x 2) times B: rows of A^T are [1,3,5] and [2,4,6].
    assert.deepEqual([...C], [6, 8, 8, 10]);
    // no products on the base; its idle workers are parked before each product
    assert.deepEqual(calls, ['parkWorkers', 'parkWorkers']);
    calls.length = 0;
    assert.equal(k.sumSquares(A, 6), 42);
    k.add(C, C, C, 4);
    k.adamwUpdate(A, A, A, A, 1, 0, 0, 0, 0, 0, 1, 1);
    await k.dispose();
    assert.deepEqual(calls, ['sumSquares', 'add', 'adamwUpdate', 'dispose']);
  });

  it('sends single-row products (decoding) to the base\'s row kernel, and transposed-A ones to BLAS', () => {
    const calls: string[] = [];
    const k = createNativeKernels(recordingBase(calls), addon, { threads: 1 });
    const arena = new WasmArena();
    const A = arena.floats(6), B = arena.floats(6), C = arena.floats(4);
    k.gemm(false, false, 1, 2, 3, 1, A, 3, B, 2, 0, C, 2);
    k.gemmStridedBatched(false, true, 1, 2, 3, 1, A, 3, 3, B, 3, 0, 0, C, 2, 2, 2);
    assert.deepEqual(calls, ['gemm', 'gemmStridedBatched']);
    calls.length = 0;
    A.set([1, 2, 3, 4, 5, 6]);
    B.set([1, 0, 0, 1, 1, 1]);
    k.gemm(true, false, 1, 2, 3, 1, A, 2, B, 2, 0, C, 2); // op(A) = column 0 of A stored 3 x 2: [1, 3, 5]
    assert.deepEqual([...C.subarray(0, 2)], [6, 8]);
    assert.deepEqual(calls, ['parkWorkers']);
  });

  it('runs the fused attention in the addon\'s C kernel (not on the base), equal to the js oracle; refuses short views', () => {
    assert.equal(typeof addon.attentionForward, 'function', 'an addon built from this source has the C attention');
    for (const threads of [1, 2]) {
      const calls: string[] = [];
      const k = createNativeKernels(recordingBase(calls), addon, { threads });
      const arena = new WasmArena();
      const rng = seededRng(91 + threads);
      const B = 2, T = 77, H = 3, D = 32, C = H * D, N = B * T, scale = 1 / Math.sqrt(D);
      const qkv = fillUniform(arena.floats(N * 3 * C), rng);
      const out = arena.floats(N * C), lse = arena.floats(B * H * T), dout = fillUniform(arena.floats(N * C), rng), dqkv = arena.floats(N * 3 * C);
      k.attentionCausalForward(out, lse, qkv, B, T, H, D, scale);
      k.attentionCausalBackward(dqkv, dout, qkv, out, lse, B, T, H, D, scale);
      assert.deepEqual(calls, ['parkWorkers', 'parkWorkers']);
      const q64 = Float64Array.from(qkv), o64 = new Float64Array(N * C), l64 = new Float64Array(B * H * T), d64 = new Float64Array(N * 3 * C);
      jsKernels.attentionCausalForward(o64, l64, q64, B, T, H, D, scale);
      jsKernels.attentionCausalBackward(d64, Float64Array.from(dout), q64, Float64Array.from(out), Float64Array.from(lse), B, T, H, D, scale);
      assertAllClose(out, o64, { rtol: 1e-5, atol: 1e-6, label: `out x${threads}` });
      assertAllClose(lse, l64, { rtol: 1e-5, atol: 1e-6, label: `lse x${threads}` });
      assertAllClose(dqkv, d64, { rtol: 1e-4, atol: 1e-5, label: `dqkv x${threads}` });
      assert.throws(() => k.attentionCausalForward(out.subarray(1), lse, qkv, B, T, H, D, scale), /out has \d+ elements, needs \d+/);
      assert.throws(() => k.attentionCausalBackward(dqkv, dout, qkv, out, lse.subarray(5), B, T, H, D, scale), /lse has \d+ elements/);
    }
  });

  it('rejects float64 arrays with a clear error', () => {
    const k = createNativeKernels(recordingBase([]), addon, { threads: 1 });
    const arena = new WasmArena();
    const B = arena.floats(6), C = arena.floats(4);
    assert.throws(() => k.gemm(false, false, 2, 2, 3, 1, new Float64Array(6), 3, B, 2, 0, C, 2), /float32 only/);
  });

  it('restores its own OpenBLAS thread count when another kernel set changed it', { skip: !addon.threadControl }, () => {
    const two = createNativeKernels(recordingBase([]), addon, { threads: 2 });
    createNativeKernels(recordingBase([]), addon, { threads: 1 });
    assert.equal(addon.getThreads(), 1);
    const arena = new WasmArena();
    const x = arena.floats(4);
    two.gemm(false, false, 2, 2, 2, 1, x, 2, x, 2, 0, arena.floats(4), 2);
    assert.equal(addon.getThreads(), 2);
  });
});

describe('OpenBLAS environment', () => {
  it('forces a core type only where the CPU flags make it safe', () => {
    assert.equal(openblasCoretypeFor('fpu sse avx2 fma avx512f avx512bw avx512dq avx512vl avx512cd avx512_bf16'), 'Cooperlake');
    assert.equal(openblasCoretypeFor('fpu avx2 fma avx512f avx512bw avx512dq avx512vl avx512cd'), 'SkylakeX');
    assert.equal(openblasCoretypeFor('fpu sse4_2 avx avx2 fma'), 'Haswell');
    assert.equal(openblasCoretypeFor('fpu sse4_2 avx'), null);
    assert.equal(openblasCoretypeFor(''), null);
  });

  it('never overrides what the user set', () => {
    const flags = 'avx2 fma';
    assert.deepEqual(openblasEnv({}, flags), { OPENBLAS_THREAD_TIMEOUT: '20', OPENBLAS_CORETYPE: 'Haswell' });
    assert.deepEqual(openblasEnv({ OPENBLAS_CORETYPE: 'Zen', OPENBLAS_THREAD_TIMEOUT: '28' }, flags), {});
    assert.deepEqual(openblasEnv({}, null), { OPENBLAS_THREAD_TIMEOUT: '20' });
  });

  it('POCKETLM_NO_NATIVE=1 disables the addon with a reason', () => {
    const saved = process.env.POCKETLM_NO_NATIVE;
    process.env.POCKETLM_NO_NATIVE = '1';
    try {
      const r = loadNativeBlas();
      assert.equal(r.ok, false);
      assert.match((r as { reason: string }).reason, /POCKETLM_NO_NATIVE/);
    } finally {
      if (saved === undefined) delete process.env.POCKETLM_NO_NATIVE;
      else process.env.POCKETLM_NO_NATIVE = saved;
    }
  });
});
