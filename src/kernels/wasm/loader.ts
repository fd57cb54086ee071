import { enableRelaxedSimd, preferOptimizingCompiler, readWasmBuild } from './platform.js';
import type { WasmBuild } from './platform-types.js';

/** The functions assembly/index.ts exports (pointers are byte offsets in the shared memory). */
export type WasmFn = (...args: number[]) => number;
export type WasmExports = Record<string, WasmFn>;

/** Smallest module using a SIMD instruction: (func v128.const 0 drop). */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
  0x03, 0x02, 0x01, 0x00, // function section
  0x0a, 0x17, 0x01, 0x15, 0x00, // code section, one body of 21 bytes, no locals
  0xfd, 0x0c, ...new Array<number>(16).fill(0), // v128.const 0
  0x1a, 0x0b, // drop, end
]);

/** Same with f32x4.relaxed_madd (opcode 0xfd 0x105) on three constants. */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x3e, 0x01, 0x3c, 0x00,
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd
  0x1a, 0x0b,
]);

/** Which WebAssembly SIMD features this engine has, found by validating tiny modules. */
export function wasmFeatures(): { simd: boolean; relaxedSimd: boolean } {
  enableRelaxedSimd();
  const simd = WebAssembly.validate(SIMD_PROBE);
  return { simd, relaxedSimd: simd && WebAssembly.validate(RELAXED_PROBE) };
}

export type { WasmBuild } from './platform-types.js';
export { wasmPath } from './platform.js';

/**
 * Compiles the kernels module: the relaxed-SIMD build when the engine validates it,
 * else the plain SIMD build (or `build` when given, which tests use to check both).
 */
export function compileKernels(build?: WasmBuild): { module: WebAssembly.Module; build: WasmBuild } {
  const feats = wasmFeatures();
  if (!feats.simd) throw new Error('this JavaScript engine has no WebAssembly SIMD');
  const chosen: WasmBuild = build ?? (feats.relaxedSimd ? 'relaxed' : 'simd');
  if (chosen === 'relaxed' && !feats.relaxedSimd) throw new Error('this JavaScript engine has no relaxed SIMD');
  preferOptimizingCompiler();
  const bytes = readWasmBuild(chosen);
  return { module: new WebAssembly.Module(bytes as unknown as BufferSource), build: chosen };
}

/**
 * Instantiates the module on the arena's memory and checks that the module's static data
 * ends below the arena base (everything above it belongs to the arena).
 */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory, arenaBase: number): WasmExports {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  const exports = inst.exports as unknown as WasmExports;
  const heapBase = exports.heapBase!() >>> 0;
  if (heapBase > arenaBase) {
    throw new Error(`wasm kernels: static data ends at ${heapBase}, above the arena base ${arenaBase}`);
  }
  return exports;
}
