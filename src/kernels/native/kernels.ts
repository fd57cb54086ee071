import { NON_GEMM_KERNELS, runOneByOne, type FloatArray, type Kernels, type NonGemmKernel } from '../types.js';
import type { NativeBlas } from './load.js';

/** Every kernel except the matrix products goes to the base (wasm) backend unchanged. */
const DELEGATED = NON_GEMM_KERNELS;
type Delegated = NonGemmKernel;

/**
 * Base kernels long enough (on model shapes) to use both cores for a while: the addon's
 * spinning workers are parked before them. Short ones (norms, rope, add) run while the
 * workers spin, so the next product finds them awake.
 */
const HEAVY: ReadonlySet<Delegated> = new Set<Delegated>([
  'softmaxCausalForward', 'softmaxCausalBackward', 'attentionCausalForward', 'attentionCausalBackward', 'swigluForward', 'swigluBackward',
  'crossEntropyForward', 'crossEntropyForwardBackward', 'adamwUpdate', 'lionUpdate', 'scheduleFreeAdamwUpdate',
]);

/** The base's kernels; the heavy ones call `before()` first. */
function delegate(base: Kernels, before: () => void): Pick<Kernels, Delegated> {
  const out: Partial<Record<Delegated, unknown>> = {};
  for (const name of DELEGATED) {
    const fn = (base[name] as (...a: unknown[]) => unknown).bind(base);
    out[name] = HEAVY.has(name) ? (...a: unknown[]): unknown => {
      before();
      return fn(...a);
    } : fn;
  }
  return out as Pick<Kernels, Delegated>;
}

/**
 * ROW_NOTE: products with one row of op(A) (the KV-cache decoder's, one token at a time) go to
 * the base: the wasm row kernel reads each weight once without packing, and a BLAS call plus its
 * hand-offs cost more. Measured on the default preset, one thread, 2-core EPYC: 1.4 ms per decoded
 * token through OpenBLAS, 0.7-1.0 ms through the wasm row kernel (0.8 ms with it on native).
 *
 * Kernels named 'native': gemm and gemmStridedBatched by the CBLAS addon (float32 views
 * into the shared arena; a Float64Array is rejected with a TypeError by the addon), all
 * else by `base`. The addon's thread count is process-wide, so each product sets it to
 * `threads` when another kernel set (say a benchmark's 1-thread one) changed it.
 *
 * The products run synchronously (the addon's pool joins before returning), so they never
 * overlap in time with the base's kernels; the base's idle workers are parked before each
 * product (they would otherwise spin 0.2 ms on the cores BLAS needs: seed-small step 63 ->
 * 55 ms). The addon's workers spin 200 us after a product, then sleep (see native/README.md).
 */
export function createNativeKernels(base: Kernels, addon: NativeBlas, opts: { threads: number }): Kernels {
  const threads = Math.max(1, Math.floor(opts.threads));
  const control = addon.threadControl;
  if (control) addon.setThreads(threads);
  // The base's idle workers spin briefly after each kernel; a product that starts meanwhile
  // would share its cores with them, so they are parked first (wasm base: parkWorkers).
  const parkable = (base as { parkWorkers?: unknown }).parkWorkers;
  const park = typeof parkable === 'function' ? (parkable as () => void).bind(base) : (): void => {};
  const parkBlas = addon.park ? addon.park.bind(addon) : (): void => {};
  const useThreads = (): void => {
    park();
    if (control && addon.getThreads() !== threads) addon.setThreads(threads);
  };
  return {
    ...delegate(base, parkBlas),
    name: 'native',
    threads,
    gemm(transA, transB, M, N, K, alpha, A: FloatArray, lda, B: FloatArray, ldb, beta, C: FloatArray, ldc): void {
      // a single row (decoding): the base's unpacked row kernel beats the BLAS call (see ROW_NOTE)
      if (M === 1 && !transA) return base.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      useThreads();
      addon.sgemm(transA, transB, M, N, K, alpha, A as Float32Array, lda, B as Float32Array, ldb, beta, C as Float32Array, ldc);
    },
    gemmStridedBatched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch): void {
      if (M === 1 && !transA) return base.gemmStridedBatched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch);
      useThreads();
      addon.sgemmStridedBatched(
        transA, transB, M, N, K, alpha, A as Float32Array, lda, strideA, B as Float32Array, ldb, strideB,
        beta, C as Float32Array, ldc, strideC, batch,
      );
    },
    ...(addon.attentionForward && addon.attentionBackward ? nativeAttention(addon, useThreads) : {}),
    // one by one: products go to BLAS (its own pool forks and joins per call), the rest to the
    // base's wasm team, so there is no single team to hand the whole program to
    run(program) { runOneByOne(this, program); },
    dispose: () => base.dispose(),
  };
}

/**
 * The addon's C fused attention (AVX-512/AVX2 by the CPU, on the addon's thread pool) in place
 * of the wasm one. Measured on the default preset's shape (B 8, T 256, H 6, D 32), 2-core
 * EPYC: see scripts/bench-attention.mjs.
 */
function nativeAttention(addon: NativeBlas, useThreads: () => void): Pick<Kernels, 'attentionCausalForward' | 'attentionCausalBackward'> {
  const fwd = addon.attentionForward!.bind(addon);
  const bwd = addon.attentionBackward!.bind(addon);
  return {
    attentionCausalForward(out, lse, qkv, B, T, H, D, scale): void {
      useThreads();
      fwd(out as Float32Array, lse as Float32Array, qkv as Float32Array, B, T, H, D, scale);
    },
    attentionCausalBackward(dqkv, dout, qkv, out, lse, B, T, H, D, scale): void {
      useThreads();
      bwd(dqkv as Float32Array, dout as Float32Array, qkv as Float32Array, out as Float32Array, lse as Float32Array, B, T, H, D, scale);
    },
  };
}
