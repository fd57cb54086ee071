// The pool worker's loop (any host): instantiates the kernels module on the shared arena memory, then waits
// on its command block for work (see ops.ts for the layout and pool.ts for the caller).
import { instantiateKernels, type WasmFn } from './loader.js';
import type { PoolWorkerInit } from './platform-types.js';
import { ARGS_F64, CLAIM, CTRL_BYTES, DONE, ERR, OP, PARK, POOL_OPS, PROGRAM_OP, QUIT_OP, RESULT_F64, SEQ } from './ops.js';
import { PROGRAM_BYTES, runProgram } from './program.js';

/** Runs commands until told to quit; calls `ready()` once the module is instantiated. */
export function runPoolWorker(init: PoolWorkerInit, ready: () => void): void {
  const exports = instantiateKernels(init.module, init.memory, init.arenaBase);
  const fns: WasmFn[] = POOL_OPS.map((n) => exports[n]!);
  const i32 = new Int32Array(init.memory.buffer, init.ctrl, CTRL_BYTES / 4);
  const f64 = new Float64Array(init.memory.buffer, init.ctrl, CTRL_BYTES / 8);
  let seen = Atomics.load(i32, SEQ);
  // views of the program block, made on its first program (its offset never changes)
  let prog: { at: number; i32: Int32Array; f64: Float64Array } | null = null;
  ready();
  for (;;) {
    // A short spin catches back-to-back kernels cheaply; then sleep so an idle pool
    // leaves the cores to whoever needs them; the caller parks it (PARK) before handing the
    // cores to another pool (the native backend's BLAS threads), which ends the spin at once.
    if (Atomics.load(i32, SEQ) === seen) {
      const until = performance.now() + init.spinMs;
      let n = 0;
      while (Atomics.load(i32, SEQ) === seen && Atomics.load(i32, PARK) === 0 && ((++n & 255) !== 0 || performance.now() < until));
    }
    if (Atomics.load(i32, SEQ) === seen) Atomics.wait(i32, SEQ, seen);
    const s = Atomics.load(i32, SEQ);
    if (s === seen) continue;
    seen = s;
    // the caller may have cancelled this command and done the work itself
    if (Atomics.compareExchange(i32, CLAIM, s - 1, s) !== s - 1) continue;
    const op = i32[OP]!;
    if (op === QUIT_OP) break;
    const a = ARGS_F64;
    let r: number;
    try {
      if (op === PROGRAM_OP) {
        const at = f64[a]!;
        if (!prog || prog.at !== at) {
          prog = { at, i32: new Int32Array(init.memory.buffer, at, PROGRAM_BYTES / 4), f64: new Float64Array(init.memory.buffer, at, PROGRAM_BYTES / 8) };
        }
        runProgram(prog.i32, prog.f64, fns, f64[a + 1]!, f64[a + 2]!);
        r = 0;
      } else r = fns[op]!(f64[a]!, f64[a + 1]!, f64[a + 2]!, f64[a + 3]!, f64[a + 4]!, f64[a + 5]!, f64[a + 6]!, f64[a + 7]!,
      f64[a + 8]!, f64[a + 9]!, f64[a + 10]!, f64[a + 11]!, f64[a + 12]!, f64[a + 13]!, f64[a + 14]!, f64[a + 15]!,
      f64[a + 16]!, f64[a + 17]!, f64[a + 18]!, f64[a + 19]!, f64[a + 20]!, f64[a + 21]!, f64[a + 22]!, f64[a + 23]!);
      i32[ERR] = 0;
    } catch {
      // report instead of dying: the caller is blocked in Atomics.wait and would hang
      r = NaN;
      i32[ERR] = 1;
    }
    f64[RESULT_F64] = typeof r === 'number' ? r : 0;
    Atomics.store(i32, DONE, seen);
    Atomics.notify(i32, DONE);
  }
  Atomics.store(i32, DONE, seen);
  Atomics.notify(i32, DONE);
}
