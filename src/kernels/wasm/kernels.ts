import type { WasmArena } from '../arena.js';
import type { FloatArray, Kernels } from '../types.js';
import { compileKernels, instantiateKernels, type WasmBuild, type WasmExports, type WasmFn } from './loader.js';
import { CTRL_BYTES, type PoolOp } from './ops.js';
import { WorkerPool } from './pool.js';
import { DROPOUT_WEYL } from '../js/dropout.js';

/** Work (multiply-adds for gemm, elements otherwise) below which one thread is faster than a dispatch. */
const GEMM_PAR_MACS = 1 << 20;
const HEAVY_PAR_ELEMS = 1 << 15; // exp per element: softmax, swiglu, cross-entropy
const LIGHT_PAR_ELEMS = 1 << 17; // a few flops per element: add, axpy, norms, optimizers

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
  const pool = threads > 1
    ? await WorkerPool.start({ size: threads - 1, module, memory: arena.memory, arenaBase: arena.base, ctrl })
    : null;
  return new WasmKernelSet(wasm, pool, threads, scratch, build, counter, scratchBytes);
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
  ) {
    this.f = wasm as unknown as Record<PoolOp, WasmFn>;
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
    const roundUp = (x: number): number => Math.ceil(x / align) * align;
    let chunk = Math.max(roundUp(total / (4 * this.threads)), minChunk);
    if (Math.ceil(total / chunk) < this.threads) chunk = roundUp(total / this.threads);
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
    checkLen(out, N * C, 'rmsnorm out'); checkLen(inp, N * C, 'rmsnorm inp'); checkLen(rstd, N, 'rmsnorm rstd'); checkLen(weight, C, 'rmsnorm weight');
    const o = fptr(out, 'out'), r = fptr(rstd, 'rstd'), x = fptr(inp, 'inp'), w = fptr(weight, 'weight');
    this.split('rmsnormForward', N, N * C >= LIGHT_PAR_ELEMS, 1, (r0, r1) => [o + 4 * r0 * C, r + 4 * r0, x + 4 * r0 * C, w, r1 - r0, C, eps]);
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
    checkLen(out, N * F, 'swiglu out'); checkLen(h, 2 * N * F, 'swiglu h');
    const o = fptr(out, 'out'), x = fptr(h, 'h');
    this.split('swigluForward', N, N * F >= HEAVY_PAR_ELEMS, 1, (r0, r1) => [o + 4 * r0 * F, x + 8 * r0 * F, r1 - r0, F]);
  }

  swigluBackward(dh: FloatArray, dout: FloatArray, h: FloatArray, N: number, F: number): void {
    checkLen(dh, 2 * N * F, 'swiglu dh'); checkLen(dout, N * F, 'swiglu dout'); checkLen(h, 2 * N * F, 'swiglu h');
    const d = fptr(dh, 'dh'), dy = fptr(dout, 'dout'), x = fptr(h, 'h');
    this.split('swigluBackward', N, N * F >= HEAVY_PAR_ELEMS, 1, (r0, r1) => [d + 8 * r0 * F, dy + 4 * r0 * F, x + 8 * r0 * F, r1 - r0, F]);
  }

  // ------------------------------------------------------------------ elementwise
  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
    checkLen(out, n, 'add out'); checkLen(a, n, 'add a'); checkLen(b, n, 'add b');
    const o = fptr(out, 'out'), pa = fptr(a, 'a'), pb = fptr(b, 'b');
    this.split('add', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [o + 4 * i0, pa + 4 * i0, pb + 4 * i0, i1 - i0]);
  }

  axpy(dst: FloatArray, src: FloatArray, alpha: number, n: number): void {
    checkLen(dst, n, 'axpy dst'); checkLen(src, n, 'axpy src');
    const d = fptr(dst, 'dst'), s = fptr(src, 'src');
    this.split('axpy', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [d + 4 * i0, s + 4 * i0, alpha, i1 - i0]);
  }

  scale(x: FloatArray, s: number, n: number): void {
    checkLen(x, n, 'scale x');
    const p = fptr(x, 'x');
    this.split('scale', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [p + 4 * i0, s, i1 - i0]);
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
    checkLen(out, n, 'dropout out'); checkLen(x, n, 'dropout x');
    const o = fptr(out, 'out'), p = fptr(x, 'x');
    // a chunk starting at i0 continues the counter sequence where it would be at element i0
    this.split('dropout', n, n >= LIGHT_PAR_ELEMS, 16, (i0, i1) => [o + 4 * i0, p + 4 * i0, i1 - i0, threshold >>> 0,
      (counter + Math.imul(i0, DROPOUT_WEYL)) >>> 0]);
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
