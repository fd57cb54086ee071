/**
 * Kernels.run (programs): on every backend and thread count, a program gives the same bits as
 * its calls made one by one on the same backend, and agrees with the js oracle to float32
 * tolerance. The shapes are not multiples of the SIMD width or the gemm tiles, and big enough
 * that the wasm team shares the products and the elementwise steps between threads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend, type Backend } from './index.js';
import type { Arena } from './arena.js';
import { runOneByOne, type FloatArray, type KernelCall, type Kernels } from './types.js';
import { createJsKernels } from './js/index.js';
import { assertAllClose, fillUniform, maxAbs, seededRng, toFloat64, type Rng } from './testing.js';

const CONFIGS: Array<{ backend: 'js' | 'wasm' | 'native'; threads: number }> = [
  { backend: 'js', threads: 1 },
  { backend: 'wasm', threads: 1 }, { backend: 'wasm', threads: 2 }, { backend: 'wasm', threads: 3 },
  { backend: 'native', threads: 1 }, { backend: 'native', threads: 2 }, { backend: 'native', threads: 3 },
];

/** N rows, width C, hidden F: from one row (the decoder's) to products the team splits by rows and by columns. */
const SHAPES = [
  { N: 1, C: 13, F: 37 },
  { N: 7, C: 20, F: 45 },
  { N: 97, C: 64, F: 100 },
  { N: 250, C: 72, F: 130 },
  { N: 61, C: 200, F: 300 },
];

type Bufs = Record<'res' | 'y' | 'w' | 'mid' | 'ln2' | 'rstd' | 'wGU' | 'h' | 's' | 'wD' | 'yo' | 'out' | 'dy' | 'ds' | 'dwD' | 'dwGU' | 'dx' | 'ln3' | 'rstd3', FloatArray>;

/** The same random contents in a fresh set of buffers of `arena` (every call with the same seed). */
function buffers(arena: Arena, seed: number, N: number, C: number, F: number): Bufs {
  const rng: Rng = seededRng(seed);
  const f = (n: number, lo = -1, hi = 1): FloatArray => fillUniform(arena.floats(n), rng, lo, hi);
  return {
    res: f(N * C, -2, 2), y: f(N * C, -2, 2), w: f(C, 0.5, 1.5), mid: f(N * C), ln2: f(N * C), rstd: f(N),
    wGU: f(C * 2 * F, -0.2, 0.2), h: f(N * 2 * F), s: f(N * F), wD: f(F * C, -0.2, 0.2), yo: f(N * C), out: f(N * C),
    dy: f(N * C), ds: f(N * F), dwD: f(F * C), dwGU: f(C * 2 * F), dx: f(N * C), ln3: f(N * C), rstd3: f(N),
  };
}

/**
 * The MLP block forward and backward, plus every other program kernel: each step reads what the
 * ones before wrote (a missing barrier or a step run out of order changes the results).
 */
function program(b: Bufs, N: number, C: number, F: number): KernelCall[] {
  return [
    ['addRmsnormForward', b.mid, b.ln2, b.rstd, b.res, b.y, b.w, N, C, 1e-5],
    ['gemm', false, false, N, 2 * F, C, 1, b.ln2, C, b.wGU, 2 * F, 0, b.h, 2 * F],
    ['swigluForward', b.s, b.h, N, F],
    ['gemm', false, false, N, C, F, 1, b.s, F, b.wD, C, 0, b.yo, C],
    ['add', b.out, b.mid, b.yo, N * C],
    ['dropout', b.out, b.out, N * C, 0x40000000, 12345],
    ['axpy', b.out, b.mid, 0.5, N * C],
    ['scale', b.out, 0.75, N * C],
    ['gemm', true, false, F, C, N, 0.5, b.s, F, b.dy, C, 1, b.dwD, C],
    ['gemm', false, true, N, F, C, 0.5, b.dy, C, b.wD, C, 0, b.ds, F],
    ['swigluBackward', b.h, b.ds, b.h, N, F],
    ['gemm', true, false, C, 2 * F, N, 1, b.ln2, C, b.h, 2 * F, 1, b.dwGU, 2 * F],
    ['gemm', false, true, N, C, 2 * F, 1, b.h, 2 * F, b.wGU, 2 * F, 0, b.dx, C],
    ['rmsnormForward', b.ln3, b.rstd3, b.out, b.w, N, C, 1e-5],
  ];
}

function sameBits(a: FloatArray, b: FloatArray, label: string): void {
  assert.equal(a.length, b.length, label);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${label}[${i}]: ${a[i]} from the program, ${b[i]} one by one`);
  }
}

for (const cfg of CONFIGS) {
  test(`programs: ${cfg.backend} backend, threads=${cfg.threads}: the same bits as the calls one by one, and the js oracle's values`, async (t) => {
    let be: Backend;
    try {
      be = await createBackend({ ...cfg, initialBytes: 32 << 20 });
    } catch (e) {
      t.skip(`${cfg.backend} backend not available here: ${(e as Error).message}`);
      return;
    }
    const k: Kernels = be.kernels;
    const js = createJsKernels();
    try {
      for (const { N, C, F } of SHAPES) {
        const seed = N * 1000 + C;
        const mark = be.arena.mark();
        try {
          const viaRun = buffers(be.arena, seed, N, C, F);
          const oneByOne = buffers(be.arena, seed, N, C, F);
          const oracle = buffers(be.arena, seed, N, C, F);
          k.run(program(viaRun, N, C, F));
          runOneByOne(k, program(oneByOne, N, C, F));
          js.run(program(oracle, N, C, F));
          for (const key of Object.keys(viaRun) as Array<keyof Bufs>) {
            const label = `${key} N=${N} C=${C} F=${F}`;
            sameBits(viaRun[key], oneByOne[key], label);
            const ref = toFloat64(oracle[key]);
            assertAllClose(viaRun[key], ref, { rtol: 1e-4, atol: 1e-4 * Math.max(maxAbs(ref), 1e-30), label });
          }
        } finally {
          be.arena.release(mark);
        }
      }
    } finally {
      await be.dispose();
    }
  });
}

test('programs: a program longer than the team\'s block (steps and chunks) runs in parts, in order', async (t) => {
  let be: Backend;
  try {
    be = await createBackend({ backend: 'wasm', threads: 2, initialBytes: 32 << 20 });
  } catch (e) {
    t.skip(`wasm backend not available here: ${(e as Error).message}`);
    return;
  }
  try {
    const n = 1 << 16; // shared by both threads in a program
    const x = fillUniform(be.arena.floats(n), seededRng(5));
    const y = be.arena.floats(n).fill(0);
    const steps: KernelCall[] = [];
    // y = sum over i of (x scaled i times by 1.5 after i >= 1): each step depends on the last
    for (let i = 0; i < 70; i++) steps.push(['axpy', y, x, 1, n], ['scale', x, 1.5, n]);
    const x64 = toFloat64(x), y64 = new Float64Array(n);
    be.kernels.run(steps);
    for (let i = 0; i < 70; i++) for (let j = 0; j < n; j++) { y64[j] = Math.fround(y64[j]! + Math.fround(x64[j]!)); x64[j] = Math.fround(x64[j]! * 1.5); }
    sameBits(y, Float32Array.from(y64), 'y');
    sameBits(x, Float32Array.from(x64), 'x');
  } finally {
    await be.dispose();
  }
});

test('programs: a bad step is rejected before any step runs; a kernel that is not a program kernel is rejected', async (t) => {
  for (const backend of ['js', 'wasm'] as const) {
    let be: Backend;
    try {
      be = await createBackend({ backend, threads: 2, initialBytes: 8 << 20 });
    } catch (e) {
      t.skip(`${backend} backend not available here: ${(e as Error).message}`);
      continue;
    }
    try {
      const a = be.arena.floats(64).fill(1);
      const bad = be.arena.floats(8);
      const call = ['sumSquares', a, 64] as unknown as KernelCall;
      assert.throws(() => be.kernels.run([call]), /cannot be a program step/);
      if (backend === 'wasm') {
        // the wasm team checks every step first: the scale before the bad add must not have run
        assert.throws(() => be.kernels.run([['scale', a, 2, 64], ['add', bad, a, a, 64]]), RangeError);
        assert.equal(a[0], 1);
      }
    } finally {
      await be.dispose();
    }
  }
});
