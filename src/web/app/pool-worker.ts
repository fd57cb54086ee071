// A wasm pool worker in the browser: the same loop as Node's worker.ts, started by
// platform.web.ts spawnPoolWorker, which posts it the module and the shared memory.
import type { PoolWorkerInit } from '../../kernels/wasm/platform-types.js';
import { runPoolWorker } from '../../kernels/wasm/worker-loop.js';

const scope = self as unknown as { onmessage: ((e: MessageEvent<PoolWorkerInit>) => void) | null; postMessage(m: unknown): void };
scope.onmessage = (e) => {
  scope.onmessage = null;
  // never returns: the loop blocks in Atomics.wait between commands (allowed in workers)
  runPoolWorker(e.data, () => scope.postMessage('ready'));
};
