/**
 * The kernel interface: numbers in, numbers out. Every backend (js oracle, wasm SIMD,
 * native BLAS + wasm) implements exactly this, and the same test suite runs on each.
 *
 * Conventions (read these before writing or calling a kernel):
 * - All matrices are row-major. `ld*` is the distance in elements between two rows.
 * - Arrays are views into the backend's arena (see arena.ts). The wasm and native
 *   backends locate data by `view.byteOffset` in the shared memory, so a view made
 *   with `new Float32Array(somethingElse)` is an error there. Offsets are expressed by
 *   passing a subarray view (make them once, at planning time, not per step).
 * - The js backend also accepts Float64Array everywhere a FloatArray is allowed: the
 *   float64 path is what gradient checks run on. wasm/native accept Float32Array only.
 * - "writes" means the output is overwritten; "accumulates" means `+=`. Each kernel
 *   says which. Backward kernels accumulate into parameter gradients always.
 * - Aliasing: outputs must not overlap inputs unless the kernel says "in place ok".
 * - Kernels never allocate per call (beyond O(1) temporaries) and never print.
 */
export type FloatArray = Float32Array | Float64Array;

export type BackendName = 'js' | 'wasm' | 'native';

export interface Kernels {
  readonly name: BackendName;
  /** Threads the backend uses for its own work (1 = calling thread only). */
  readonly threads: number;

  // ---------------------------------------------------------------- matrix products
  /**
   * C = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T.
   * op(A) is M x K, op(B) is K x N, C is M x N. With transA the stored A is K x M
   * (lda >= M), else M x K (lda >= K); likewise B. beta = 0 means C is not read
   * (NaNs in C do not propagate). The three forms training needs:
   * nn (forward), tn (weight gradients: dW = X^T dY), nt (input gradients: dX = dY W^T).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: FloatArray, lda: number, B: FloatArray, ldb: number,
    beta: number, C: FloatArray, ldc: number,
  ): void;
  /**
   * `batch` independent gemms; the i-th uses A.subarray(i*strideA), B.subarray(i*strideB),
   * C.subarray(i*strideC). Used for attention heads.
   */
  gemmStridedBatched(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: FloatArray, lda: number, strideA: number,
    B: FloatArray, ldb: number, strideB: number,
    beta: number, C: FloatArray, ldc: number, strideC: number, batch: number,
  ): void;

  // ---------------------------------------------------------------- embedding
  /** out[i, :] = table[tokens[i], :] for i < N; table is [V, C]. Writes out. */
  embeddingForward(out: FloatArray, tokens: Int32Array, table: FloatArray, N: number, C: number): void;
  /** dtable[tokens[i], :] += dout[i, :]. Accumulates. */
  embeddingBackward(dtable: FloatArray, dout: FloatArray, tokens: Int32Array, N: number, C: number): void;

  // ---------------------------------------------------------------- RMSNorm
  /**
   * rstd[i] = 1 / sqrt(mean_j(inp[i,j]^2) + eps); out[i,j] = inp[i,j] * rstd[i] * weight[j].
   * inp/out are [N, C]. Writes out and rstd (rstd is kept for backward).
   */
  rmsnormForward(out: FloatArray, rstd: FloatArray, inp: FloatArray, weight: FloatArray, N: number, C: number, eps: number): void;
  /**
   * Given dout, accumulates dinp[i,:] and dweight[:] (both +=).
   * dinp = rstd * (w*dout - x * rstd^2 * mean_j(w_j*dout_j*x_j)).
   */
  rmsnormBackward(
    dinp: FloatArray, dweight: FloatArray, dout: FloatArray, inp: FloatArray,
    weight: FloatArray, rstd: FloatArray, N: number, C: number,
  ): void;

  /**
   * The residual add fused into the following norm (one pass over the rows instead of two):
   * sum[i,:] = a[i,:] + b[i,:], then rmsnormForward(out, rstd, sum, weight). Writes sum, out
   * and rstd. sum may alias a or b (in place ok: the decoder updates its residual in place);
   * out must not overlap the others. Same values as add followed by rmsnormForward (on wasm
   * and native the same bits). Its backward is rmsnormBackward: the add's gradient is the
   * identity, already accumulated into the residual gradient.
   */
  addRmsnormForward(sum: FloatArray, out: FloatArray, rstd: FloatArray, a: FloatArray, b: FloatArray,
    weight: FloatArray, N: number, C: number, eps: number): void;

  // ---------------------------------------------------------------- RoPE
  /**
   * Rotary position embedding, in place ok (x may be read and written), "rotate-half"
   * (GPT-NeoX / Hugging Face Llama) pairing: for each row r (position t = r % T), each
   * head h and i < D/2, with a = x[r*rowStride + h*D + i], b = x[... + i + D/2]:
   *   a' = a*cos[t, i] - b*sin[t, i];  b' = a*sin[t, i] + b*cos[t, i].
   * cos/sin are [T, D/2] tables (see ropeTables). `nRows` = B*T rows of which the first
   * nHeads*D floats of each row (starting at x[0]) are rotated.
   * ropeBackward applies the inverse rotation (the transpose), which is the gradient.
   */
  ropeForward(x: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray): void;
  ropeBackward(dx: FloatArray, nRows: number, T: number, nHeads: number, D: number, rowStride: number, cos: FloatArray, sin: FloatArray): void;

  // ---------------------------------------------------------------- attention softmax
  /**
   * In place over `nMat` matrices of [T, T] scores, each row t:
   * att[t, j] = softmax_j(scale * att[t, j]) over j <= t; att[t, j] = 0 for j > t.
   * (Scores above the diagonal are ignored, so the gemm may leave garbage there.)
   */
  softmaxCausalForward(att: FloatArray, nMat: number, T: number, scale: number): void;
  /**
   * datt holds dL/d(att) on entry; on exit it holds dL/d(raw scores) (in place):
   * dpre[t,j] = scale * att[t,j] * (datt[t,j] - sum_k att[t,k] datt[t,k]) for j <= t, 0 above.
   */
  softmaxCausalBackward(datt: FloatArray, att: FloatArray, nMat: number, T: number, scale: number): void;

  // ---------------------------------------------------------------- fused causal attention
  /**
   * Causal softmax attention of every head in one pass (flash-style), never forming the T x T
   * probabilities. qkv is [B*T, 3C] (C = H*D), each row q | k | v with head h at columns h*D of
   * each part (q and k already rotated). For each batch row b, head h and query t:
   *   out[b*T + t, h*D + d] = sum_{j<=t} p_tj v_j[d],  p_tj = exp(scale q_t.k_j - lse_t),
   *   lse[(b*H + h)*T + t] = log sum_{j<=t} exp(scale q_t.k_j)   (kept for backward).
   * Writes out [B*T, C] and lse [B*H*T].
   */
  attentionCausalForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number, H: number, D: number, scale: number): void;
  /**
   * Gradients of attentionCausalForward w.r.t. q, k and v, from dout [B*T, C] and the forward's
   * qkv, out and lse (the probabilities are recomputed). WRITES all of dqkv [B*T, 3C]
   * (dq | dk | dv in qkv's layout).
   */
  attentionCausalBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, out: FloatArray, lse: FloatArray,
    B: number, T: number, H: number, D: number, scale: number): void;

  // ---------------------------------------------------------------- SwiGLU
  /**
   * h is [N, 2F]: gate = h[:, 0:F], up = h[:, F:2F] (one fused projection).
   * out[i, j] = silu(gate[i,j]) * up[i,j], silu(g) = g * sigmoid(g). Writes out [N, F].
   */
  swigluForward(out: FloatArray, h: FloatArray, N: number, F: number): void;
  /**
   * Writes dh [N, 2F] (gate part then up part) from dout [N, F] and the saved h. In place ok
   * (dh may be h: the model writes the gradient over h, which backward no longer needs).
   */
  swigluBackward(dh: FloatArray, dout: FloatArray, h: FloatArray, N: number, F: number): void;

  // ---------------------------------------------------------------- elementwise helpers
  /** out[i] = a[i] + b[i]. Writes. out may alias a or b. */
  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  /** dst[i] += alpha * src[i]. */
  axpy(dst: FloatArray, src: FloatArray, alpha: number, n: number): void;
  /** x[i] *= s. */
  scale(x: FloatArray, s: number, n: number): void;
  /** sum_i x[i]^2, accumulated in float64 where the backend can. */
  sumSquares(x: FloatArray, n: number): number;
  /**
   * Inverted dropout with a mask hashed from a counter (nothing stored, nothing random):
   * out[i] = x[i] * keepScale(threshold) when mix32((counter + i * 0x9E3779B9) mod 2^32) >=
   * threshold, else 0, with mix32 = lowbias32 and keepScale = 2^32 / (2^32 - threshold) rounded
   * to float32, the inverse of the keep probability (js/dropout.ts). threshold and counter are
   * uint32; their int32 bit patterns are accepted too (callers keep them int32 so that V8 passes
   * them unboxed: a uint32 above 2^31 or a float scale would be a heap number per call). Element
   * i of a chunk that starts at i0 uses counter + i0 * 0x9E3779B9, so threads can split the range.
   * Writes out; in place ok. Every backend gives the same bits (kept values are one float32 multiply).
   */
  dropout(out: FloatArray, x: FloatArray, n: number, threshold: number, counter: number): void;

  // ---------------------------------------------------------------- loss
  /**
   * Softmax cross-entropy per row: losses[i] = logsumexp(logits[i,:]) - logits[i, targets[i]].
   * logits is [N, V]. Writes losses [N]. Does not modify logits.
   */
  crossEntropyForward(losses: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number): void;
  /**
   * Forward and backward fused: writes losses[i] as above and
   * dlogits[i, v] = dscale * (softmax(logits[i])[v] - [v == targets[i]]).
   * dlogits may be the same array as logits (in place ok): the LM head's logits are
   * not needed after this, which saves an [N, V] buffer.
   */
  crossEntropyForwardBackward(
    dlogits: FloatArray, losses: FloatArray, logits: FloatArray, targets: Int32Array,
    N: number, V: number, dscale: number,
  ): void;

  // ---------------------------------------------------------------- optimizer updates
  /**
   * AdamW with decoupled weight decay, for one contiguous parameter range of length n:
   *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
   *   p -= lr * ( (m/bc1) / (sqrt(v/bc2) + eps) + wd * p )
   * bc1 = 1 - b1^t, bc2 = 1 - b2^t are passed in (t = step count starting at 1).
   */
  adamwUpdate(
    p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number,
    lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number,
  ): void;
  /**
   * Lion (Chen et al. 2023): u = sign(b1*m + (1-b1)*g); p -= lr*(u + wd*p);
   * m = b2*m + (1-b2)*g.
   */
  lionUpdate(p: FloatArray, g: FloatArray, m: FloatArray, n: number, lr: number, b1: number, b2: number, wd: number): void;
  /**
   * Schedule-Free AdamW (Defazio et al. 2024), one step for a range of length n.
   * `y` is the parameter buffer the model reads (gradient g was taken at y);
   * z is the base sequence, x the averaged sequence, v the second moment.
   *   v = b2*v + (1-b2)*g^2
   *   z -= lr * ( g / (sqrt(v/bc2) + eps) + wd * y )
   *   x = (1-ck)*x + ck*z
   *   y = (1-b1)*z + b1*x
   * lr is the scheduled (warmed-up) rate for this step, ck = lr^2 / sum_{i<=t} lr_i^2.
   */
  scheduleFreeAdamwUpdate(
    y: FloatArray, g: FloatArray, z: FloatArray, x: FloatArray, v: FloatArray, n: number,
    lr: number, b1: number, b2: number, eps: number, wd: number, ck: number, bc2: number,
  ): void;

  // ---------------------------------------------------------------- programs
  /**
   * Runs a short sequence of kernel calls, in order, each seeing the results of the ones
   * before: the same results as calling them one by one (same bits on js and native; on wasm
   * the same bits too, products to float32 tolerance where a thread's share of rows changes
   * the blocking). The wasm backend hands the whole program to its team of workers in ONE
   * wake-up: each step's work is cut into chunks that the threads claim, with a barrier (a
   * shared counter) between steps, instead of a fork and join per kernel. Other backends run
   * the calls one by one. Only the kernels in PROGRAM_KERNELS may appear.
   */
  run(program: KernelProgram): void;

  /** Releases worker threads / native resources. The kernels must not be used after. */
  dispose(): Promise<void> | void;
}

/**
 * Every kernel except the matrix products, by name: the ones a wrapper backend (native BLAS,
 * the bench profiler) passes through to the kernels it wraps.
 */
export const NON_GEMM_KERNELS = [
  'embeddingForward', 'embeddingBackward', 'rmsnormForward', 'rmsnormBackward', 'addRmsnormForward', 'ropeForward', 'ropeBackward',
  'softmaxCausalForward', 'softmaxCausalBackward', 'attentionCausalForward', 'attentionCausalBackward', 'swigluForward', 'swigluBackward', 'add', 'axpy', 'scale',
  'sumSquares', 'dropout', 'crossEntropyForward', 'crossEntropyForwardBackward', 'adamwUpdate', 'lionUpdate',
  'scheduleFreeAdamwUpdate',
] as const;
export type NonGemmKernel = (typeof NON_GEMM_KERNELS)[number];
// A kernel added to the interface but missing from NON_GEMM_KERNELS is a compile error here.
type Unlisted = Exclude<keyof Kernels, NonGemmKernel | 'name' | 'threads' | 'gemm' | 'gemmStridedBatched' | 'run' | 'dispose'>;
const allListed: [Unlisted] extends [never] ? true : Unlisted = true;
void allListed;

/**
 * The kernels a program (Kernels.run) may hold: those whose work splits into independent
 * chunks of rows, columns or ranges (no reduction across threads), so a team of threads can
 * share each step. The MLP block's forward (norm, gate|up product, SwiGLU, down product,
 * residual add) and backward (products, SwiGLU backward) are made of these.
 */
export const PROGRAM_KERNELS = [
  'gemm', 'rmsnormForward', 'addRmsnormForward', 'swigluForward', 'swigluBackward', 'add', 'axpy', 'scale', 'dropout',
] as const;
export type ProgramKernel = (typeof PROGRAM_KERNELS)[number];
/** One step of a program: the kernel's name, then exactly the arguments its method takes. */
export type KernelCall = { [K in ProgramKernel]: [K, ...Parameters<Kernels[K]>] }[ProgramKernel];
export type KernelProgram = readonly KernelCall[];

/**
 * Kernels.run as calls one by one, through `k`'s own methods (so a wrapper or a test's
 * override of one kernel sees the program's calls too).
 */
export function runOneByOne(k: Kernels, program: KernelProgram): void {
  for (const call of program) {
    if (!(PROGRAM_KERNELS as readonly string[]).includes(call[0])) throw new TypeError(`Kernels.run: ${String(call[0])} cannot be a program step`);
    (k[call[0]] as (...a: unknown[]) => void)(...call.slice(1));
  }
}

/** Precomputes RoPE tables cos/sin [T, D/2] with inv_freq_i = theta^(-2i/D). */
export function ropeTables(cos: FloatArray, sin: FloatArray, T: number, D: number, theta: number): void {
  const half = D / 2;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const ang = t * Math.pow(theta, (-2 * i) / D);
      cos[t * half + i] = Math.cos(ang);
      sin[t * half + i] = Math.sin(ang);
    }
  }
}
