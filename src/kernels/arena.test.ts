import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WASM32_MAX_BYTES, WasmArena } from './arena.js';
import { createWasmKernelsImpl } from './wasm/index.js';
import { createNativeKernels, loadNativeBlas } from './native/index.js';
import { assertAllClose, fillUniform, seededRng } from './testing.js';

// The wasm32 memory grows to 4 GiB. Offsets past 2 GiB do not fit a signed 32-bit integer:
// the arena must still compute them, and the wasm kernels (pointers passed as i32 and read as
// unsigned addresses) and the native addon must work on views placed there. Only the few MB
// the test touches become resident: the rest of the grown memory stays untouched zero pages.

const TWO_GIB = 2 ** 31;

/** Moves the arena's top past 2 GiB (plus `extra` bytes) without touching the memory. */
function pastTwoGiB(arena: WasmArena, extra = 4096): void {
  const skip = TWO_GIB + extra - (arena.base + arena.bytesUsed());
  arena.floats(Math.ceil(skip / 4));
}

test('offsets past 2 GiB are positive and aligned, and the views there read back what was written', () => {
  const arena = new WasmArena();
  pastTwoGiB(arena, 100); // a top that is not a multiple of the 64-byte alignment
  const a = arena.floats(1000);
  const b = arena.ints(7);
  const c = arena.floats(3);
  for (const v of [a, b, c]) {
    assert.ok(v.byteOffset >= TWO_GIB, `offset ${v.byteOffset}`);
    assert.equal(v.byteOffset % 64, 0, `offset ${v.byteOffset} is 64-byte aligned`);
  }
  assert.ok(b.byteOffset >= a.byteOffset + 4000 && c.byteOffset >= b.byteOffset + 28, 'allocations do not overlap');
  a[999] = 1.5;
  b[6] = -7;
  assert.equal(a[999], 1.5);
  assert.equal(b[6], -7);
  assert.equal(arena.bytesUsed(), c.byteOffset + 12 - arena.base);
  // a request that cannot fit is refused with the real (positive) figures, before growing
  const size = arena.memory.buffer.byteLength;
  assert.throws(() => arena.floats(2 ** 29), (e: unknown) => e instanceof RangeError
    && /asked for 2147483648 bytes at 2\d{9}\b/.test(e.message) && new RegExp(`${WASM32_MAX_BYTES}`).test(e.message), 'names the figures');
  assert.equal(arena.memory.buffer.byteLength, size, 'nothing grown for a refused request');
  // release works on marks past 2 GiB
  const mark = arena.mark();
  arena.floats(10).fill(3);
  arena.release(mark);
  assert.equal(arena.mark(), mark);
});

test('the arena fills the wasm32 memory up to exactly 4 GiB', () => {
  const arena = new WasmArena();
  const left = WASM32_MAX_BYTES - arena.base - arena.bytesUsed();
  const v = arena.floats(left / 4 - 16);
  arena.floats(16); // the very last bytes of the address space
  assert.equal(arena.base + arena.bytesUsed(), WASM32_MAX_BYTES);
  assert.equal(arena.memory.buffer.byteLength, WASM32_MAX_BYTES);
  v[v.length - 1] = 2;
  assert.equal(v[v.length - 1], 2);
  assert.throws(() => arena.ints(1), /out of wasm32 address space/);
});

test('wasm kernels (1 and 2 threads, gemm scratch included) and the native addon work on views past 2 GiB', async () => {
  const arena = new WasmArena();
  pastTwoGiB(arena);
  const rng = seededRng(5);
  for (const threads of [1, 2]) {
    // created now, the kernels' own scratch (gemm packing, worker command blocks) is past 2 GiB too
    const k = await createWasmKernelsImpl(arena, { threads });
    try {
      // gemm large enough to be shared by the threads: C[M,N] = A[M,K] B[K,N]
      const M = 96, N = 128, K = 160;
      const A = fillUniform(arena.floats(M * K), rng), B = fillUniform(arena.floats(K * N), rng);
      const C = arena.floats(M * N);
      assert.ok(A.byteOffset > TWO_GIB && C.byteOffset > TWO_GIB);
      k.gemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N);
      const ref = new Float64Array(M * N);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) s += A[i * K + p]! * B[p * N + j]!;
        ref[i * N + j] = s;
      }
      assertAllClose(C, ref, { rtol: 1e-4, atol: 1e-4 });
      // an elementwise kernel split across the threads, and a reduction
      const n = 1 << 18;
      const x = fillUniform(arena.floats(n), rng), y = fillUniform(arena.floats(n), rng);
      const want = Float64Array.from(y, (v, i) => v + 0.5 * x[i]!);
      k.axpy(y, x, 0.5, n);
      assertAllClose(y, want, { rtol: 1e-6, atol: 1e-6 });
      let ss = 0;
      for (let i = 0; i < n; i++) ss += y[i]! * y[i]!;
      assert.ok(Math.abs(k.sumSquares(y, n) - ss) < 1e-3 * ss);
      // ids read from past 2 GiB (embedding gathers rows by token)
      const table = fillUniform(arena.floats(10 * 8), rng);
      const ids = arena.ints(4);
      ids.set([3, 0, 9, 3]);
      const out = arena.floats(4 * 8);
      k.embeddingForward(out, ids, table, 4, 8);
      for (let r = 0; r < 4; r++) assert.deepEqual([...out.subarray(r * 8, r * 8 + 8)], [...table.subarray(ids[r]! * 8, ids[r]! * 8 + 8)]);
    } finally {
      await k.dispose();
    }
  }
  const loaded = loadNativeBlas();
  if (loaded.ok) {
    const base = await createWasmKernelsImpl(arena, { threads: 1 });
    const nk = createNativeKernels(base, loaded.addon, { threads: 1 });
    try {
      const M = 33, N = 17, K = 65;
      const A = fillUniform(arena.floats(M * K), rng), B = fillUniform(arena.floats(N * K), rng);
      const C = fillUniform(arena.floats(M * N), rng);
      assert.ok(A.byteOffset > TWO_GIB);
      const ref = new Float64Array(M * N);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) s += A[i * K + p]! * B[j * K + p]!;
        ref[i * N + j] = 2 * s + 0.5 * C[i * N + j]!;
      }
      nk.gemm(false, true, M, N, K, 2, A, K, B, K, 0.5, C, N);
      assertAllClose(C, ref, { rtol: 1e-4, atol: 1e-4 });
    } finally {
      await nk.dispose();
    }
  }
});
