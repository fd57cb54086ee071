// A pool worker thread under Node (started by platform.ts spawnPoolWorker); the loop is worker-loop.ts.
import { parentPort, workerData } from 'node:worker_threads';
import type { PoolWorkerInit } from './platform-types.js';
import { runPoolWorker } from './worker-loop.js';

runPoolWorker(workerData as PoolWorkerInit, () => parentPort!.postMessage('ready'));
