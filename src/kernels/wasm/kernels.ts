import type { WasmArena } from '../arena.js';
import { PROGRAM_KERNELS, type FloatArray, type KernelCall, type KernelProgram, type Kernels } from '../types.js';
import { compileKernels, instantiateKernels, type WasmBuild, type WasmExports, type WasmFn } from './loader.js';
import { CTRL_BYTES, MAX_ARGS, POOL_OPS, PROGRAM_OP, type PoolOp } from './ops.js';
import { ARGS_AT, MAX_CHUNKS, MAX_STEPS, PROGRAM_BYTES, runProgram, STEP_CHUNKS, STEP_CLAIM, STEP_DONE, STEP_ERR, STEP_FIRST, STEP_INTS, STEP_OP, STEP_SCRATCH_ARG } from './program.js';
import { WorkerPool } from './pool.js';
import { DROPOUT_WEYL } from '../js/dropout.js';

/** Work (multiply-adds for gemm, elements otherwise) below which one thread is faster than a dispatch. */
const GEMM_PAR_MACS = 1 << 20;
const HEAVY_PAR_ELEMS = 1 << 15; // exp per element: softmax, swiglu, cross-entropy
const LIGHT_PAR_ELEMS = 1 << 17; // a few flops per element: add, axpy, norms, optimizers
/**
 * In a program the team is awake already (no dispatch to pay, only a barrier of a microsecond
 * or so), so a step is shared from a smaller size on.
 */
const PROGRAM_PAR_DIVISOR = 8;

/** A program step as written to the program block: op index, each chunk's arguments. */
interface ProgramStep {
  op: number;
  chunks: number[][];
  /** The argument each thread replaces by its own scratch, or -1. */
  scratchArg: number;
}

/** Position of the scratch pointer among the wasm gemm's arguments, and among gemmSwiglu's. */
const GEMM_SCRATCH_ARG = 13;
const GEMM_SWIGLU_SCRATCH_ARG = 12;

/**
 * A row- or range-split kernel call: `op` over [0, n) in chunks aligned to `align`, shared when
 * its work (`elems`, weighted as `heavy` or not) pays for it; argsFor(lo, hi, t) gives a chunk's
 * wasm arguments on thread t. The per-kernel path and programs cut the same way.
 */
interface SplitWork {
  op: PoolOp;
  n: number;
  align: number;
  elems: number;
  heavy: boolean;
  argsFor: (lo: number, hi: number, t: number) => number[];
}

/** Byte offset of a float32 view in the shared memory (the wasm address of its first element). */
function fptr(a: FloatArray, what: string): number {
  if (!(a instanceof Float32Array) || !(a.buffer instanceof SharedArrayBuffer)) {
    throw new TypeError(`wasm kernels: ${what} must be a Float32Array view of the arena`);
  }
  return a.byteOffset;
}

function iptr(a: Int32Array, what: string): number {
  if (!(a instanceof Int32Array) || !(a.buffer instanceof SharedArrayBuffer)) {
    throw new TypeError(`wasm kernels: ${what} must be an Int32Array view of the arena`);
  }
  return a.byteOffset;
}

/** Elements a row-major operand spans: rows-1 full strides plus one row. */
function need(rows: number, cols: number, ld: number): number {
  return rows <= 0 || cols <= 0 ? 0 : (rows - 1) * ld + cols;
}

/** Each stored row must hold a full row of the operand. */
function checkLd(ld: number, cols: number, what: string): void {
  if (!(ld >= Math.max(1, cols))) throw new RangeError(`wasm kernels: ${what} = ${ld} is less than the row length ${cols}`);
}

function checkLen(a: FloatArray, n: number, what: string): void {
  if (a.length < n) throw new RangeError(`wasm kernels: ${what} has ${a.length} elements, needs ${n}`);
}

export interface WasmKernelOptions {
  threads: number;
  /** Force a build (tests compare both); default: relaxed when the engine has it. */
  build?: WasmBuild;
}

/** Kernels plus what tests and benchmarks want to know about them. */
export interface WasmKernels extends Kernels {
  readonly build: WasmBuild;
  /** e^x as the softmax/SiLU/cross-entropy kernels compute it (for accuracy tests). */
  expApprox(out: Float32Array, x: Float32Array, n: number): void;
  /**
   * Makes idle worker threads sleep now instead of finishing their short spin: call before
   * another thread pool (native BLAS) takes the cores. Harmless when there are no workers.
   */
  parkWorkers(): void;
}

/**
 * The wasm SIMD backend. Reserves from the arena, once: one gemm packing scratch per thread
 * (about 2.2 MB each; workers also use theirs for rmsnorm dweight partial sums) and one
 * 256-byte command block per worker. Work is split across threads only above a size
 * where it pays for a dispatch (~tens of microseconds): gemm by rows or columns of C
 * (batches for the strided batched form), row kernels by rows, elementwise by ranges,
 * embedding backward by columns (so repeated tokens never race).
 */
export async function createWasmKernelsImpl(arena: WasmArena, opts: WasmKernelOptions): Promise<WasmKernels> {
  const threads = Math.max(1, Math.floor(opts.threads));
  const { module, build } = compileKernels(opts.build);
  const wasm: WasmExports = instantiateKernels(module, arena.memory, arena.base);
  const scratchBytes = wasm.gemmScratchBytes!();
  const scratch: number[] = [];
  for (let t = 0; t < threads; t++) scratch.push(arena.floats(scratchBytes / 4).byteOffset);
  const ctrl = arena.floats((threads * CTRL_BYTES) / 4).byteOffset;
  // the chunk counter of shared gemms (its own cache line)
  const counter = arena.ints(16);
  // the team's program block (program.ts; arena views are 64-byte aligned, as its float64s need)
  const program = arena.floats(PROGRAM_BYTES / 4);
  const pool = threads > 1
    ? await WorkerPool.start({ size: threads - 1, module, memory: arena.memory, arenaBase: arena.base, ctrl })
    : null;
  return new WasmKernelSet(wasm, pool, threads, scratch, build, counter, scratchBytes, program);
}

/**
 * Rows (or columns) of C per chunk of a shared product: about 4 chunks per thread, at least
 * minChunk, a multiple of align. With `noSingleRow` (rows of a product whose A is not
 * transposed) a last chunk of exactly one row is avoided: the wasm gemm computes a single row by
 * its unpacked row kernel, whose sums round differently, and a product should give the same
 * bits however it is shared (per kernel, in a program, on one thread).
 */
function gemmChunk(total: number, threads: number, align: number, minChunk: number, noSingleRow: boolean): number {
  const roundUp = (x: number): number => Math.ceil(x / align) * align;
  let chunk = Math.max(roundUp(total / (4 * threads)), minChunk);
  if (Math.ceil(total / chunk) < threads) chunk = roundUp(total / threads);
  while (noSingleRow && total % chunk === 1) chunk += align;
  return chunk;
}

/** Splits [0, n) into at most `parts` chunks whose starts are multiples of `align`. */
function chunks(n: number, parts: number, align: number): number[] {
  const size = Math.ceil(n / parts / align) * align;
  const bounds = [0];
  for (let p = 1; p <= parts; p++) {
    const b = Math.min(n, p * size);
    if (b > bounds[bounds.length - 1]!) bounds.push(b);
  }
  return bounds;
}

class WasmKernelSet implements WasmKernels {
  readonly name = 'wasm' as const;
  private readonly f: Record<PoolOp, WasmFn>;

  constructor(
    private readonly wasm: WasmExports,
    private readonly pool: WorkerPool | null,
    readonly threads: number,
    private readonly scratch: number[],
    readonly build: WasmBuild,
    private readonly counter: Int32Array,
    /** Bytes of each thread's scratch. */
    private readonly scratchBytes: number,
    program: Float32Array,
  ) {
    this.f = wasm as unknown as Record<PoolOp, WasmFn>;
    this.prog = {
      at: program.byteOffset,
      i32: new Int32Array(program.buffer, program.byteOffset, PROGRAM_BYTES / 4),
      f64: new Float64Array(program.buffer, program.byteOffset, PROGRAM_BYTES / 8),
    };
    this.fns = [];
    for (const op of POOL_OPS) this.fns.push(this.f[op]);
  }

  /** The program block (program.ts) and the functions its steps name by index. */
  private readonly prog: { at: number; i32: Int32Array; f64: Float64Array };
  private readonly fns: WasmFn[];

  /** Runs a split kernel call now (split() with its threshold). */
  private splitWork(w: SplitWork): number[] {
    return this.split(w.op, w.n, w.elems >= (w.heavy ? HEAVY_PAR_ELEMS : LIGHT_PAR_ELEMS), w.align, w.argsFor);
  }

  /**
   * Runs `op` over [0, n) split into chunks (one per thread when `par`): argsFor(lo, hi, t)
   * gives the wasm arguments for a chunk on thread t (0 = the calling thread).
   * Returns each chunk's result.
   */
  private split(op: PoolOp, n: number, par: boolean, align: number, argsFor: (lo: number, hi: number, t: number) => number[]): number[] {
    const parts = par && this.pool ? this.threads : 1;
    const b = chunks(n, parts, align);
    const fn = this.f[op];
    if (b.length <= 2) return [fn(...argsFor(0, n, 0))];
    const pool = this.pool!;
    const opIdx = WorkerPool.opIndex(op);
    for (let p = 1; p < b.length - 1; p++) pool.start(p - 1, opIdx, argsFor(b[p]!, b[p + 1]!, p));
    const out = [0];
    try {
      out[0] = fn(...argsFor(b[0]!, b[1]!, 0));
    } finally {
      // a worker that has not started yet (its core is busy) loses its part to this thread
      for (let p = 1; p < b.length - 1; p++) {
        out.push(pool.tryCancel(p - 1) ? fn(...argsFor(b[p]!, b[p + 1]!, p)) : pool.wait(p - 1));
      }
    }
    return out;
  }

  /**
   * Runs `op` on every thread at once with the same arguments plus each thread's scratch
   * (and the chunk counter): the wasm function claims chunks of work itself.
   */
  private shared(op: 'gemmShared' | 'gemmBatchedShared', args: (scratch: number) => number[]): void {
    const pool = this.pool!;
    const opIdx = WorkerPool.opIndex(op);
    Atomics.store(this.counter, 0, 0);
    for (let t = 1; t < this.threads; t++) pool.start(t - 1, opIdx, args(this.scratch[t]!));
    try {
      this.f[op](...args(this.scratch[0]!));
    } finally {
      // every chunk is claimed by now; a worker that never started has none
      for (let t = 1; t < this.threads; t++) if (!pool.tryCancel(t - 1)) pool.wait(t - 1);
    }
  }

  // ------------------------------------------------------------------ matrix products
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: FloatArray, lda: number,
    B: FloatArray, ldb: number, beta: number, C: FloatArray, ldc: number): void {
    if (M <= 0 || N <= 0) return;
    checkLd(lda, transA ? M : K, 'lda'); checkLd(ldb, transB ? K : N, 'ldb'); checkLd(ldc, N, 'ldc');
    checkLen(A, transA ? need(K, M, lda) : need(M, K, lda), 'gemm A');
    checkLen(B, transB ? need(N, K, ldb) : need(K, N, ldb), 'gemm B');
    checkLen(C, need(M, N, ldc), 'gemm C');
    this.gemmAt(transA, transB, M, N, K, alpha, fptr(A, 'A'), lda, fptr(B, 'B'), ldb, beta, fptr(C, 'C'), ldc);
  }

  /**
   * gemm on byte addresses. Large products are shared by all threads in chunks of rows of
   * C (or columns, when C is wider than tall: each thread packs the whole of the other
   * operand per chunk, so the longer side is the one to cut), about 4 chunks per thread
   * so that a thread slowed by a busy core takes fewer of them.
   */
  private gemmAt(tA: boolean, tB: boolean, M: number, N: number, K: number, alpha: number, a: number, lda: number,
    b: number, ldb: number, beta: number, c: number, ldc: number): void {
    const ta = tA ? 1 : 0, tb = tB ? 1 : 0;
    const byRows = M >= N;
    const total = byRows ? M : N;
    const align = byRows ? 6 : 8;
    const minChunk = byRows ? 48 : 64;
    if (!this.pool || M * N * Math.max(K, 1) < GEMM_PAR_MACS || total < 2 * align) {
      this.wasm.gemm!(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, this.scratch[0]!);
      return;
    }
    const chunk = gemmChunk(total, this.threads, align, minChunk, byRows && !tA);
    const counter = this.counter.byteOffset;
    this.shared('gemmShared', (scratch) => [ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, scratch, counter, byRows ? 1 : 0, chunk]);
  }

  gemmStridedBatched(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: FloatArray, lda: number, strideA: number, B: FloatArray, ldb: number, strideB: number,
    beta: number, C: FloatArray, ldc: number, strideC: number, batch: number): void {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    checkLd(lda, transA ? M : K, 'lda'); checkLd(ldb, transB ? K : N, 'ldb'); checkLd(ldc, N, 'ldc');
    checkLen(A, (batch - 1) * strideA + (transA ? need(K, M, lda) : need(M, K, lda)), 'gemmStridedBatched A');
    checkLen(B, (batch - 1) * strideB + (transB ? need(N, K, ldb) : need(K, N, ldb)), 'gemmStridedBatched B');
    checkLen(C, (batch - 1) * strideC + need(M, N, ldc), 'gemmStridedBatched C');
    const a = fptr(A, 'A'), b = fptr(B, 'B'), c = fptr(C, 'C');
    const ta = transA ? 1 : 0, tb = transB ? 1 : 0;
    const par = this.pool !== null && batch * M * N * Math.max(K, 1) >= GEMM_PAR_MACS;
    if (!par) {
      this.wasm.gemmBatched!(ta, tb, M, N, K, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, 0, batch, this.scratch[0]!);
    } else if (batch >= 2 * this.threads) {
      const counter = this.counter.byteOffset;
      this.shared('gemmBatchedShared', (scratch) => [ta, tb, M, N, K, alpha, a, lda, strideA, b, ldb, strideB,
        beta, c, ldc, strideC, batch, scratch, counter]);
    } else {
      for (let i = 0; i < batch; i++) {
        this.gemmAt(transA, transB, M, N, K, alpha, a + 4 * i * strideA, lda, b + 4 * i * strideB, ldb, beta, c + 4 * i * strideC, ldc);
      }
    }
  }

  // ------------------------------------------------------------------ programs (the team)
  /**
   * See Kernels.run. Each step is cut into chunks the way its kernel is cut on its own (the same
   * argsFor; a step is shared from a size PROGRAM_PAR_DIVISOR times smaller, as the team is
   * already awake), written to the program block, and the workers are woken once per program.
   * One thread runs the same program alone (the fused gate|up + SwiGLU step helps it too).
   */
  run(program: KernelProgram): void {
    // every step is checked before the first one runs
    const steps: ProgramStep[] = [];
    for (let i = 0; i < program.length; i++) {
      const call = program[i]!;
      const next = program[i + 1];
      const fused = next ? this.gemmSwigluStep(call, next) : null;
      if (fused) i++;
      const st = fused ?? this.programStep(call);
      if (st.chunks.length > 0) steps.push(st);
    }
    let part: ProgramStep[] = [];
    let chunks = 0;
    for (const st of steps) {
      // a step never has more chunks than a few per thread, far below MAX_CHUNKS
      if (st.chunks.length > MAX_CHUNKS) throw new Error(`wasm kernels: a program step of ${st.chunks.length} chunks (at most ${MAX_CHUNKS})`);
      if (part.length === MAX_STEPS || chunks + st.chunks.length > MAX_CHUNKS) {
        this.runSteps(part);
        part = [];
        chunks = 0;
      }
      part.push(st);
      chunks += st.chunks.length;
    }
    if (part.length > 0) this.runSteps(part);
  }

  /** One program step: its kernel's chunks (a step is validated here, before anything runs). */
  private programStep(call: KernelCall): ProgramStep {
    const split = (w: SplitWork): ProgramStep => {
      const par = w.elems * PROGRAM_PAR_DIVISOR >= (w.heavy ? HEAVY_PAR_ELEMS : LIGHT_PAR_ELEMS);
      const b = chunks(w.n, par ? this.threads : 1, w.align);
      const out: number[][] = [];
      for (let i = 0; i + 1 < b.length; i++) out.push(w.argsFor(b[i]!, b[i + 1]!, 0));
      if (w.n > 0 && out.length === 0) out.push(w.argsFor(0, w.n, 0));
      return { op: WorkerPool.opIndex(w.op), chunks: out, scratchArg: -1 };
    };
    switch (call[0]) {
      case 'gemm': {
        const [, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc] = call;
        return { op: WorkerPool.opIndex('gemm'), chunks: this.gemmChunks(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), scratchArg: GEMM_SCRATCH_ARG };
      }
      case 'rmsnormForward': { const [, ...a] = call; return split(this.rmsnormWork(...a)); }
      case 'addRmsnormForward': { const [, ...a] = call; return split(this.addRmsnormWork(...a)); }
      case 'swigluForward': { const [, ...a] = call; return split(this.swigluForwardWork(...a)); }
      case 'swigluBackward': { const [, ...a] = call; return split(this.swigluBackwardWork(...a)); }
      case 'add': { const [, ...a] = call; return split(this.addWork(...a)); }
      case 'axpy': { const [, ...a] = call; return split(this.axpyWork(...a)); }
      case 'scale': { const [, ...a] = call; return split(this.scaleWork(...a)); }
      case 'dropout': { const [, ...a] = call; return split(this.dropoutWork(...a)); }
      default: throw new TypeError(`Kernels.run: ${String((call as unknown[])[0])} cannot be a program step (see PROGRAM_KERNELS: ${PROGRAM_KERNELS.join(', ')})`);
    }
  }

  /**
   * A gemm as chunks of `gemm` calls on blocks of rows (or columns) of C, cut as gemmAt cuts
   * a shared product; argument GEMM_SCRATCH_ARG is each thread's own scratch.
   */
  private gemmChunks(tA: boolean, tB: boolean, M: number, N: number, K: number, alpha: number, A: FloatArray, lda: number,
    B: FloatArray, ldb: number, beta: number, C: FloatArray, ldc: number): number[][] {
    if (M <= 0 || N <= 0) return [];
    checkLd(lda, tA ? M : K, 'lda'); checkLd(ldb, tB ? K : N, 'ldb'); checkLd(ldc, N, 'ldc');
    checkLen(A, tA ? need(K, M, lda) : need(M, K, lda), 'gemm A');
    checkLen(B, tB ? need(N, K, ldb) : need(K, N, ldb), 'gemm B');
    checkLen(C, need(M, N, ldc), 'gemm C');
    const a = fptr(A, 'A'), b = fptr(B, 'B'), c = fptr(C, 'C');
    const ta = tA ? 1 : 0, tb = tB ? 1 : 0;
    const byRows = M >= N;
    const total = byRows ? M : N;
    const align = byRows ? 6 : 8;
    const minChunk = byRows ? 48 : 64;
    if ((M === 1 && !tA) || M * N * Math.max(K, 1) * PROGRAM_PAR_DIVISOR < GEMM_PAR_MACS || total < 2 * align) {
      return [[ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, 0]];
    }
    const chunk = gemmChunk(total, this.threads, align, minChunk, byRows && !tA);
    const out: number[][] = [];
    for (let lo = 0; lo < total; lo += chunk) {
      const n = Math.min(chunk, total - lo);
      if (byRows) out.push([ta, tb, n, N, K, alpha, a + 4 * (tA ? lo : lo * lda), lda, b, ldb, beta, c + 4 * lo * ldc, ldc, 0]);
      else out.push([ta, tb, M, n, K, alpha, a, lda, b + 4 * (tB ? lo * ldb : lo), ldb, beta, c + 4 * lo, ldc, 0]);
    }
    return out;
  }

  /**
   * The gate|up product followed by the SwiGLU of its output (the MLP forward's first two
   * steps), as one step of gemmSwiglu chunks: each chunk applies the SwiGLU to its block of h
   * right after computing it, while it is in cache, instead of a second pass over all of h.
   * Null when the pair is not exactly that: gemm nn, alpha 1, beta 0, C = h [M, 2F] with
   * ldc = 2F, then swigluForward(s, h, M, F) on the same h.
   */
  private gemmSwigluStep(a: KernelCall, b: KernelCall): ProgramStep | null {
    if (a[0] !== 'gemm' || b[0] !== 'swigluForward') return null;
    const [, tA, tB, M, N2, K, alpha, A, lda, B, ldb, beta, C, ldc] = a;
    const [, s, h, rows, F] = b;
    if (tA || tB || alpha !== 1 || beta !== 0 || rows !== M || N2 !== 2 * F || ldc !== 2 * F || F < 1 || M < 1) return null;
    if (!(C instanceof Float32Array) || !(h instanceof Float32Array) || C.buffer !== h.buffer || C.byteOffset !== h.byteOffset) return null;
    // the same checks as the two calls would make on their own
    checkLd(lda, K, 'lda'); checkLd(ldb, N2, 'ldb');
    checkLen(A, need(M, K, lda), 'gemm A'); checkLen(B, need(K, N2, ldb), 'gemm B'); checkLen(C, need(M, N2, ldc), 'gemm C');
    checkLen(s, M * F, 'swiglu out');
    const pa = fptr(A, 'A'), pb = fptr(B, 'B'), ph = fptr(C, 'C'), ps = fptr(s, 'out');
    const chunk = (r0: number, nr: number, j0: number, w: number): number[] => [K, pa, lda, pb, ldb, ph, ps, F, r0, nr, j0, w, 0];
    const out: number[][] = [];
    const byRows = M >= N2;
    const total = byRows ? M : F;
    const align = byRows ? 6 : 8;
    if (M * N2 * Math.max(K, 1) * PROGRAM_PAR_DIVISOR < GEMM_PAR_MACS || total < 2 * align) {
      out.push(chunk(0, M, 0, F));
    } else {
      // columns: a chunk of w hidden columns is 2w columns of h (w of gate, w of up)
      const step = gemmChunk(total, this.threads, align, byRows ? 48 : 32, byRows);
      for (let lo = 0; lo < total; lo += step) {
        const n = Math.min(step, total - lo);
        out.push(byRows ? chunk(lo, n, 0, F) : chunk(0, M, lo, n));
      }
    }
    return { op: WorkerPool.opIndex('gemmSwiglu'), chunks: out, scratchArg: GEMM_SWIGLU_SCRATCH_ARG };
  }

  /** Writes the steps to the program block and runs them with the team, woken once. */
  private runSteps(steps: readonly ProgramStep[]): void {
    const { i32, f64, at } = this.prog;
    let width = 0;
    let first = 0;
    for (let s = 0; s < steps.length; s++) {
      const st = steps[s]!;
      const h = s * STEP_INTS;
      i32[h + STEP_OP] = st.op;
      i32[h + STEP_FIRST] = first;
      i32[h + STEP_CHUNKS] = st.chunks.length;
      i32[h + STEP_SCRATCH_ARG] = st.scratchArg;
      i32[h + STEP_CLAIM] = 0;
      i32[h + STEP_DONE] = 0;
      i32[h + STEP_ERR] = 0;
      for (const args of st.chunks) {
        const base = ARGS_AT + first * MAX_ARGS;
        for (let i = 0; i < MAX_ARGS; i++) f64[base + i] = i < args.length ? args[i]! : 0;
        first++;
      }
      width = Math.max(width, st.chunks.length);
    }
    // wake only the workers the widest step can use (none: this thread alone, no hand-off)
    const pool = this.pool;
    const helpers = pool ? Math.min(this.threads - 1, width - 1) : 0;
    for (let w = 0; w < helpers; w++) pool!.start(w, PROGRAM_OP, [at, steps.length, this.scratch[w + 1]!]);
    try {
      runProgram(i32, f64, this.fns, steps.length, this.scratch[0]!);
    } finally {
      // every chunk is done by now; a worker that never started took none
      for (let w = 0; w < helpers; w++) if (!pool!.tryCancel(w)) pool!.wait(w);
    }
    for (let s = 0; s < steps.length; s++) {
      if (i32[s * STEP_INTS + STEP_ERR] === 1) {
        throw new RangeError(`wasm kernels: ${POOL_OPS[steps[s]!.op] ?? 'op'} failed in step ${s} of a program (out-of-bounds memory access?)`);
      }
    }
  }

  // ------------------------------------------------------------------ embedding
  private checkIds(ids: Int32Array, n: number, V: number, what: string): void {
    const bad = this.wasm.checkIds!(iptr(ids, what), n, V);
    if (bad !== 0) throw new RangeError(`wasm kernels: ${what}[${bad - 1}] = ${ids[bad - 1]} is outside [0, ${V})`);
  }

  embeddingForward(out: FloatArray, tokens: Int32Array, table: FloatArray, N: number, C: number): void {
    checkLen(out, N * C, 'embedding out');
    this.checkIds(tokens, N, Math.floor(table.length / C), 'tokens');
    const o = fptr(out, 'out'), tk = iptr(tokens, 'tokens'), tb = fptr(table, 'table');
    this.split('embeddingForward', N, N * C >= LIGHT_PAR_ELEMS, 1, (r0, r1) => [o + 4 * r0 * C, tk + 4 * r0, tb, r1 - r0, C]);
  }

  embeddingBackward(dtable: FloatArray, dout: FloatArray, tokens: Int32Array, N: number, C: number): void {
    checkLen(dout, N * C, 'embedding dout');
    this.checkIds(tokens, N, Math.floor(dtable.length / C), 'tokens');
    const dt = fptr(dtable, 'dtable'), d = fptr(dout, 'dout'), tk = iptr(tokens, 'tokens');
    // split by columns: repeated tokens then never race on a row of dtable
    this.split('embeddingBackward', C, N * C >= LIGHT_PAR_ELEMS, 4, (c0, c1) => [dt + 4 * c0, d + 4 * c0, tk, N, c1 - c0, C]);
  }

  // ------------------------------------------------------------------ RMSNorm
  rmsnormForward(out: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, eps: number): void {
    this.splitWork(this.rmsnormWork(out, rstd, inp, weight, N, C, eps));
  }

  private rmsnormWork(out: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, eps: number): SplitWork {
    checkLen(out, N * C, 'rmsnorm out'); checkLen(inp, N * C, 'rmsnorm inp'); checkLen(rstd, N, 'rmsnorm rstd'); checkLen(weight, C, 'rmsnorm weight');
    const o = fptr(out, 'out'), r = fptr(rstd, 'rstd'), x = fptr(inp, 'inp'), w = fptr(weight, 'weight');
    return { op: 'rmsnormForward', n: N, align: 1, elems: N * C, heavy: false, argsFor: (r0, r1) => [o + 4 * r0 * C, r + 4 * r0, x + 4 * r0 * C, w, r1 - r0, C, eps] };
  }

  addRmsnormForward(sum: FloatArray, out: FloatArray, rstd: FloatArray, a: FloatArray, b: FloatArray,
    weight: FloatArray, N: number, C: number, eps: number): void {
    this.splitWork(this.addRmsnormWork(sum, out, rstd, a, b, weight, N, C, eps));
  }

  private addRmsnormWork(sum: FloatArray, out: FloatArray, rstd: FloatArray, a: FloatArray, b: FloatArray,
    weight: FloatArray, N: number, C: number, eps: number): SplitWork {
    checkLen(sum, N * C, 'addRmsnorm sum'); checkLen(out, N * C, 'addRmsnorm out'); checkLen(a, N * C, 'addRmsnorm a');
    checkLen(b, N * C, 'addRmsnorm b'); checkLen(rstd, N, 'addRmsnorm rstd'); checkLen(weight, C, 'addRmsnorm weight');
    const ps = fptr(sum, 'sum'), o = fptr(out, 'out'), r = fptr(rstd, 'rstd'), pa = fptr(a, 'a'), pb = fptr(b, 'b'), w = fptr(weight, 'weight');
    return { op: 'addRmsnormForward', n: N, align: 1, elems: N * C, heavy: false,
      argsFor: (r0, r1) => [ps + 4 * r0 * C, o + 4 * r0 * C, r + 4 * r0, pa + 4 * r0 * C, pb + 4 * r0 * C, w, r1 - r0, C, eps] };
  }

  rmsnormBackward(dinp: FloatArray, dweight: FloatArray, dout: FloatArray, inp: FloatArray, weight: FloatArray,
    rstd: FloatArray, N: number, C: number): void {
    checkLen(dinp, N * C, 'rmsnorm dinp'); checkLen(dout, N * C, 'rmsnorm dout'); checkLen(inp, N * C, 'rmsnorm inp');
    checkLen(dweight, C, 'rmsnorm dweight'); checkLen(weight, C, 'rmsnorm weight'); checkLen(rstd, N, 'rmsnorm rstd');
    const dx = fptr(dinp, 'dinp'), dw = fptr(dweight, 'dweight'), dy = fptr(dout, 'dout');
    const x = fptr(inp, 'inp'), w = fptr(weight, 'weight'), r = fptr(rstd, 'rstd');
    const par = N * C >= LIGHT_PAR_ELEMS && this.pool !== null && N >= 2;
    // Workers accumulate dweight into their own (zeroed) scratch; summed here after.
    if (par) for (let t = 1; t < this.threads; t++) this.wasm.zero!(this.scratch[t]!, C);
    const res = this.split('rmsnormBackward', N, par, 1, (r0, r1, t) => [dx + 4 * r0 * C, t === 0 ? dw : this.scratch[t]!,
      dy + 4 * r0 * C, x + 4 * r0 * C, w, r + 4 * r0, r1 - r0, C]);
    for (let t = 1; t < res.length; t++) this.wasm.axpy!(dw, this.scratch[t]!, 1, C);
  }

  // ------------------------------------------------------------------ RoPE
  private rope(x: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray, dir: number): void {
    checkLen(x, need(nRows, nHeads * D, rowStride), 'rope x');
    checkLen(cos, T * (D / 2), 'rope cos'); checkLen(sin, T * (D / 2), 'rope sin');
    const p = fptr(x, 'x'), c = fptr(cos, 'cos'), s = fptr(sin, 'sin');
    this.split('rope', nRows, nRows * nHeads * D >= LIGHT_PAR_ELEMS, 1, (r0, r1) => [p, r0, r1 - r0, T, nHeads, D, rowStride, c, s, dir]);
  }

  ropeForward(x: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray): void {
    this.rope(x, nRows, T, nHeads, D, rowStride, cos, sin, 1);
  }

  ropeBackward(dx: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray): void {
    this.rope(dx, nRows, T, nHeads, D, rowStride, cos, sin, -1);
  }

  // ------------------------------------------------------------------ attention softmax
  softmaxCausalForward(att: FloatArray, nMat: number, T: number, scale: number): void {
    checkLen(att, nMat * T * T, 'softmax att');
    const a = fptr(att, 'att');
    this.split('softmaxCausalForward', nMat * T, nMat * T * T >= 2 * HEAVY_PAR_ELEMS, 1, (r0, r1) => [a, r0, r1 - r0, T, scale]);
  }

  softmaxCausalBackward(datt: FloatArray, att: FloatArray, nMat: number, T: number, scale: number): void {
    checkLen(att, nMat * T * T, 'softmax att'); checkLen(datt, nMat * T * T, 'softmax datt');
    const d = fptr(datt, 'datt'), a = fptr(att, 'att');
    this.split('softmaxCausalBackward', nMat * T, nMat * T * T >= LIGHT_PAR_ELEMS, 1, (r0, r1) => [d, a, r0, r1 - r0, T, scale]);
  }

  // ------------------------------------------------------------------ fused causal attention
  /** Checks the fused attention's operands; threads split the B*H heads (each uses its own scratch). */
  private attentionChecks(qkv: FloatArray, B: number, T: number, H: number, D: number): void {
    checkLen(qkv, B * T * 3 * H * D, 'attention qkv');
    const need = 4 * this.wasm.attentionScratchFloats!(D);
    if (need > this.scratchBytes) throw new RangeError(`wasm kernels: attention head size ${D} needs ${need} bytes of scratch, more than ${this.scratchBytes}`);
  }

  attentionCausalForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number, H: number, D: number, scale: number): void {
    if (B <= 0 || T <= 0 || H <= 0) return;
    this.attentionChecks(qkv, B, T, H, D);
    checkLen(out, B * T * H * D, 'attention out'); checkLen(lse, B * H * T, 'attention lse');
    const o = fptr(out, 'out'), l = fptr(lse, 'lse'), x = fptr(qkv, 'qkv');
    this.split('attentionCausalForward', B * H, B * H * T * T * D >= GEMM_PAR_MACS, 1,
      (g0, g1, t) => [o, l, x, g0, g1 - g0, T, H, D, scale, this.scratch[t]!]);
  }

  attentionCausalBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, out: FloatArray, lse: FloatArray,
    B: number, T: number, H: number, D: number, scale: number): void {
    if (B <= 0 || T <= 0 || H <= 0) return;
    this.attentionChecks(qkv, B, T, H, D);
    checkLen(dqkv, B * T * 3 * H * D, 'attention dqkv'); checkLen(dout, B * T * H * D, 'attention dout');
    checkLen(out, B * T * H * D, 'attention out'); checkLen(lse, B * H * T, 'attention lse');
    const dx = fptr(dqkv, 'dqkv'), dy = fptr(dout, 'dout'), x = fptr(qkv, 'qkv'), o = fptr(out, 'out'), l = fptr(lse, 'lse');
    this.split('attentionCausalBackward', B * H, B * H * T * T * D >= GEMM_PAR_MACS, 1,
      (g0, g1, t) => [dx, dy, x, o, l, g0, g1 - g0, T, H, D, scale, this.scratch[t]!]);
  }

  // ------------------------------------------------------------------ SwiGLU
  swigluForward(out: FloatArray, h: FloatArray, N: number, F: number): void {
    this.splitWork(this.swigluForwardWork(out, h, N, F));
  }

  private swigluForwardWork(out: FloatArray, h: FloatArray, N: number, F: number): SplitWork {
    checkLen(out, N * F, 'swiglu out'); checkLen(h, 2 * N * F, 'swiglu h');
    const o = fptr(out, 'out'), x = fptr(h, 'h');
    return { op: 'swigluForward', n: N, align: 1, elems: N * F, heavy: true, argsFor: (r0, r1) => [o + 4 * r0 * F, x + 8 * r0 * F, r1 - r0, F] };
  }

  swigluBackward(dh: FloatArray, dout: FloatArray, h: FloatArray, N: number, F: number): void {
    this.splitWork(this.swigluBackwardWork(dh, dout, h, N, F));
  }

  private swigluBackwardWork(dh: FloatArray, dout: FloatArray, h: FloatArray, N: number, F: number): SplitWork {
    checkLen(dh, 2 * N * F, 'swiglu dh'); checkLen(dout, N * F, 'swiglu dout'); checkLen(h, 2 * N * F, 'swiglu h');
    const d = fptr(dh, 'dh'), dy = fptr(dout, 'dout'), x = fptr(h, 'h');
    return { op: 'swigluBackward', n: N, align: 1, elems: N * F, heavy: true,
      argsFor: (r0, r1) => [d + 8 * r0 * F, dy + 4 * r0 * F, x + 8 * r0 * F, r1 - r0, F] };
  }

  // ------------------------------------------------------------------ elementwise
  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
    this.splitWork(this.addWork(out, a, b, n));
  }

  private addWork(out: FloatArray, a: FloatArray, b: FloatArray, n: number): SplitWork {
    checkLen(out, n, 'add out'); checkLen(a, n, 'add a'); checkLen(b, n, 'add b');
    const o = fptr(out, 'out'), pa = fptr(a, 'a'), pb = fptr(b, 'b');
    return { op: 'add', n, align: 16, elems: n, heavy: false, argsFor: (i0, i1) => [o + 4 * i0, pa + 4 * i0, pb + 4 * i0, i1 - i0] };
  }

  axpy(dst: FloatArray, src: FloatArray, alpha: number, n: number): void {
    this.splitWork(this.axpyWork(dst, src, alpha, n));
  }

  private axpyWork(dst: FloatArray, src: FloatArray, alpha: number, n: number): SplitWork {
    checkLen(dst, n, 'axpy dst'); checkLen(src, n, 'axpy src');
    const d = fptr(dst, 'dst'), s = fptr(src, 'src');
    return { op: 'axpy', n, align: 16, elems: n, heavy: false, argsFor: (i0, i1) => [d + 4 * i0, s + 4 * i0, alpha, i1 - i0] };
  }

  scale(x: FloatArray, s: number, n: number): void {
    this.splitWork(this.scaleWork(x, s, n));
  }

  private scaleWork(x: FloatArray, s: number, n: number): SplitWork {
    checkLen(x, n, 'scale x');
    const p = fptr(x, 'x');
    return { op: 'scale', n, align: 16, elems: n, heavy: false, argsFor: (i0, i1) => [p + 4 * i0, s, i1 - i0] };
  }

  sumSquares(x: FloatArray, n: number): number {
    checkLen(x, n, 'sumSquares x');
    const p = fptr(x, 'x');
    const parts = this.split('sumSquares', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [p + 4 * i0, i1 - i0]);
    let s = 0;
    for (const v of parts) s += v;
    return s;
  }

  dropout(out: FloatArray, x: FloatArray, n: number, threshold: number, counter: number): void {
    this.splitWork(this.dropoutWork(out, x, n, threshold, counter));
  }

  private dropoutWork(out: FloatArray, x: FloatArray, n: number, threshold: number, counter: number): SplitWork {
    checkLen(out, n, 'dropout out'); checkLen(x, n, 'dropout x');
    const o = fptr(out, 'out'), p = fptr(x, 'x');
    // a chunk starting at i0 continues the counter sequence where it would be at element i0
    return { op: 'dropout', n, align: 16, elems: n, heavy: false, argsFor: (i0, i1) => [o + 4 * i0, p + 4 * i0, i1 - i0, threshold >>> 0,
      (counter + Math.imul(i0, DROPOUT_WEYL)) >>> 0] };
  }

  // ------------------------------------------------------------------ loss
  crossEntropyForward(losses: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number): void {
    checkLen(losses, N, 'crossEntropy losses'); checkLen(logits, N * V, 'crossEntropy logits');
    this.checkIds(targets, N, V, 'targets');
    const l = fptr(losses, 'losses'), x = fptr(logits, 'logits'), t = iptr(targets, 'targets');
    this.split('crossEntropyForward', N, N * V >= HEAVY_PAR_ELEMS, 1, (r0, r1) => [l + 4 * r0, x + 4 * r0 * V, t + 4 * r0, r1 - r0, V]);
  }

  crossEntropyForwardBackward(dlogits: FloatArray, losses: FloatArray, logits: FloatArray, targets: Int32Array,
    N: number, V: number, dscale: number): void {
    checkLen(losses, N, 'crossEntropy losses'); checkLen(logits, N * V, 'crossEntropy logits'); checkLen(dlogits, N * V, 'crossEntropy dlogits');
    this.checkIds(targets, N, V, 'targets');
    const d = fptr(dlogits, 'dlogits'), l = fptr(losses, 'losses'), x = fptr(logits, 'logits'), t = iptr(targets, 'targets');
    this.split('crossEntropyForwardBackward', N, N * V >= HEAVY_PAR_ELEMS, 1,
      (r0, r1) => [d + 4 * r0 * V, l + 4 * r0, x + 4 * r0 * V, t + 4 * r0, r1 - r0, V, dscale]);
  }

  // ------------------------------------------------------------------ optimizer updates
  adamwUpdate(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number,
    lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number): void {
    for (const [a, w] of [[p, 'p'], [g, 'g'], [m, 'm'], [v, 'v']] as const) checkLen(a, n, `adamw ${w}`);
    const pp = fptr(p, 'p'), pg = fptr(g, 'g'), pm = fptr(m, 'm'), pv = fptr(v, 'v');
    this.split('adamwUpdate', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [pp + 4 * i0, pg + 4 * i0, pm + 4 * i0, pv + 4 * i0, i1 - i0,
      lr, b1, b2, eps, wd, bc1, bc2]);
  }

  lionUpdate(p: FloatArray, g: FloatArray, m: FloatArray, n: number, lr: number, b1: number, b2: number, wd: number): void {
    for (const [a, w] of [[p, 'p'], [g, 'g'], [m, 'm']] as const) checkLen(a, n, `lion ${w}`);
    const pp = fptr(p, 'p'), pg = fptr(g, 'g'), pm = fptr(m, 'm');
    this.split('lionUpdate', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [pp + 4 * i0, pg + 4 * i0, pm + 4 * i0, i1 - i0, lr, b1, b2, wd]);
  }

  scheduleFreeAdamwUpdate(y: FloatArray, g: FloatArray, z: FloatArray, x: FloatArray, v: FloatArray, n: number,
    lr: number, b1: number, b2: number, eps: number, wd: number, ck: number, bc2: number): void {
    for (const [a, w] of [[y, 'y'], [g, 'g'], [z, 'z'], [x, 'x'], [v, 'v']] as const) checkLen(a, n, `scheduleFree ${w}`);
    const py = fptr(y, 'y'), pg = fptr(g, 'g'), pz = fptr(z, 'z'), px = fptr(x, 'x'), pv = fptr(v, 'v');
    this.split('scheduleFreeAdamwUpdate', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [py + 4 * i0, pg + 4 * i0, pz + 4 * i0,
      px + 4 * i0, pv + 4 * i0, i1 - i0, lr, b1, b2, eps, wd, ck, bc2]);
  }

  expApprox(out: Float32Array, x: Float32Array, n: number): void {
    checkLen(out, n, 'exp out'); checkLen(x, n, 'exp x');
    this.wasm.expArray!(fptr(out, 'out'), fptr(x, 'x'), n);
  }

  parkWorkers(): void {
    this.pool?.park();
  }

  async dispose(): Promise<void> {
    if (this.pool) await this.pool.dispose();
  }
}
