import type { WasmArena } from '../arena.js';
import type { Kernels } from '../types.js';
// Placeholder: the AssemblyScript backend lands here.
export function wasmFeatures(): { simd: boolean; relaxedSimd: boolean } {
  return { simd: false, relaxedSimd: false };
}
export async function createWasmKernels(_arena: WasmArena, _opts: { threads: number }): Promise<Kernels> {
  throw new Error('wasm kernels not built yet');
}
