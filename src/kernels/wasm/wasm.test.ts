import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WasmArena } from '../arena.js';
import { createWasmKernelsImpl, wasmFeatures, type WasmBuild, type WasmKernels } from './index.js';
import { compileKernels } from './loader.js';
import { CTRL_BYTES } from './ops.js';
import { WorkerPool } from './pool.js';

/** Deterministic values in [-1, 1). */
function fill(a: Float32Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
}

function refGemm(tA: boolean, tB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, lda: number,
  B: Float32Array, ldb: number, beta: number, C: Float64Array, ldc: number): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += (tA ? A[p * lda + i]! : A[i * lda + p]!) * (tB ? B[j * ldb + p]! : B[p * ldb + j]!);
      const c = beta === 0 ? 0 : beta * C[i * ldc + j]!;
      C[i * ldc + j] = alpha * s + c;
    }
  }
}

const builds: WasmBuild[] = wasmFeatures().relaxedSimd ? ['relaxed', 'simd'] : ['simd'];
const arena = new WasmArena({ initialBytes: 64 << 20 });

async function withKernels(build: WasmBuild, threads: number, fn: (k: WasmKernels) => void): Promise<void> {
  const k = await createWasmKernelsImpl(arena, { threads, build });
  const mark = arena.mark();
  try {
    fn(k);
  } finally {
    arena.release(mark);
    await k.dispose();
  }
}

test('the engine has wasm SIMD', () => {
  assert.equal(wasmFeatures().simd, true);
});

for (const build of builds) {
  for (const threads of [1, 2]) {
    test(`gemm ${build} build, ${threads} thread(s): all four forms on awkward shapes match a float64 reference`, async () => {
      await withKernels(build, threads, (k) => {
        assert.equal(k.build, build);
        const dims = [1, 3, 17, 63, 129];
        let checked = 0;
        for (const M of dims) for (const N of dims) for (const K of dims) {
          // every shape once in a rotating form, plus all forms for the big ones
          for (let f = 0; f < 4; f++) {
            if (!(M === 129 && N === 129) && (M + N + K + f) % 4 !== 0) continue;
            const tA = (f & 1) === 1, tB = (f & 2) === 2;
            const lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 1, ldc = N + 2;
            const A = arena.floats((tA ? K : M) * lda) as Float32Array;
            const B = arena.floats((tB ? N : K) * ldb) as Float32Array;
            const C = arena.floats(M * ldc) as Float32Array;
            fill(A, M * 7 + K); fill(B, N * 13 + K); fill(C, M + N);
            const beta = f === 3 ? 0 : 0.5;
            if (beta === 0) C.fill(NaN); // beta = 0: C must not be read
            const ref = Float64Array.from(C);
            refGemm(tA, tB, M, N, K, 0.75, A, lda, B, ldb, beta, ref, ldc);
            k.gemm(tA, tB, M, N, K, 0.75, A, lda, B, ldb, beta, C, ldc);
            for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
              const r = ref[i * ldc + j]!, got = C[i * ldc + j]!;
              if (!(Math.abs(got - r) <= 1e-5 * (1 + Math.abs(r)) * Math.sqrt(K))) {
                assert.fail(`M=${M} N=${N} K=${K} tA=${tA} tB=${tB}: C[${i},${j}] = ${got}, want ${r}`);
              }
            }
            // padding columns of C between rows are untouched
            if (N < ldc && M > 1 && beta !== 0) assert.equal(C[N], ref[N]);
            checked++;
          }
        }
        assert.ok(checked > 40);
      });
    });

    test(`gemmStridedBatched ${build} build, ${threads} thread(s) matches per-batch gemm`, async () => {
      await withKernels(build, threads, (k) => {
        for (const batch of [1, 3, 8]) {
          const M = 65, N = 33, K = 17;
          const A = arena.floats(batch * M * K + 5) as Float32Array, B = arena.floats(batch * N * K + 5) as Float32Array;
          const C = arena.floats(batch * M * N + 5) as Float32Array;
          fill(A, 1); fill(B, 2); fill(C, 3);
          const ref = Float64Array.from(C);
          k.gemmStridedBatched(false, true, M, N, K, 1, A, K, M * K, B, K, N * K, 1, C, N, M * N, batch);
          for (let b = 0; b < batch; b++) {
            const r = ref.subarray(b * M * N);
            refGemm(false, true, M, N, K, 1, A.subarray(b * M * K), K, B.subarray(b * N * K), K, 1, r, N);
          }
          for (let i = 0; i < batch * M * N; i++) assert.ok(Math.abs(C[i]! - ref[i]!) < 1e-4, `batch ${batch} at ${i}`);
          assert.equal(C[batch * M * N], ref[batch * M * N]);
        }
      });
    });
  }

  test(`exp approximation (${build} build): max relative error below 1e-6 on [-60, 88], exact 0 below, no subnormals`, async () => {
    await withKernels(build, 1, (k) => {
      const low = 1000;
      const n = 200_003;
      const x = arena.floats(n + low) as Float32Array, y = arena.floats(n + low) as Float32Array;
      for (let i = 0; i < n; i++) x[i] = -60 + (148 * i) / (n - 1);
      for (let i = 0; i < low; i++) x[n + i] = -60.001 - i; // below the flush threshold
      k.expApprox(y, x, n + low);
      for (let i = 0; i < low; i++) assert.equal(y[n + i], 0, `exp(${x[n + i]}) must flush to 0`);
      for (let i = 0; i < n; i++) assert.ok(y[i]! >= 1.1754943508222875e-38, `exp(${x[i]}) = ${y[i]} is subnormal`);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const want = Math.exp(x[i]!);
        worst = Math.max(worst, Math.abs(y[i]! - want) / want);
      }
      assert.ok(worst < 1e-6, `max relative error ${worst}`);
      assert.ok(worst > 0, 'an approximation in float32 cannot be exact everywhere');
    });
  });
}

test('gemm blocking edges: K over several K blocks, N over several column blocks, M over several row blocks', async () => {
  for (const threads of [1, 2]) {
    await withKernels(builds[0]!, threads, (k) => {
      const cases: Array<[number, number, number, boolean, boolean]> = [
        [13, 21, 1001, true, false], // 3 K blocks of 334
        [7, 2100, 5, false, true], // 2 column blocks (NC = 2048)
        [250, 9, 770, false, false], // 3 row blocks of A and 3 K blocks
      ];
      for (const [M, N, K, tA, tB] of cases) {
        const lda = tA ? M : K, ldb = tB ? K : N;
        const A = arena.floats(M * K) as Float32Array, B = arena.floats(K * N) as Float32Array, C = arena.floats(M * N) as Float32Array;
        fill(A, M); fill(B, N); fill(C, K);
        const ref = Float64Array.from(C);
        refGemm(tA, tB, M, N, K, 1, A, lda, B, ldb, -1, ref, N);
        k.gemm(tA, tB, M, N, K, 1, A, lda, B, ldb, -1, C, N);
        for (let i = 0; i < M * N; i++) {
          assert.ok(Math.abs(C[i]! - ref[i]!) < 1e-5 * Math.sqrt(K) * (1 + Math.abs(ref[i]!)), `M=${M} N=${N} K=${K} threads=${threads}: C[${i}] = ${C[i]}, want ${ref[i]}`);
        }
      }
    });
  }
});

test('2 threads: gemm split by columns (wide C), shared batches, and per-batch splits match the reference', async () => {
  await withKernels(builds[0]!, 2, (k) => {
    const cases: Array<[number, number, number, number, boolean, boolean]> = [
      // batch, M, N, K, transA, transB
      [1, 40, 300, 100, false, false], // columns
      [1, 45, 270, 99, true, true],
      [8, 64, 64, 64, false, true], // batches claimed from the counter
      [3, 130, 100, 100, true, false], // fewer batches than 2x threads: each product split
    ];
    for (const [batch, M, N, K, tA, tB] of cases) {
      const lda = tA ? M : K, ldb = tB ? K : N;
      const sA = M * K + 3, sB = K * N + 5, sC = M * N + 7;
      const A = arena.floats(batch * sA) as Float32Array, B = arena.floats(batch * sB) as Float32Array;
      const C = arena.floats(batch * sC) as Float32Array;
      fill(A, batch + M); fill(B, N + K); fill(C, 9);
      const ref = Float64Array.from(C);
      for (let b = 0; b < batch; b++) {
        refGemm(tA, tB, M, N, K, 1, A.subarray(b * sA), lda, B.subarray(b * sB), ldb, 0.5, ref.subarray(b * sC), N);
      }
      if (batch === 1) k.gemm(tA, tB, M, N, K, 1, A, lda, B, ldb, 0.5, C, N);
      else k.gemmStridedBatched(tA, tB, M, N, K, 1, A, lda, sA, B, ldb, sB, 0.5, C, N, sC, batch);
      for (let i = 0; i < C.length; i++) {
        assert.ok(Math.abs(C[i]! - ref[i]!) < 1e-4, `batch=${batch} M=${M} N=${N} K=${K}: C[${i}] = ${C[i]}, want ${ref[i]}`);
      }
    }
  });
});

test('threaded kernels agree with the calling thread alone (row splits, dweight partials, column split of embedding backward)', async () => {
  const one = await createWasmKernelsImpl(arena, { threads: 1 });
  const two = await createWasmKernelsImpl(arena, { threads: 2 });
  const mark = arena.mark();
  try {
    const N = 256, C = 384, V = 50;
    const inp = arena.floats(N * C) as Float32Array, w = arena.floats(C) as Float32Array, dout = arena.floats(N * C) as Float32Array;
    fill(inp, 5); fill(w, 6); fill(dout, 7);
    const tokens = arena.ints(N);
    for (let i = 0; i < N; i++) tokens[i] = (i * 7) % V; // repeated ids
    const runs = [one, two].map((k) => {
      const out = arena.floats(N * C) as Float32Array, rstd = arena.floats(N) as Float32Array;
      const dinp = arena.floats(N * C) as Float32Array, dw = arena.floats(C) as Float32Array;
      const dtable = arena.floats(V * C) as Float32Array;
      dw.fill(1); dtable.fill(0.5);
      k.rmsnormForward(out, rstd, inp, w, N, C, 1e-5);
      k.rmsnormBackward(dinp, dw, dout, inp, w, rstd, N, C);
      k.embeddingBackward(dtable, dout, tokens, N, C);
      const ss = k.sumSquares(inp, N * C);
      return { out, dinp, dw, dtable, ss };
    });
    const [a, b] = runs as [typeof runs[0], typeof runs[0]];
    assert.deepEqual(b.out, a.out);
    assert.deepEqual(b.dinp, a.dinp);
    assert.deepEqual(b.dtable, a.dtable);
    for (let j = 0; j < C; j++) assert.ok(Math.abs(a.dw[j]! - b.dw[j]!) < 1e-4, `dweight[${j}]`);
    assert.ok(Math.abs(a.ss - b.ss) < 1e-9 * a.ss);
    let ss = 0;
    for (let i = 0; i < N * C; i++) ss += inp[i]! * inp[i]!;
    // float32 only within 32-element blocks: far better than float32 over 98k terms (~1e-4)
    assert.ok(Math.abs(a.ss - ss) < 1e-6 * ss, `sumSquares ${a.ss} vs ${ss}`);
    // dtable rows: 0.5 + sum of dout rows with that id
    const v = 3;
    let want = 0.5;
    for (let i = 0; i < N; i++) if (tokens[i] === v) want += dout[i * C + 10]!;
    assert.ok(Math.abs(b.dtable[v * C + 10]! - want) < 1e-5);
  } finally {
    arena.release(mark);
    await one.dispose();
    await two.dispose();
  }
});

test('softmax, cross-entropy, swiglu and rope against direct formulas (2 threads)', async () => {
  await withKernels(builds[0]!, 2, (k) => {
    // causal softmax: rows sum to 1, zeros above the diagonal, values match exp formula
    const T = 37, nMat = 3, scale = 0.3;
    const att = arena.floats(nMat * T * T) as Float32Array;
    fill(att, 11);
    const raw = Float64Array.from(att);
    k.softmaxCausalForward(att, nMat, T, scale);
    for (let m = 0; m < nMat; m++) for (let t = 0; t < T; t++) {
      const row = (m * T + t) * T;
      let mx = -Infinity;
      for (let j = 0; j <= t; j++) mx = Math.max(mx, scale * raw[row + j]!);
      let s = 0;
      for (let j = 0; j <= t; j++) s += Math.exp(scale * raw[row + j]! - mx);
      for (let j = 0; j < T; j++) {
        const want = j <= t ? Math.exp(scale * raw[row + j]! - mx) / s : 0;
        assert.ok(Math.abs(att[row + j]! - want) < 1e-6, `softmax m=${m} t=${t} j=${j}`);
      }
    }
    // cross-entropy fused, in place
    const N = 9, V = 1031;
    const logits = arena.floats(N * V) as Float32Array, losses = arena.floats(N) as Float32Array;
    const targets = arena.ints(N);
    fill(logits, 12);
    for (let i = 0; i < N * V; i++) logits[i] = logits[i]! * 8;
    for (let i = 0; i < N; i++) targets[i] = (i * 101) % V;
    const orig = Float64Array.from(logits);
    k.crossEntropyForwardBackward(logits, losses, logits, targets, N, V, 0.5);
    for (let i = 0; i < N; i++) {
      let mx = -Infinity;
      for (let v = 0; v < V; v++) mx = Math.max(mx, orig[i * V + v]!);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(orig[i * V + v]! - mx);
      const lse = mx + Math.log(s);
      assert.ok(Math.abs(losses[i]! - (lse - orig[i * V + targets[i]!]!)) < 1e-5, `loss ${i}`);
      for (let v = 0; v < V; v += 17) {
        const want = 0.5 * (Math.exp(orig[i * V + v]! - lse) - (v === targets[i] ? 1 : 0));
        assert.ok(Math.abs(logits[i * V + v]! - want) < 1e-6, `dlogits ${i},${v}`);
      }
    }
    targets[2] = V;
    assert.throws(() => k.crossEntropyForward(losses, logits, targets, N, V), /targets\[2\]/);
    // swiglu forward and backward
    const R = 5, F = 19;
    const h = arena.floats(2 * R * F) as Float32Array, out = arena.floats(R * F) as Float32Array;
    const dy = arena.floats(R * F) as Float32Array, dh = arena.floats(2 * R * F) as Float32Array;
    fill(h, 13); fill(dy, 14);
    for (let i = 0; i < h.length; i++) h[i] = h[i]! * 6;
    k.swigluForward(out, h, R, F);
    k.swigluBackward(dh, dy, h, R, F);
    for (let i = 0; i < R; i++) for (let j = 0; j < F; j++) {
      const g = h[i * 2 * F + j]!, u = h[i * 2 * F + F + j]!, d = dy[i * F + j]!;
      const sg = 1 / (1 + Math.exp(-g));
      assert.ok(Math.abs(out[i * F + j]! - g * sg * u) < 1e-5);
      assert.ok(Math.abs(dh[i * 2 * F + j]! - d * u * sg * (1 + g * (1 - sg))) < 1e-5);
      assert.ok(Math.abs(dh[i * 2 * F + F + j]! - d * g * sg) < 1e-5);
    }
    // rope: forward then backward is the identity; forward matches the formula
    const Tr = 6, H = 2, D = 10, stride = 25, rows = 12;
    const cos = arena.floats(Tr * D / 2) as Float32Array, sin = arena.floats(Tr * D / 2) as Float32Array;
    for (let t = 0; t < Tr; t++) for (let i = 0; i < D / 2; i++) {
      const ang = t * Math.pow(10000, -2 * i / D);
      cos[t * D / 2 + i] = Math.cos(ang); sin[t * D / 2 + i] = Math.sin(ang);
    }
    const x = arena.floats(rows * stride) as Float32Array;
    fill(x, 15);
    const x0 = Float32Array.from(x);
    k.ropeForward(x, rows, Tr, H, D, stride, cos, sin);
    const r = 8, hh = 1, i = 3, t = r % Tr;
    const a = x0[r * stride + hh * D + i]!, b = x0[r * stride + hh * D + i + D / 2]!;
    assert.ok(Math.abs(x[r * stride + hh * D + i]! - (a * cos[t * D / 2 + i]! - b * sin[t * D / 2 + i]!)) < 1e-6);
    assert.equal(x[r * stride + H * D], x0[r * stride + H * D], 'columns past nHeads*D untouched');
    k.ropeBackward(x, rows, Tr, H, D, stride, cos, sin);
    for (let j = 0; j < x.length; j++) assert.ok(Math.abs(x[j]! - x0[j]!) < 1e-6);
  });
});

test('rejects arrays that are not float32 views of the arena', async () => {
  await withKernels(builds[0]!, 1, (k) => {
    const x = arena.floats(8);
    assert.throws(() => k.scale(new Float32Array(8), 2, 8), TypeError);
    assert.throws(() => k.add(x, x, new Float64Array(8), 8), TypeError);
    assert.throws(() => k.scale(x, 2, 9), RangeError);
  });
});

test('a process using 2 threads exits by itself, after dispose and without it', () => {
  const kernelsUrl = new URL('./index.js', import.meta.url).href;
  const arenaUrl = new URL('../arena.js', import.meta.url).href;
  for (const dispose of [true, false]) {
    const script = `
      const { WasmArena } = await import(${JSON.stringify(arenaUrl)});
      const { createWasmKernelsImpl } = await import(${JSON.stringify(kernelsUrl)});
      const arena = new WasmArena();
      const k = await createWasmKernelsImpl(arena, { threads: 2 });
      const a = arena.floats(256 * 256);
      a.fill(1);
      k.gemm(false, false, 256, 256, 256, 1, a, 256, a, 256, 0, arena.floats(256 * 256), 256);
      ${dispose ? 'await k.dispose();' : ''}
      console.log('done');`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pocketlm-wasm-exit-'));
    const file = path.join(dir, 'exit.mjs');
    writeFileSync(file, script);
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT; // not a test file: run it as a plain script
    const r = spawnSync(process.execPath, [file], { timeout: 20_000, encoding: 'utf8', env });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.error, undefined, `dispose=${dispose}: ${String(r.error)}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /done/);
  }
});

test('pool: a command is run by exactly one side, the worker or the caller that cancelled it', async () => {
  const { module } = compileKernels();
  const ctrl = arena.floats(CTRL_BYTES / 4).byteOffset;
  const pool = await WorkerPool.start({ size: 1, module, memory: arena.memory, arenaBase: arena.base, ctrl, spinMs: 0 });
  const x = arena.floats(64) as Float32Array;
  let cancelled = 0;
  try {
    for (let i = 0; i < 300; i++) {
      x.fill(1);
      pool.start(0, WorkerPool.opIndex('scale'), [x.byteOffset, 2, 64]);
      if (i % 3 === 0) for (let spin = 0; spin < 20_000; spin++); // sometimes let the worker start first
      if (pool.tryCancel(0)) {
        cancelled++;
        // the worker must never touch a command it did not claim
        for (let spin = 0; spin < 2_000; spin++);
        assert.equal(x[0], 1, `command ${i} was cancelled but ran`);
      } else {
        pool.wait(0);
        assert.equal(x[63], 2, `command ${i} was claimed by the worker but not finished`);
      }
    }
    // the last commands went through normally afterwards
    x.fill(1);
    pool.start(0, WorkerPool.opIndex('scale'), [x.byteOffset, 3, 64]);
    if (!pool.tryCancel(0)) pool.wait(0);
    else assert.equal(x[0], 1);
  } finally {
    await pool.dispose();
  }
  // both outcomes are legal; which one happens depends on the scheduler
  void cancelled;
});

test('pool: a parked worker stops spinning at once and still runs its next command', async () => {
  const { module } = compileKernels();
  const ctrl = arena.floats(CTRL_BYTES / 4).byteOffset;
  // a 10 s spin: unparked, the worker would burn a core for the whole measurement
  const pool = await WorkerPool.start({ size: 1, module, memory: arena.memory, arenaBase: arena.base, ctrl, spinMs: 10_000 });
  const x = arena.floats(64) as Float32Array;
  try {
    const cpuOver = (ms: number): number => {
      const c0 = process.cpuUsage();
      const until = Date.now() + ms;
      while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1000;
    };
    x.fill(1);
    pool.start(0, WorkerPool.opIndex('scale'), [x.byteOffset, 2, 64]);
    pool.wait(0);
    // On a loaded machine the spinning worker may not get its core in one window: take the
    // best of a few (the spin lasts 10 s, far longer than these windows).
    let spinning = 0;
    for (let i = 0; i < 5 && spinning <= 75; i++) spinning = Math.max(spinning, cpuOver(150));
    pool.park();
    const parked = cpuOver(150);
    // the caller sleeps in both windows: the CPU time is the worker's
    assert.ok(spinning > 75, `unparked worker used ${spinning} ms of CPU in 150 ms`);
    assert.ok(parked < 40, `parked worker used ${parked} ms of CPU in 150 ms`);
    // the next command wakes it (not cancelled: the worker itself must run it)
    pool.start(0, WorkerPool.opIndex('scale'), [x.byteOffset, 3, 64]);
    pool.wait(0);
    assert.equal(x[0], 6);
    assert.equal(x[63], 6);
  } finally {
    await pool.dispose();
  }
});

// Subnormal floats make x86 arithmetic ~100x slower; sharp attention and confident
// predictions used to produce them (see vexp in assembly/simd.ts), slowing training 10x.
test('sharp softmax and cross-entropy gradients produce no subnormal numbers', async () => {
  const MIN_NORMAL = 1.1754943508222875e-38;
  const isSubnormal = (v: number) => v !== 0 && Math.abs(v) < MIN_NORMAL;
  await withKernels(builds[0]!, 1, (k) => {
    const T = 64, nMat = 2;
    const att = arena.floats(nMat * T * T) as Float32Array;
    for (let i = 0; i < att.length; i++) att[i] = ((i * 7919) % 400) - 200; // spreads of up to 400
    k.softmaxCausalForward(att, nMat, T, 1.0);
    assert.equal(att.filter(isSubnormal).length, 0, 'softmax wrote subnormals');
    const N = 16, V = 512;
    const logits = arena.floats(N * V) as Float32Array, losses = arena.floats(N) as Float32Array;
    const targets = arena.ints(N);
    for (let i = 0; i < logits.length; i++) logits[i] = ((i * 104729) % 170) - 85;
    for (let i = 0; i < N; i++) targets[i] = (i * 31) % V;
    k.crossEntropyForwardBackward(logits, losses, logits, targets, N, V, 1 / 8192);
    assert.equal(logits.filter(isSubnormal).length, 0, 'cross-entropy gradient has subnormals');
  });
});
