import type { FloatArray } from './types.js';

/**
 * One place where every tensor lives. The wasm arena is a single shared, growable
 * WebAssembly.Memory: wasm kernels, worker threads and the native BLAS addon all see
 * the same bytes, so no tensor is ever copied between them.
 *
 * Allocation is a bump pointer: models, optimizers and loaders allocate once at
 * start-up and keep their views for the whole run (nothing is allocated per step).
 * `mark()`/`release()` give scoped scratch space for tests and benchmarks.
 *
 * Growing a shared memory never detaches old views (SharedArrayBuffers cannot be
 * detached), so views handed out before a grow stay valid.
 */
export interface Arena {
  /** Element type of `floats()`: f32 normally, f64 for the gradient-check path. */
  readonly dtype: 'f32' | 'f64';
  floats(n: number): FloatArray;
  ints(n: number): Int32Array;
  bytesUsed(): number;
  mark(): number;
  release(mark: number): void;
}

const PAGE = 65536;
/** The wasm32 address space: 65536 pages of 64 KiB = 4 GiB, the most the arena can hold. */
export const WASM32_MAX_BYTES = 65536 * PAGE;
/** Cache-line (and AVX-512 vector) alignment for every allocation. */
export const ARENA_ALIGN = 64;
/** Bytes below the arena kept for the wasm modules' static data and shadow stack. */
export const DEFAULT_ARENA_BASE = 1 << 20;

export class WasmArena implements Arena {
  readonly dtype = 'f32' as const;
  readonly memory: WebAssembly.Memory;
  /** First byte the arena may hand out; below it is the wasm modules' own static data/stack. */
  readonly base: number;
  private top: number;

  /**
   * @param base bytes reserved at the bottom of memory for the wasm modules' own data and
   *   shadow stack (the AssemblyScript build is linked to stay below it).
   * @param initialBytes initial memory size; it grows on demand up to 4 GiB.
   */
  constructor(opts: { base?: number; initialBytes?: number; memory?: WebAssembly.Memory } = {}) {
    this.base = opts.base ?? DEFAULT_ARENA_BASE;
    const initialPages = Math.ceil(Math.max(opts.initialBytes ?? 16 << 20, this.base + PAGE) / PAGE);
    this.memory = opts.memory ?? new WebAssembly.Memory({ initial: initialPages, maximum: 65536, shared: true });
    this.top = this.base;
  }

  private reserve(bytes: number): number {
    // Plain arithmetic, not `& ~(ARENA_ALIGN - 1)`: bit operations work on signed 32-bit integers,
    // so every offset from 2 GiB to 4 GiB would come out negative.
    const start = Math.ceil(this.top / ARENA_ALIGN) * ARENA_ALIGN;
    const end = start + bytes;
    if (end > WASM32_MAX_BYTES) {
      throw new RangeError(`arena: out of wasm32 address space (asked for ${bytes} bytes at ${start}; the memory ends at ${WASM32_MAX_BYTES})`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch (e) {
        throw new RangeError(`arena: could not grow the memory from ${have} to ${end} bytes: ${(e as Error).message}`);
      }
    }
    this.top = end;
    return start;
  }

  floats(n: number): Float32Array {
    const off = this.reserve(n * 4);
    return new Float32Array(this.memory.buffer, off, n);
  }

  ints(n: number): Int32Array {
    const off = this.reserve(n * 4);
    return new Int32Array(this.memory.buffer, off, n);
  }

  bytesUsed(): number {
    return this.top - this.base;
  }

  mark(): number {
    return this.top;
  }

  /** Frees everything allocated after `mark` (views into it must no longer be used). */
  release(mark: number): void {
    if (mark < this.base || mark > this.top) throw new RangeError('arena: bad mark');
    new Uint8Array(this.memory.buffer, mark, this.top - mark).fill(0);
    this.top = mark;
  }
}

/**
 * A plain JS-heap arena, float32 or float64. Only the js backend can use it; the f64
 * flavour is how gradient checks run the whole model in double precision.
 */
export class HeapArena implements Arena {
  private used = 0;
  constructor(readonly dtype: 'f32' | 'f64' = 'f64') {}

  floats(n: number): FloatArray {
    this.used += n * (this.dtype === 'f64' ? 8 : 4);
    return this.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  }

  ints(n: number): Int32Array {
    this.used += n * 4;
    return new Int32Array(n);
  }

  bytesUsed(): number {
    return this.used;
  }

  mark(): number {
    return this.used;
  }

  release(mark: number): void {
    // Heap arrays are garbage-collected; only the accounting rolls back.
    this.used = mark;
  }
}
