import { spawnPoolWorker } from './platform.js';
import type { PoolWorkerHandle } from './platform-types.js';
import { ARGS_F64, CLAIM, CTRL_BYTES, DONE, ERR, MAX_ARGS, OP, PARK, QUIT_OP, RESULT_F64, SEQ, type PoolOp, POOL_OPS } from './ops.js';

/**
 * Worker threads sharing the arena memory. The caller writes a command (op index and
 * numeric arguments) into a worker's block of shared memory, bumps its sequence number
 * and notifies; the worker runs the wasm function and bumps `done`. No messages, no
 * copies: one dispatch costs a few microseconds plus the wake-up.
 */
export class WorkerPool {
  private readonly workers: PoolWorkerHandle[] = [];
  private readonly i32: Int32Array[] = [];
  private readonly f64: Float64Array[] = [];
  private disposed = false;

  private constructor(readonly size: number) {}

  /**
   * Starts `size` workers. `ctrl` is the byte offset of size * CTRL_BYTES reserved bytes
   * in `memory` (zeroed) for the command blocks.
   */
  static async start(opts: {
    size: number; module: WebAssembly.Module; memory: WebAssembly.Memory; arenaBase: number; ctrl: number; spinMs?: number;
  }): Promise<WorkerPool> {
    const pool = new WorkerPool(opts.size);
    const ready: Promise<void>[] = [];
    for (let w = 0; w < opts.size; w++) {
      const ctrl = opts.ctrl + w * CTRL_BYTES;
      pool.i32.push(new Int32Array(opts.memory.buffer, ctrl, CTRL_BYTES / 4));
      pool.f64.push(new Float64Array(opts.memory.buffer, ctrl, CTRL_BYTES / 8));
      // worker_threads under Node, Web Workers in a browser (platform.ts / platform.web.ts)
      const worker = spawnPoolWorker({ module: opts.module, memory: opts.memory, arenaBase: opts.arenaBase, ctrl, spinMs: opts.spinMs ?? 0.2 });
      pool.workers.push(worker);
      ready.push(worker.ready);
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.dispose();
      throw e;
    }
    return pool;
  }

  /** Hands `op(...args)` to worker `w` (it must be idle) and returns at once. */
  start(w: number, op: number, args: readonly number[]): void {
    if (args.length > MAX_ARGS) throw new Error(`pool: ${args.length} arguments, at most ${MAX_ARGS}`);
    const f64 = this.f64[w]!;
    const i32 = this.i32[w]!;
    for (let i = 0; i < args.length; i++) f64[ARGS_F64 + i] = args[i]!;
    for (let i = args.length; i < MAX_ARGS; i++) f64[ARGS_F64 + i] = 0;
    i32[OP] = op;
    Atomics.store(i32, PARK, 0);
    Atomics.add(i32, SEQ, 1);
    Atomics.notify(i32, SEQ);
  }

  /**
   * Tells every idle worker to stop spinning and sleep now (it wakes on its next command):
   * for a caller about to run another thread pool on the same cores. Measured on 2 cores,
   * native backend: a wasm worker still spinning through each BLAS product cost ~15% of the
   * seed-small step.
   */
  park(): void {
    for (const i32 of this.i32) Atomics.store(i32, PARK, 1);
  }

  /**
   * Takes back the command last given to worker `w` if the worker has not started it
   * (then the caller must do that work itself, and need not wait). False: the worker has
   * it, wait() for it.
   */
  tryCancel(w: number): boolean {
    const i32 = this.i32[w]!;
    const seq = Atomics.load(i32, SEQ);
    return Atomics.compareExchange(i32, CLAIM, seq - 1, seq) === seq - 1;
  }

  /** Waits until worker `w` finished its command; returns what the function returned. */
  wait(w: number): number {
    const i32 = this.i32[w]!;
    const seq = Atomics.load(i32, SEQ);
    let spins = 0;
    for (;;) {
      const d = Atomics.load(i32, DONE);
      if (d === seq) break;
      if (++spins > 2000) Atomics.wait(i32, DONE, d, 50);
    }
    if (i32[ERR] === 1) throw new RangeError(`wasm kernels: ${POOL_OPS[i32[OP]!] ?? 'op'} failed in worker ${w} (out-of-bounds memory access?)`);
    return this.f64[w]![RESULT_F64]!;
  }

  static opIndex(name: PoolOp): number {
    return POOL_OPS.indexOf(name);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (let w = 0; w < this.workers.length; w++) {
      if (this.i32[w]) this.start(w, QUIT_OP, []);
    }
    await Promise.all(this.workers.map((wk) => wk.terminate()));
  }
}
