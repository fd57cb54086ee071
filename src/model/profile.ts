import { NON_GEMM_KERNELS, runOneByOne, type KernelProgram, type Kernels } from '../kernels/types.js';

/** Time spent per kernel category; gemm split by form (nn / tn / nt) and batched or not. */
export interface ProfileEntry {
  name: string;
  calls: number;
  ms: number;
}

export interface ProfiledKernels {
  kernels: Kernels;
  /** Starts (or stops) recording; while off, each call costs one extra branch. */
  setEnabled(on: boolean): void;
  reset(): void;
  /** Entries sorted by time, largest first. */
  report(): ProfileEntry[];
}

const METHODS = NON_GEMM_KERNELS;

/**
 * Wraps a backend so every kernel call is timed (wall clock around the synchronous call; the
 * wasm/native kernels finish their threaded work before returning). For `pocketlm bench`'s
 * per-op profile: where a training step's time goes.
 */
export function profileKernels(inner: Kernels): ProfiledKernels {
  const stats = new Map<string, { calls: number; ms: number }>();
  let enabled = false;
  const record = (name: string, t0: number): void => {
    const dt = performance.now() - t0;
    let s = stats.get(name);
    if (!s) stats.set(name, (s = { calls: 0, ms: 0 }));
    s.calls++;
    s.ms += dt;
  };
  const form = (tA: boolean, tB: boolean): string => (tA ? 't' : 'n') + (tB ? 't' : 'n');
  const k: Record<string, unknown> = {
    name: inner.name,
    threads: inner.threads,
    gemm(...a: Parameters<Kernels['gemm']>) {
      if (!enabled) return inner.gemm(...a);
      const t0 = performance.now();
      inner.gemm(...a);
      record(`gemm.${form(a[0], a[1])}`, t0);
    },
    gemmStridedBatched(...a: Parameters<Kernels['gemmStridedBatched']>) {
      if (!enabled) return inner.gemmStridedBatched(...a);
      const t0 = performance.now();
      inner.gemmStridedBatched(...a);
      record(`gemmStridedBatched.${form(a[0], a[1])}`, t0);
    },
    // recording: step by step through this wrapper, so each kernel's time is its own
    run(program: KernelProgram) {
      if (!enabled) return inner.run(program);
      runOneByOne(k as unknown as Kernels, program);
    },
    dispose: () => inner.dispose(),
  };
  for (const name of METHODS) {
    const fn = (inner[name] as (...args: unknown[]) => unknown).bind(inner);
    k[name] = (...args: unknown[]) => {
      if (!enabled) return fn(...args);
      const t0 = performance.now();
      const r = fn(...args);
      record(name, t0);
      return r;
    };
  }
  return {
    kernels: k as unknown as Kernels,
    setEnabled: (on) => { enabled = on; },
    reset: () => stats.clear(),
    report: () => [...stats].map(([name, s]) => ({ name, calls: s.calls, ms: s.ms })).sort((a, b) => b.ms - a.ms),
  };
}
