import type { WasmArena } from '../arena.js';
import type { Kernels } from '../types.js';
import { createWasmKernelsImpl } from './kernels.js';

export { wasmFeatures } from './loader.js';
export type { WasmBuild } from './loader.js';
export { createWasmKernelsImpl, type WasmKernels, type WasmKernelOptions } from './kernels.js';

/**
 * The wasm SIMD backend on `arena`'s shared memory, with `threads` threads in total
 * (the calling thread plus threads - 1 workers). Uses the relaxed-SIMD (FMA) build when
 * the engine has it, else the plain SIMD build.
 */
export async function createWasmKernels(arena: WasmArena, opts: { threads: number }): Promise<Kernels> {
  return createWasmKernelsImpl(arena, { threads: opts.threads });
}
