import os from 'node:os';
import { WasmArena, type Arena } from './arena.js';
import type { BackendName, Kernels } from './types.js';
import { UserError } from '../util/errors.js';

export type BackendChoice = BackendName | 'auto';

export interface BackendInfo {
  name: BackendName;
  /** Why this backend was chosen (printed by `pocketlm doctor` and at train start). */
  reason: string;
  threads: number;
  simd: boolean;
  relaxedSimd: boolean;
  /** Path or name of the CBLAS library the native addon uses, or null. */
  blas: string | null;
  /** Why native is not available, when it is not. */
  nativeUnavailable: string | null;
}

export interface Backend {
  kernels: Kernels;
  arena: Arena;
  info: BackendInfo;
  dispose(): Promise<void>;
}

/** Physical cores are what matter for FMA-bound kernels; Node only sees logical CPUs. */
export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/**
 * Creates the kernels and the arena they work on. `auto` picks native (BLAS matrix
 * products + wasm elementwise) when the addon loads, else wasm, else js.
 */
export async function createBackend(opts: { backend?: BackendChoice; threads?: number; initialBytes?: number } = {}): Promise<Backend> {
  const choice = opts.backend ?? 'auto';
  const threads = Math.max(1, opts.threads ?? defaultThreads());
  const arena = new WasmArena({ initialBytes: opts.initialBytes });
  const wasmMod = await import('./wasm/index.js');
  const feats = wasmMod.wasmFeatures();
  const nativeMod = await import('./native/index.js');
  const native = choice === 'native' || choice === 'auto' ? nativeMod.loadNativeBlas() : null;

  const info: BackendInfo = {
    name: 'js',
    reason: '',
    threads,
    simd: feats.simd,
    relaxedSimd: feats.relaxedSimd,
    blas: native && native.ok ? native.library : null,
    nativeUnavailable: native && !native.ok ? native.reason : null,
  };

  if (choice === 'js') {
    const { createJsKernels } = await import('./js/index.js');
    info.name = 'js';
    info.threads = 1;
    info.reason = 'requested with --backend js (plain TypeScript reference, slow)';
    const kernels = createJsKernels();
    return { kernels, arena, info, dispose: async () => {} };
  }
  if (!feats.simd) {
    if (choice !== 'auto') throw new UserError('this JavaScript engine has no WebAssembly SIMD; only --backend js works here');
    const { createJsKernels } = await import('./js/index.js');
    info.name = 'js';
    info.threads = 1;
    info.reason = 'WebAssembly SIMD is not available in this runtime';
    return { kernels: createJsKernels(), arena, info, dispose: async () => {} };
  }
  const wasm = await wasmMod.createWasmKernels(arena, { threads });
  if (choice === 'native' && native && !native.ok) {
    await wasm.dispose();
    throw new UserError(`--backend native: ${native.reason}`);
  }
  if (native && native.ok) {
    const kernels = nativeMod.createNativeKernels(wasm, native.addon, { threads });
    info.name = 'native';
    info.reason = choice === 'native' ? `requested; matrix products by ${native.library}, the rest by wasm` : `native BLAS found (${native.library}); it is the fastest for matrix products`;
    return { kernels, arena, info, dispose: async () => { await kernels.dispose(); } };
  }
  info.name = 'wasm';
  info.reason = choice === 'wasm' ? 'requested with --backend wasm' : `no native BLAS (${info.nativeUnavailable ?? 'not built'}); wasm SIMD${feats.relaxedSimd ? ' with FMA' : ''} is the fastest available`;
  return { kernels: wasm, arena, info, dispose: async () => { await wasm.dispose(); } };
}
