import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../util/paths.js';

/** What the N-API addon in native/ exports (see native/src/blas_addon.c). */
export interface NativeBlas {
  /** Row-major C = alpha*op(A)*op(B) + beta*C through cblas_sgemm; same arguments as Kernels.gemm. */
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number,
    beta: number, C: Float32Array, ldc: number,
  ): void;
  /** `batch` sgemms, the i-th on A/B/C offset by i*stride; same arguments as Kernels.gemmStridedBatched. */
  sgemmStridedBatched(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, lda: number, strideA: number,
    B: Float32Array, ldb: number, strideB: number,
    beta: number, C: Float32Array, ldc: number, strideC: number, batch: number,
  ): void;
  /**
   * Threads each product is split over by the addon's own pool (OpenBLAS itself runs one
   * thread per share); a no-op for a CBLAS without OpenBLAS's thread control.
   */
  setThreads(n: number): void;
  /** The pool's thread count (1 for a CBLAS without thread control). */
  getThreads(): number;
  /**
   * Whether sgemmStridedBatched gives each thread a share of the batch (whole products)
   * instead of splitting every product's rows. On by default; only used when the batch
   * divides evenly or is >= 4x the thread count.
   */
  setBatchSplit(on: boolean): void;
  /**
   * The pool's idle workers stop their spin and sleep now (woken by the next product): call
   * before a long kernel of another pool (the wasm workers). Missing in addons built before it.
   */
  park?(): void;
  /**
   * Fused causal attention in C (native/src/attention.c), same arguments as
   * Kernels.attentionCausalForward/Backward (float32 only). Missing in addons built before it.
   */
  attentionForward?(out: Float32Array, lse: Float32Array, qkv: Float32Array, B: number, T: number, H: number, D: number, scale: number): void;
  attentionBackward?(dqkv: Float32Array, dout: Float32Array, qkv: Float32Array, out: Float32Array, lse: Float32Array,
    B: number, T: number, H: number, D: number, scale: number): void;
  /** e.g. "OpenBLAS 0.3.21 (core Cooperlake, /lib/x86_64-linux-gnu/libopenblas.so.0)". */
  readonly library: string;
  /** Whether setThreads does anything (OpenBLAS), or the library picks its own threads. */
  readonly threadControl: boolean;
}

export type NativeLoad =
  | { ok: true; addon: NativeBlas; library: string; path: string }
  | { ok: false; reason: string };

/** Where scripts/build-native.mjs puts the addon. */
export function addonPath(): string {
  return path.join(packageRoot(), 'native', 'build', 'Release', 'pocketlm_blas.node');
}

/**
 * How long (log2 of CPU cycles) idle OpenBLAS threads keep spinning (sched_yield loop)
 * after a call before they sleep. OpenBLAS's default, 2^28 cycles (~0.1 s), lets its idle
 * threads compete for the cores with the wasm worker that runs the elementwise kernels
 * right after a matrix product. Measured on the 2-core dev machine: CPU burned by the idle
 * threads in the 300 ms after one 2-thread call, 45 ms at 28, 2.5 ms at 24, 0.4 ms at 20;
 * no measurable wake-up cost at 20 for a 0.8 ms product after 5 ms idle.
 */
export const OPENBLAS_THREAD_TIMEOUT_LOG2 = 20;

/**
 * The OpenBLAS core type to force for this CPU, or null to let OpenBLAS decide. Older
 * OpenBLAS releases (e.g. 0.3.21 in Debian 12) do not know recent Intel models and fall
 * back to the generic "Prescott" kernels, 5x slower; the CPU flags tell what is safe.
 * `flags` is the flags line of /proc/cpuinfo.
 */
export function openblasCoretypeFor(flags: string): string | null {
  const f = new Set(flags.split(/\s+/));
  const avx512 = ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512cd'].every((x) => f.has(x));
  if (avx512 && f.has('avx512_bf16')) return 'Cooperlake';
  if (avx512) return 'SkylakeX';
  if (f.has('avx2') && f.has('fma')) return 'Haswell';
  return null;
}

/** The environment OpenBLAS should start with (only variables the user has not set). */
export function openblasEnv(env: NodeJS.ProcessEnv, cpuFlags: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (env.OPENBLAS_THREAD_TIMEOUT === undefined) out.OPENBLAS_THREAD_TIMEOUT = String(OPENBLAS_THREAD_TIMEOUT_LOG2);
  if (env.OPENBLAS_CORETYPE === undefined && cpuFlags !== null) {
    const core = openblasCoretypeFor(cpuFlags);
    if (core) out.OPENBLAS_CORETYPE = core;
  }
  return out;
}

/** The first "flags" line of /proc/cpuinfo (x86 Linux), or null elsewhere. */
function readCpuFlags(): string | null {
  try {
    const m = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}

/**
 * Loads the addon built by scripts/build-native.mjs. OpenBLAS reads its environment once,
 * when the shared library is loaded with the addon, so the variables are set here first.
 */
export function loadNativeBlas(): NativeLoad {
  if (process.env.POCKETLM_NO_NATIVE === '1') return { ok: false, reason: 'disabled by POCKETLM_NO_NATIVE=1' };
  const file = addonPath();
  if (!existsSync(file)) {
    return { ok: false, reason: 'addon not built (needs a CBLAS such as libopenblas-dev, then `npm run build:native`)' };
  }
  // Set only while the library loads: OpenBLAS reads them once, at load, and child
  // processes (numpy in the benchmark) must not inherit them.
  const injected = openblasEnv(process.env, readCpuFlags());
  Object.assign(process.env, injected);
  let addon: NativeBlas;
  try {
    addon = createRequire(import.meta.url)(file) as NativeBlas;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return { ok: false, reason: `addon failed to load: ${msg} (rebuild with \`npm run build:native\`)` };
  } finally {
    for (const key of Object.keys(injected)) delete process.env[key];
  }
  if (typeof addon.sgemm !== 'function' || typeof addon.sgemmStridedBatched !== 'function') {
    return { ok: false, reason: `${file} is not the pocketlm BLAS addon (rebuild with \`npm run build:native\`)` };
  }
  return { ok: true, addon, library: addon.library, path: file };
}
