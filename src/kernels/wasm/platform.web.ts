// What the wasm backend needs from its host, the browser's version of platform.ts (the web
// bundle resolves `./platform.js` to this file: scripts/build-web.mjs). The kernel builds are
// inlined in the bundle, pool workers are module Web Workers running pool-worker.js, the
// bundle built from src/web/app/pool-worker.ts next to the bundle that imports this file.
import { relaxed, simd } from 'pocketlm:wasm-builds';
import type { PoolWorkerHandle, PoolWorkerInit, WasmBuild } from './platform-types.js';

/** Browsers ship relaxed SIMD enabled or not at all: nothing to switch on. */
export function enableRelaxedSimd(): void {}

/** Browsers pick their wasm compilers themselves. */
export function preferOptimizingCompiler(): void {}

export function wasmPath(build: WasmBuild): URL {
  return new URL(`kernels-${build}.wasm`, import.meta.url);
}

export function readWasmBuild(build: WasmBuild): Uint8Array {
  return build === 'relaxed' ? relaxed : simd;
}

/**
 * Starts one pool worker. The module and the shared memory are posted to it (browsers allow
 * that only on a cross-origin isolated page, which is also what makes the memory shareable).
 */
export function spawnPoolWorker(init: PoolWorkerInit): PoolWorkerHandle {
  const worker = new Worker(new URL('./pool-worker.js', import.meta.url), { type: 'module', name: 'pocketlm-pool' });
  const ready = new Promise<void>((resolve, reject) => {
    worker.onmessage = () => resolve();
    worker.onerror = (e) => reject(new Error(`pool worker failed to start: ${e.message}`));
  });
  worker.postMessage(init);
  return { ready, terminate: async () => { worker.terminate(); } };
}
