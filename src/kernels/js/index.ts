import { runOneByOne, type Kernels } from '../types.js';
import { gemm, gemmStridedBatched } from './gemm.js';
import { embeddingBackward, embeddingForward } from './embedding.js';
import { addRmsnormForward, rmsnormBackward, rmsnormForward } from './norm.js';
import { ropeBackward, ropeForward } from './rope.js';
import { attentionCausalBackward, attentionCausalForward, softmaxCausalBackward, softmaxCausalForward } from './attention.js';
import { swigluBackward, swigluForward } from './swiglu.js';
import { add, axpy, scale, sumSquares } from './elementwise.js';
import { dropout } from './dropout.js';
import { crossEntropyForward, crossEntropyForwardBackward } from './loss.js';
import { adamwUpdate, lionUpdate, scheduleFreeAdamwUpdate } from './optim.js';

export * from './gemm.js';
export * from './embedding.js';
export * from './norm.js';
export * from './rope.js';
export * from './attention.js';
export * from './swiglu.js';
export * from './elementwise.js';
export * from './dropout.js';
export * from './loss.js';
export * from './optim.js';

/**
 * The plain TypeScript oracle: every kernel written the obvious way, accumulating in JS
 * numbers (float64). Works on Float32Array and Float64Array alike; the float64 path is
 * what gradient checks and the other backends' tests compare against.
 */
export function createJsKernels(): Kernels {
  return {
    name: 'js',
    threads: 1,
    gemm,
    gemmStridedBatched,
    embeddingForward,
    embeddingBackward,
    rmsnormForward,
    rmsnormBackward,
    addRmsnormForward,
    ropeForward,
    ropeBackward,
    softmaxCausalForward,
    softmaxCausalBackward,
    attentionCausalForward,
    attentionCausalBackward,
    swigluForward,
    swigluBackward,
    add,
    axpy,
    scale,
    sumSquares,
    dropout,
    crossEntropyForward,
    crossEntropyForwardBackward,
    adamwUpdate,
    lionUpdate,
    scheduleFreeAdamwUpdate,
    // through `this`: a copy with one kernel replaced ({ ...js, add }) runs its own in programs
    run(program) { runOneByOne(this, program); },
    dispose: () => {},
  };
}
