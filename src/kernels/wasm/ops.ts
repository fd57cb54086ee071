/**
 * Names of the wasm exports that worker threads may run, in a fixed order: a dispatch
 * names its function by index into this list (shared by the pool and the workers).
 */
export const POOL_OPS = [
  'gemm', 'gemmBatched', 'embeddingForward', 'embeddingBackward', 'rmsnormForward', 'rmsnormBackward',
  'rope', 'softmaxCausalForward', 'softmaxCausalBackward', 'swigluForward', 'swigluBackward',
  'add', 'axpy', 'scale', 'sumSquares', 'crossEntropyForward', 'crossEntropyForwardBackward',
  'adamwUpdate', 'lionUpdate', 'scheduleFreeAdamwUpdate', 'zero', 'gemmShared', 'gemmBatchedShared', 'dropout',
  'attentionCausalForward', 'attentionCausalBackward', 'addRmsnormForward', 'gemmSwiglu',
] as const;
export type PoolOp = (typeof POOL_OPS)[number];

/** Index of the op that tells a worker to leave its loop. */
export const QUIT_OP = -1;
/**
 * Index of the op that runs a program (program.ts) as one member of the team; its arguments:
 * the program block's byte offset, the number of steps, the worker's scratch.
 */
export const PROGRAM_OP = -2;

/**
 * Layout of one worker's command block in shared memory (bytes). Int32 slots: seq (bumped
 * by the caller for each command), done (the seq the worker finished), op, err, claim
 * (see below), park (the Int32 slots end before byte 24). Float64 slots:
 * the return value, then up to MAX_ARGS arguments.
 */
export const CTRL_BYTES = 256;
export const SEQ = 0;
export const DONE = 1;
export const OP = 2;
/** Set to 1 by a worker whose function threw (e.g. a wasm trap); the caller rethrows. */
export const ERR = 3;
/**
 * The last seq that was claimed, by the worker (it will run the command) or by the caller
 * (it cancelled the command and does the work itself). Claiming is a compare-exchange
 * from seq - 1 to seq, so exactly one side wins: a worker that has not been scheduled
 * yet (a busy core) never holds the caller up.
 */
export const CLAIM = 4;
/**
 * Set to 1 by the caller to make an idle worker skip the rest of its spin and sleep at once
 * (another thread pool is about to use the cores); cleared by the next command.
 */
export const PARK = 5;
export const RESULT_F64 = 3;
export const ARGS_F64 = 4;
export const MAX_ARGS = 24;
