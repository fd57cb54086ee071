import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import type { Arena } from './arena.js';
import { createBackend, defaultThreads, type Backend } from './index.js';
import type { BackendName, Kernels } from './types.js';
import { OPENBLAS_THREAD_TIMEOUT_LOG2 } from './native/index.js';
import { geomean, modelGemmShapes, type GemmShape } from './wasm/measure.js';

const execFileAsync = promisify(execFile);

/** One measured case; exactly one of gflops / gbps is set. */
export interface BenchResult {
  backend: string;
  threads: number;
  op: string;
  shape: string;
  gflops?: number;
  gbps?: number;
}

export interface KernelBenchOptions {
  json: boolean;
  /** Default: js, wasm, native (those available). numpy runs when native or numpy is listed. */
  backends?: string[];
  /** Default: 1, 2 and all logical CPUs. */
  threads?: number[];
  /** Fewer shapes and shorter timing: a smoke run of a few seconds per backend. */
  quick?: boolean;
}

const ALL_BACKENDS: readonly BackendName[] = ['js', 'wasm', 'native'];

/**
 * Seconds per call of `fn`: one warm-up call (excluded), then repeated until `minSeconds`
 * of wall time have elapsed (at least one timed call).
 */
export function timePerCall(fn: () => void, minSeconds: number): number {
  fn();
  let reps = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    fn();
    reps++;
    elapsed = (performance.now() - t0) / 1e3;
  } while (elapsed < minSeconds);
  return elapsed / reps;
}

export function shapeLabel(s: GemmShape): string {
  return `${s.M}x${s.N}x${s.K}`;
}

/** Deterministic values in [-0.5, 0.5) (no RNG state needed, and no denormals). */
function fill(x: Float32Array | Float64Array, salt: number): void {
  for (let i = 0; i < x.length; i++) x[i] = (((i + salt) * 7919) % 1000) / 1000 - 0.5;
}

/** GFLOP/s of one product shape (allocates in the arena and releases it). */
export function benchGemm(k: Kernels, arena: Arena, s: GemmShape, minSeconds: number): number {
  const mark = arena.mark();
  try {
    const tA = s.form === 'tn', tB = s.form === 'nt';
    const A = arena.floats(s.M * s.K), B = arena.floats(s.K * s.N), C = arena.floats(s.M * s.N);
    fill(A, 1);
    fill(B, 2);
    const lda = tA ? s.M : s.K, ldb = tB ? s.K : s.N;
    const sec = timePerCall(() => k.gemm(tA, tB, s.M, s.N, s.K, 1, A, lda, B, ldb, 0, C, s.N), minSeconds);
    return (2 * s.M * s.N * s.K) / sec / 1e9;
  } finally {
    arena.release(mark);
  }
}

/** An elementwise case: what it runs, on which shape, and the bytes one call must move. */
interface ElementwiseCase {
  op: string;
  shape: string;
  bytes: number;
  setup(arena: Arena): () => void;
}

/** The non-matmul kernels a training step spends its time in, at the default model's sizes. */
export function elementwiseCases(k: Kernels, rows: number, d: number): ElementwiseCase[] {
  const F = 4 * d, V = 1024, T = 256, heads = Math.max(1, d / 32), nMat = (rows / T) * heads;
  const nParams = 12 * 6 * d * d; // ~6 layers of a width-d model
  return [
    {
      op: 'rmsnorm', shape: `${rows}x${d}`, bytes: 2 * rows * d * 4,
      setup: (a) => {
        const out = a.floats(rows * d), rstd = a.floats(rows), inp = a.floats(rows * d), w = a.floats(d);
        fill(inp, 3);
        fill(w, 4);
        return () => k.rmsnormForward(out, rstd, inp, w, rows, d, 1e-5);
      },
    },
    {
      op: 'softmax', shape: `${nMat}x${T}x${T}`, bytes: 2 * nMat * T * T * 4,
      setup: (a) => {
        const att = a.floats(nMat * T * T);
        fill(att, 5);
        // In place: re-running on its own output stays finite, so no refill is needed.
        return () => k.softmaxCausalForward(att, nMat, T, 0.125);
      },
    },
    {
      op: 'swiglu', shape: `${rows}x${F}`, bytes: 3 * rows * F * 4,
      setup: (a) => {
        const out = a.floats(rows * F), h = a.floats(rows * 2 * F);
        fill(h, 6);
        return () => k.swigluForward(out, h, rows, F);
      },
    },
    {
      op: 'cross-entropy', shape: `${rows}x${V}`, bytes: 2 * rows * V * 4,
      setup: (a) => {
        const logits = a.floats(rows * V), dlogits = a.floats(rows * V), losses = a.floats(rows), targets = a.ints(rows);
        fill(logits, 7);
        for (let i = 0; i < rows; i++) targets[i] = (i * 31) % V;
        return () => k.crossEntropyForwardBackward(dlogits, losses, logits, targets, rows, V, 1 / rows);
      },
    },
    {
      op: 'adamw', shape: `${nParams}`, bytes: 7 * nParams * 4,
      setup: (a) => {
        const p = a.floats(nParams), g = a.floats(nParams), m = a.floats(nParams), v = a.floats(nParams);
        fill(p, 8);
        fill(g, 9);
        return () => k.adamwUpdate(p, g, m, v, nParams, 1e-4, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05);
      },
    },
  ];
}

/** GB/s of one elementwise case. */
export function benchElementwise(arena: Arena, c: ElementwiseCase, minSeconds: number): number {
  const mark = arena.mark();
  try {
    const fn = c.setup(arena);
    return c.bytes / timePerCall(fn, minSeconds) / 1e9;
  } finally {
    arena.release(mark);
  }
}

/** The product shapes one backend runs: the js oracle is ~50x slower, so it gets the small ones. */
function shapesFor(backend: string, quick: boolean): GemmShape[] {
  if (quick) return modelGemmShapes([512], [192]).filter((_, i) => backend !== 'js' || i < 6);
  if (backend === 'js') return modelGemmShapes([512], [128, 192]);
  return modelGemmShapes();
}

function formatLine(r: BenchResult): string {
  const value = r.gflops !== undefined ? `${r.gflops.toFixed(1).padStart(7)} GFLOP/s` : `${r.gbps!.toFixed(2).padStart(7)} GB/s`;
  return `${r.backend.padEnd(7)} t=${String(r.threads).padEnd(2)} ${r.op.padEnd(19)} ${r.shape.padEnd(16)} ${value}`;
}

/** Whether `python3 -c "import numpy"` works here. */
async function numpyAvailable(): Promise<boolean> {
  try {
    await execFileAsync('python3', ['-c', 'import numpy'], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * numpy in a child process (scripts/numpy-matmul-bench.py --serve) answering one shape at
 * a time, so numpy and the native backend alternate shape by shape: on a shared, noisy
 * machine both see the same load. Its OpenBLAS gets `threads` threads and the same idle-spin
 * limit as ours (OPENBLAS_THREAD_TIMEOUT), so neither's idle threads steal the other's cores.
 */
class NumpyServer {
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    child.stderr.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-2000); });
    // A failed spawn ends stdout; measure() then reports it.
    child.on('error', (e) => { this.stderr += e.message; });
    child.stdin.on('error', () => {}); // EPIPE after the child died: measure() reports it

  }

  static start(threads: number, minSeconds: number): NumpyServer {
    const script = path.join(packageRoot(), 'scripts', 'numpy-matmul-bench.py');
    const env = {
      ...process.env,
      OPENBLAS_NUM_THREADS: String(threads),
      OPENBLAS_THREAD_TIMEOUT: process.env.OPENBLAS_THREAD_TIMEOUT ?? String(OPENBLAS_THREAD_TIMEOUT_LOG2),
    };
    const child = spawn('python3', [script, '--serve', '--threads', String(threads), '--seconds', String(minSeconds)], { env });
    return new NumpyServer(child);
  }

  /** One shape's result; throws with numpy's last stderr line if the child died. */
  async measure(s: GemmShape): Promise<BenchResult> {
    if (this.child.stdin.writable) this.child.stdin.write(`${JSON.stringify([s.form, s.M, s.N, s.K])}\n`);
    const next = await this.lines.next();
    if (next.done) {
      const why = this.stderr.trim().split('\n').pop() || 'it exited';
      throw new Error(`numpy benchmark stopped: ${why}`);
    }
    return JSON.parse(next.value) as BenchResult;
  }

  close(): void {
    this.child.stdin.end();
  }
}

/** Summary line per backend/threads: geomeans over the product shapes and elementwise kernels. */
function summaries(results: BenchResult[]): BenchResult[] {
  const keys = [...new Set(results.map((r) => `${r.backend}\u0000${r.threads}`))];
  const out: BenchResult[] = [];
  for (const key of keys) {
    const [backend, t] = key.split('\u0000') as [string, string];
    const mine = results.filter((r) => r.backend === backend && r.threads === Number(t));
    const g = mine.filter((r) => r.gflops !== undefined && r.op.startsWith('gemm')).map((r) => r.gflops!);
    const b = mine.filter((r) => r.gbps !== undefined).map((r) => r.gbps!);
    if (g.length) out.push({ backend, threads: Number(t), op: 'geomean-gemm', shape: `${g.length} shapes`, gflops: geomean(g) });
    if (b.length) out.push({ backend, threads: Number(t), op: 'geomean-elementwise', shape: `${b.length} kernels`, gbps: geomean(b) });
  }
  return out;
}

/**
 * Native vs numpy geomean ratio per thread count, over the shapes both ran (the target
 * is native >= 90% of numpy on the same shapes, measured in the same run).
 */
export function nativeVsNumpy(results: BenchResult[]): Array<{ threads: number; native: number; numpy: number; ratio: number; shapes: number }> {
  const out = [];
  for (const t of [...new Set(results.filter((r) => r.backend === 'numpy').map((r) => r.threads))]) {
    const gemms = results.filter((r) => r.op.startsWith('gemm-') && r.gflops !== undefined && r.threads === t);
    const np = new Map(gemms.filter((r) => r.backend === 'numpy').map((r) => [`${r.op} ${r.shape}`, r.gflops!]));
    const pairs = gemms
      .filter((r) => r.backend === 'native' && np.has(`${r.op} ${r.shape}`))
      .map((r) => [r.gflops!, np.get(`${r.op} ${r.shape}`)!] as const);
    if (!pairs.length) continue;
    const native = geomean(pairs.map((p) => p[0])), numpy = geomean(pairs.map((p) => p[1]));
    out.push({ threads: t, native, numpy, ratio: native / numpy, shapes: pairs.length });
  }
  return out;
}

/**
 * `pocketlm bench kernels`: GFLOP/s of every backend and thread count on the model's
 * product shapes (forms nn, tn, nt), GB/s of the main elementwise kernels, numpy on the
 * same shapes when python3 has it, and geomeans at the end. One backend exists at a time
 * (its worker pool and BLAS threads are gone before the next starts). Writes lines through
 * `out`: a table, or with `json` one JSON object per line
 * ({backend, threads, op, shape, gflops|gbps}; notes as {note}; the native/numpy
 * comparison as {backend: "native/numpy", threads, op: "ratio-gemm", shape, ratio}).
 */
export async function runKernelBench(opts: KernelBenchOptions, out: (line: string) => void): Promise<void> {
  const backends = opts.backends ?? [...ALL_BACKENDS];
  for (const b of backends) {
    if (b !== 'numpy' && !ALL_BACKENDS.includes(b as BackendName)) {
      throw new UserError(`bench kernels: unknown backend "${b}" (choose from js, wasm, native, numpy)`);
    }
  }
  const threadList = [...new Set(opts.threads ?? [1, 2, defaultThreads()])];
  if (threadList.some((t) => !Number.isInteger(t) || t < 1)) throw new UserError('bench kernels: thread counts must be positive integers');
  const quick = opts.quick ?? false;
  const minSeconds = quick ? 0.05 : 0.2;
  const results: BenchResult[] = [];
  const emit = (r: BenchResult): void => {
    results.push(r);
    out(opts.json ? JSON.stringify(r) : formatLine(r));
  };
  const note = (msg: string): void => out(opts.json ? JSON.stringify({ note: msg }) : `# ${msg}`);

  // numpy is the yardstick for the native backend, so it runs whenever native does.
  const wantNumpy = backends.includes('numpy') || backends.includes('native');
  const numpyOk = wantNumpy && (await numpyAvailable());
  if (wantNumpy && !numpyOk) note('numpy comparison skipped: python3 with numpy not found');
  const numpyDone = new Set<number>();

  for (const name of backends.filter((b): b is BackendName => b !== 'numpy')) {
    // The js oracle is single-threaded whatever it is given.
    for (const threads of name === 'js' ? [1] : threadList) {
      let backend: Backend;
      try {
        backend = await createBackend({ backend: name, threads });
      } catch (e) {
        note(`${name} skipped: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
        break;
      }
      // numpy runs the native backend's shapes alternately with it (same shapes, same load).
      let numpy = name === 'native' && numpyOk ? NumpyServer.start(threads, minSeconds) : null;
      try {
        const { kernels, arena } = backend;
        for (const s of shapesFor(name, quick)) {
          emit({ backend: name, threads, op: `gemm-${s.form}`, shape: shapeLabel(s), gflops: benchGemm(kernels, arena, s, minSeconds) });
          if (!numpy) continue;
          try {
            emit(await numpy.measure(s));
          } catch (e) {
            note(`numpy comparison stopped: ${(e as Error).message}`);
            numpy.close();
            numpy = null;
          }
        }
        if (numpy) numpyDone.add(threads);
        const rows = name === 'js' || quick ? 512 : 2048;
        for (const c of elementwiseCases(kernels, rows, 192)) {
          emit({ backend: name, threads, op: c.op, shape: c.shape, gbps: benchElementwise(arena, c, minSeconds) });
        }
      } finally {
        numpy?.close();
        await backend.dispose();
      }
    }
  }

  // numpy on its own when the native backend did not run.
  if (numpyOk) {
    for (const threads of threadList.filter((t) => !numpyDone.has(t))) {
      const numpy = NumpyServer.start(threads, minSeconds);
      try {
        for (const s of shapesFor('native', quick)) emit(await numpy.measure(s));
      } catch (e) {
        note(`numpy comparison stopped: ${(e as Error).message}`);
      } finally {
        numpy.close();
      }
    }
  }

  for (const s of summaries(results)) {
    results.push(s);
    out(opts.json ? JSON.stringify(s) : formatLine(s));
  }
  for (const c of nativeVsNumpy(results)) {
    const msg = `native/numpy at ${c.threads} thread(s): ${c.native.toFixed(1)} / ${c.numpy.toFixed(1)} GFLOP/s = ${(100 * c.ratio).toFixed(0)}% over ${c.shapes} shapes`;
    out(opts.json ? JSON.stringify({ backend: 'native/numpy', threads: c.threads, op: 'ratio-gemm', shape: `${c.shapes} shapes`, ratio: c.ratio }) : `# ${msg}`);
  }
}
