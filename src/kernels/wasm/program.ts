// A program for the team of worker threads (Kernels.run on the wasm backend): the caller writes
// every step's chunks of work into one block of shared memory and wakes the workers ONCE; every
// thread (the caller too) then runs the same loop below: claim the next chunk of the current
// step, run it, and when the step has no chunk left, wait until all of its chunks are done (a
// barrier on a shared counter) before going on to the next step.
//
// Claiming (an atomic add on the step's counter) instead of fixed shares is what makes the
// barrier safe on a busy machine: a worker that is not scheduled claims nothing, so the others
// (at worst the caller alone) run its chunks, and nobody waits on a thread that never started.
import type { WasmFn } from './loader.js';
import { MAX_ARGS } from './ops.js';

/** Int32 slots per step header: op, first chunk, chunk count, scratch argument, claim, done, err, pad. */
export const STEP_INTS = 8;
export const STEP_OP = 0;
export const STEP_FIRST = 1;
export const STEP_CHUNKS = 2;
/** Index of the argument that each thread replaces by its own scratch (gemm packing), or -1. */
export const STEP_SCRATCH_ARG = 3;
export const STEP_CLAIM = 4;
export const STEP_DONE = 5;
/** Set to 1 when a chunk's function threw (a wasm trap); the caller rethrows after the program. */
export const STEP_ERR = 6;

/** At most this many steps and chunks per dispatch (a longer program is dispatched in parts). */
export const MAX_STEPS = 32;
export const MAX_CHUNKS = 384;
/** Bytes of the program block: step headers, then MAX_ARGS float64 arguments per chunk. */
export const PROGRAM_BYTES = MAX_STEPS * STEP_INTS * 4 + MAX_CHUNKS * MAX_ARGS * 8;
/** Index of chunk 0's first argument in a Float64Array over the block. */
export const ARGS_AT = (MAX_STEPS * STEP_INTS * 4) / 8;

/** Busy-wait iterations before a thread waiting at a barrier sleeps (with a timeout). */
const BARRIER_SPINS = 4000;

/**
 * Runs steps 0..nSteps-1 of the program in the block viewed by i32/f64 (both from the block's
 * first byte) as one member of the team; `scratch` is this thread's gemm scratch.
 */
export function runProgram(i32: Int32Array, f64: Float64Array, fns: readonly WasmFn[], nSteps: number, scratch: number): void {
  const args = new Array<number>(MAX_ARGS).fill(0);
  for (let s = 0; s < nSteps; s++) {
    const h = s * STEP_INTS;
    const fn = fns[i32[h + STEP_OP]!]!;
    const first = i32[h + STEP_FIRST]!, n = i32[h + STEP_CHUNKS]!, sa = i32[h + STEP_SCRATCH_ARG]!;
    for (;;) {
      const c = Atomics.add(i32, h + STEP_CLAIM, 1);
      if (c >= n) break;
      const base = ARGS_AT + (first + c) * MAX_ARGS;
      for (let i = 0; i < MAX_ARGS; i++) args[i] = f64[base + i]!;
      if (sa >= 0) args[sa] = scratch;
      try {
        fn(...args);
      } catch {
        // reported, not thrown here: the other threads wait for this chunk at the barrier
        Atomics.store(i32, h + STEP_ERR, 1);
      }
      if (Atomics.add(i32, h + STEP_DONE, 1) + 1 === n) Atomics.notify(i32, h + STEP_DONE);
    }
    // the barrier: the next step may read what any chunk of this one wrote
    let spins = 0;
    for (;;) {
      const d = Atomics.load(i32, h + STEP_DONE);
      if (d >= n) break;
      if (++spins > BARRIER_SPINS) Atomics.wait(i32, h + STEP_DONE, d, 1);
    }
  }
}
