/** Types shared by the host seams (platform.ts for Node, platform.web.ts for browsers). */

export type WasmBuild = 'relaxed' | 'simd';

/** What a pool worker needs to run kernels on the arena (see worker-loop.ts). */
export interface PoolWorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  arenaBase: number;
  /** Byte offset of this worker's command block (ops.ts). */
  ctrl: number;
  /** How long an idle worker spins before it sleeps on Atomics.wait. */
  spinMs: number;
}

export interface PoolWorkerHandle {
  /** Settles when the worker has instantiated the module and waits for commands. */
  ready: Promise<void>;
  terminate(): Promise<void>;
}
