// What the wasm backend needs from its host, Node's version. The browser build swaps this file
// for platform.web.ts (same exports; scripts/build-web.mjs resolves `./platform.js` there), so
// loader.ts, pool.ts and the worker loop hold no Node-only code.
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { PoolWorkerHandle, PoolWorkerInit, WasmBuild } from './platform-types.js';

/**
 * Node 20's V8 keeps relaxed SIMD behind a flag that NODE_OPTIONS refuses, so it is set
 * here, before anything is validated or compiled. V8 flags are process-wide and the
 * setting is idempotent, so calling this more than once is harmless.
 */
export function enableRelaxedSimd(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
}

/**
 * V8 first runs wasm through its baseline compiler (Liftoff) and swaps in optimized code
 * only for later calls: a kernel that runs one long loop per call (cross-entropy over a
 * whole batch) stays 2-3x slower for many calls, and the gemm micro-kernel for the first
 * products. These modules are small (tens of KB), so compiling them optimized up front
 * costs a few milliseconds once. The flag is read when a module is compiled.
 */
export function preferOptimizingCompiler(): void {
  v8.setFlagsFromString('--no-liftoff');
}

/** Path of a build made by scripts/build-wasm.mjs (dist/wasm/, beside this file's dist/kernels/wasm/). */
export function wasmPath(build: WasmBuild): URL {
  return new URL(`../../wasm/kernels-${build}.wasm`, import.meta.url);
}

/** The bytes of a kernels build. */
export function readWasmBuild(build: WasmBuild): Uint8Array {
  try {
    return readFileSync(wasmPath(build));
  } catch {
    throw new Error(`wasm kernels not built: ${wasmPath(build).pathname} is missing (run npm run build:wasm)`);
  }
}

/** Starts one pool worker thread (worker.js) on the shared memory. */
export function spawnPoolWorker(init: PoolWorkerInit): PoolWorkerHandle {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
  // An idle pool must not keep the process alive.
  worker.unref();
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return { ready, terminate: async () => { await worker.terminate(); } };
}
