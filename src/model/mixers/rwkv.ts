import type { FloatArray } from '../../kernels/types.js';

/**
 * RWKV-style time mixing (issue #14): a linear-recurrence sequence mixer with a per-head
 * matrix state, as an op pair (forward + hand-written backward) in plain TypeScript over
 * Float32Array/Float64Array. No Kernels: this file is the ORACLE the fast form the model runs
 * (rwkv-mixer.ts, the `Mixer` behind model.mixer = "rwkv") is tested against.
 *
 * The op, for one sequence of T rows x_t [C] (the block's normed input), H heads of D = C / H:
 *   token shift  xr_t = mu_r * x_t + (1 - mu_r) * x_(t-1)    (x_(-1) = 0; same for k, v with mu_k, mu_v)
 *   projections  r = xr Wr,  k = xk Wk,  v = xv Wv,  g = xg Wg  (weights [C, C], stored [in, out])
 *   receptance   rho = r (the query; the name is kept from the gate it was in RWKV-4)
 *   decay        w = exp(-exp(decay)) in (0, 1) per channel; logw = -exp(decay) < 0
 *   per head h (channels h*D .. h*D+D of rho, k, v, w, u), state S_t [D, D] (row i: key channel,
 *   column j: value channel), S_(-1) = 0:
 *     o_t     = rho_t^T (S_(t-1) + diag(u) k_t v_t^T)          (u = bonus: the current token's weight)
 *     S_t     = diag(w) S_(t-1) + k_t v_t^T
 *   head norm    n_t = o_t / rms_head(o_t) * normW            (RMS over each head's D channels, eps)
 *   gate         z_t = n_t * silu(g_t)                         (the receptance gate, RWKV-5's)
 *   output       y = z Wo                                      ([C, C])
 *
 * Choices made here: the query is r itself (any sign) and the gate is RWKV-5's silu(x_g Wg) on
 * the normed output. A first version used sigmoid(r) as both query and gate (RWKV-4's gate
 * carried over to the matrix state); with a query that is positive in every channel it learned
 * clearly worse per step (1.82 against attention's 1.50 bits per byte after 15 minutes of
 * `default`). The decay does not depend on the data (RWKV-5, not RWKV-6): the issue allows
 * RWKV-6 only if measured.
 *
 * Two forms of the wkv core (the middle two lines), both with forward and backward:
 * - RECURRENT (`wkvRecurrentForward/Backward`): the step-by-step recurrence, the oracle. Its
 *   backward keeps every S_(t-1) (T D^2 floats per head, allocated per call: tests only).
 * - CHUNKED (`wkvChunkedForward/Backward`, chunk length L): within a chunk starting with state
 *   S0 (local index t = 0..n-1, n <= L),
 *     o_t  = (w^t * rho_t)^T S0  +  sum_(s<t) A[t,s] v_s  +  A[t,t] v_t
 *     A[t,s] = sum_i rho_t,i k_s,i w_i^(t-s-1)   (s < t),   A[t,t] = sum_i rho_t,i u_i k_t,i
 *     S_end = w^n * S0 + sum_s (w^(n-1-s) * k_s) v_s^T
 *   i.e. three products of [n, D] blocks (inter-chunk query x state, A V, the state update) and
 *   one decay-weighted score block A. Every decay factor is w^m with 0 <= m <= L, computed as
 *   exp(m * logw) <= 1: nothing overflows, and a factor that underflows to 0 (w^m < 1e-308 in
 *   float64 arithmetic) multiplies a term that is negligible anyway. The usual full factorisation A = (rho w^t)(k w^(-s-1))^T, which would make
 *   A one gemm too, is NOT used: w^(-s-1) overflows float32 once (s+1) |logw| > 88 (decay 3 =>
 *   |logw| = 20 => already at s = 4). So A is an O(n^2 D) loop over a table of w^m; a fast
 *   kernel may use the factorised gemm for heads whose L * max|logw| is small enough, or
 *   sub-chunks. The state entering each chunk is SAVED (B H ceil(T/L) D^2 floats), and the
 *   backward walks the chunks in reverse carrying dL/dS.
 *
 * Gradients: the decay's gradient is taken w.r.t. logw in the chunked form (every factor is
 * exp(m logw), so d/dlogw = m * factor) and w.r.t. w in the recurrent one (then times w);
 * d logw / d decay = -exp(decay) = logw. The two derivations agree only if both are right.
 *
 * Every function here allocates its scratch per call and uses plain loops for the products: it
 * is the reference. The wired-in version takes planned buffers (activations.ts) and runs the
 * [N, C] x [C, C] projections and the per-chunk block products through Kernels.gemm.
 *
 * Decoding (`rwkvDecodeStep`): a row's whole context is its previous input x_(t-1) [C] (token
 * shift) and the H states [D, D]: constant memory and time per token, no cache that grows.
 *
 * The wired-in version (rwkv-mixer.ts) computes the same op with its products in Kernels'
 * batched gemm over head-major [L, D] chunk blocks, its decay powers per layer, and the chunk
 * states recomputed in backward; the seam it plugs into is mixer.ts.
 */

export interface RwkvDims {
  B: number;
  T: number;
  C: number;
  H: number;
  /** eps of the per-head RMS norm. */
  eps: number;
}

/** Parameters of one time-mixing layer (and, with the same shapes, their gradients). */
export interface RwkvWeights {
  /** Token-shift mixes [C]: the weight of x_t (1 - mix goes to x_(t-1)). */
  mixR: FloatArray;
  mixK: FloatArray;
  mixV: FloatArray;
  mixG: FloatArray;
  /** Projections [C, C], stored [in, out]. */
  wr: FloatArray;
  wk: FloatArray;
  wv: FloatArray;
  /** The gate's projection. */
  wg: FloatArray;
  /** Decay parameter [C]: w = exp(-exp(decay)). */
  decay: FloatArray;
  /** Bonus u [C] for the current token. */
  bonus: FloatArray;
  /** Per-head RMS norm weight [C]. */
  normW: FloatArray;
  /** Output projection [C, C]. */
  wo: FloatArray;
}

/** What the forward saves for backward (all [N, C], N = B*T, unless stated). */
export interface RwkvActivations {
  /** Input [N, C] (read). */
  x: FloatArray;
  /** r, the query. */
  rho: FloatArray;
  /** The gate's pre-activation g (y = (n * silu(g)) Wo). */
  g: FloatArray;
  k: FloatArray;
  v: FloatArray;
  /** wkv output before the head norm. */
  o: FloatArray;
  /** 1 / rms of each (row, head) [N, H]. */
  rstd: FloatArray;
  /** Head-normed output (input of the out-projection). */
  nrm: FloatArray;
  /** Output [N, C] (written). */
  y: FloatArray;
  /** Chunked form: the state entering each chunk [B, H, ceil(T/L), D, D]. */
  states: FloatArray;
}

export type WkvForm = { kind: 'recurrent' } | { kind: 'chunked'; chunk: number };

export function chunkCount(T: number, chunk: number): number {
  return Math.ceil(T / chunk);
}

/** Floats of `RwkvActivations.states` for a form (0 for the recurrent one). */
export function stateFloats(dims: RwkvDims, form: WkvForm): number {
  if (form.kind === 'recurrent') return 0;
  const D = dims.C / dims.H;
  return dims.B * dims.H * chunkCount(dims.T, form.chunk) * D * D;
}

// ---------------------------------------------------------------------------------------------
// Small dense products (row-major). Plain loops: the Kernels gemm takes over when this is wired in.

/** Y[N, M] = X[N, K] W[K, M] (written). */
function matmul(y: FloatArray, x: FloatArray, w: FloatArray, N: number, K: number, M: number): void {
  for (let n = 0; n < N; n++) {
    const yr = n * M;
    for (let m = 0; m < M; m++) y[yr + m] = 0;
    for (let kk = 0; kk < K; kk++) {
      const a = x[n * K + kk]!;
      if (a === 0) continue;
      const wr = kk * M;
      for (let m = 0; m < M; m++) y[yr + m] += a * w[wr + m]!;
    }
  }
}

/** dW[K, M] += X[N, K]^T dY[N, M]. */
function matmulTNAcc(dw: FloatArray, x: FloatArray, dy: FloatArray, N: number, K: number, M: number): void {
  for (let n = 0; n < N; n++) {
    for (let kk = 0; kk < K; kk++) {
      const a = x[n * K + kk]!;
      if (a === 0) continue;
      const dr = kk * M;
      for (let m = 0; m < M; m++) dw[dr + m] += a * dy[n * M + m]!;
    }
  }
}

/** dX[N, K] = dY[N, M] W[K, M]^T (written). */
function matmulNT(dx: FloatArray, dy: FloatArray, w: FloatArray, N: number, K: number, M: number): void {
  for (let n = 0; n < N; n++) {
    for (let kk = 0; kk < K; kk++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += dy[n * M + m]! * w[kk * M + m]!;
      dx[n * K + kk] = s;
    }
  }
}

/** logw = -exp(decay) per channel. */
export function logDecay(out: Float64Array, decay: FloatArray): Float64Array {
  for (let c = 0; c < decay.length; c++) out[c] = -Math.exp(decay[c]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The wkv core: rho, k, v [N, C] -> o [N, C] (heads side by side, as in attention's atty).

/**
 * Step-by-step recurrence (the oracle). Writes o, and with `final` [B, H, D, D] each sequence's
 * state after its last token (S_(T-1)).
 */
export function wkvRecurrentForward(
  o: FloatArray, rho: FloatArray, k: FloatArray, v: FloatArray, logw: Float64Array, u: FloatArray,
  B: number, T: number, H: number, D: number, final?: FloatArray,
): void {
  const C = H * D;
  const S = new Float64Array(D * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hc = h * D;
      S.fill(0);
      for (let t = 0; t < T; t++) {
        const row = (b * T + t) * C + hc;
        let ruk = 0;
        for (let i = 0; i < D; i++) ruk += rho[row + i]! * u[hc + i]! * k[row + i]!;
        for (let j = 0; j < D; j++) {
          let acc = ruk * v[row + j]!;
          for (let i = 0; i < D; i++) acc += rho[row + i]! * S[i * D + j]!;
          o[row + j] = acc;
        }
        for (let i = 0; i < D; i++) {
          const wi = Math.exp(logw[hc + i]!);
          const ki = k[row + i]!;
          for (let j = 0; j < D; j++) S[i * D + j] = wi * S[i * D + j]! + ki * v[row + j]!;
        }
      }
      if (final) final.set(S, (b * H + h) * D * D);
    }
  }
}

/**
 * Backward of `wkvRecurrentForward`: WRITES drho, dk, dv; ACCUMULATES dlogw and du. Re-runs the
 * recurrence keeping every S_(t-1), then walks back with G = dL/dS_t:
 *   drho_t = S_(t-1) do_t + u k_t (v_t . do_t)      dk_t = u rho_t (v_t . do_t) + G_t v_t
 *   dv_t = (rho_t u k_t . 1) do_t + G_t^T k_t         du += rho_t k_t (v_t . do_t)
 *   dw_i += sum_j G_t[i,j] S_(t-1)[i,j]               G_(t-1) = diag(w) G_t + rho_t do_t^T
 */
export function wkvRecurrentBackward(
  drho: FloatArray, dk: FloatArray, dv: FloatArray, dlogw: Float64Array, du: FloatArray,
  dout: FloatArray, rho: FloatArray, k: FloatArray, v: FloatArray, logw: Float64Array, u: FloatArray,
  B: number, T: number, H: number, D: number,
): void {
  const C = H * D;
  const DD = D * D;
  const prev = new Float64Array(T * DD); // prev[t] = S_(t-1)
  const G = new Float64Array(DD);
  const dw = new Float64Array(D);
  const w = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hc = h * D;
      for (let i = 0; i < D; i++) w[i] = Math.exp(logw[hc + i]!);
      // forward again, keeping the states
      prev.fill(0, 0, DD);
      for (let t = 0; t + 1 < T; t++) {
        const row = (b * T + t) * C + hc;
        for (let i = 0; i < D; i++) {
          for (let j = 0; j < D; j++) {
            prev[(t + 1) * DD + i * D + j] = w[i]! * prev[t * DD + i * D + j]! + k[row + i]! * v[row + j]!;
          }
        }
      }
      G.fill(0);
      dw.fill(0);
      for (let t = T - 1; t >= 0; t--) {
        const row = (b * T + t) * C + hc;
        const sp = t * DD;
        let vdo = 0;
        for (let j = 0; j < D; j++) vdo += v[row + j]! * dout[row + j]!;
        let ruk = 0;
        for (let i = 0; i < D; i++) {
          const ri = rho[row + i]!, ki = k[row + i]!, ui = u[hc + i]!;
          ruk += ri * ui * ki;
          let sdo = 0, gv = 0, gs = 0;
          for (let j = 0; j < D; j++) {
            sdo += prev[sp + i * D + j]! * dout[row + j]!;
            gv += G[i * D + j]! * v[row + j]!;
            gs += G[i * D + j]! * prev[sp + i * D + j]!;
          }
          drho[row + i] = sdo + ui * ki * vdo;
          dk[row + i] = ui * ri * vdo + gv;
          du[hc + i] += ri * ki * vdo;
          dw[i] += gs;
        }
        for (let j = 0; j < D; j++) {
          let gk = 0;
          for (let i = 0; i < D; i++) gk += G[i * D + j]! * k[row + i]!;
          dv[row + j] = ruk * dout[row + j]! + gk;
        }
        for (let i = 0; i < D; i++) {
          for (let j = 0; j < D; j++) G[i * D + j] = w[i]! * G[i * D + j]! + rho[row + i]! * dout[row + j]!;
        }
      }
      // dL/dlogw = dL/dw * w
      for (let i = 0; i < D; i++) dlogw[hc + i] += dw[i]! * w[i]!;
    }
  }
}

/** pow[m * D + i] = w_i^m = exp(m logw_i) for m = 0..L, head channels hc..hc+D. */
function decayPowers(pow: Float64Array, logw: Float64Array, hc: number, D: number, L: number): void {
  for (let m = 0; m <= L; m++) for (let i = 0; i < D; i++) pow[m * D + i] = Math.exp(m * logw[hc + i]!);
}

/**
 * The decay-weighted score block of one chunk: A[t * L + s] for s <= t < n (see the file
 * comment); entries above the diagonal are left unwritten and never read.
 */
function chunkScores(
  A: Float64Array, L: number, rho: FloatArray, k: FloatArray, u: FloatArray, pow: Float64Array,
  base: number, C: number, hc: number, n: number, D: number,
): void {
  for (let t = 0; t < n; t++) {
    const rt = base + t * C;
    for (let s = 0; s < t; s++) {
      const ks = base + s * C;
      const pm = (t - s - 1) * D;
      let a = 0;
      for (let i = 0; i < D; i++) a += rho[rt + i]! * k[ks + i]! * pow[pm + i]!;
      A[t * L + s] = a;
    }
    let d = 0;
    for (let i = 0; i < D; i++) d += rho[rt + i]! * u[hc + i]! * k[rt + i]!;
    A[t * L + t] = d;
  }
}

/**
 * Chunked form (chunk length L). Writes o, the state entering each chunk (`states`) and, with
 * `final` [B, H, D, D], each sequence's state after its last token (a prompt's prefill).
 */
export function wkvChunkedForward(
  o: FloatArray, states: FloatArray, rho: FloatArray, k: FloatArray, v: FloatArray, logw: Float64Array, u: FloatArray,
  B: number, T: number, H: number, D: number, L: number, final?: FloatArray,
): void {
  if (!Number.isInteger(L) || L < 1) throw new RangeError(`wkv: chunk length must be a positive integer (got ${L})`);
  const C = H * D;
  const DD = D * D;
  const nc = chunkCount(T, L);
  const S = new Float64Array(DD);
  const pow = new Float64Array((L + 1) * D);
  const A = new Float64Array(L * L);
  for (let h = 0; h < H; h++) {
    const hc = h * D;
    decayPowers(pow, logw, hc, D, L);
    for (let b = 0; b < B; b++) {
      S.fill(0);
      for (let c = 0; c < nc; c++) {
        const t0 = c * L;
        const n = Math.min(L, T - t0);
        const base = (b * T + t0) * C + hc;
        const st = ((b * H + h) * nc + c) * DD;
        for (let e = 0; e < DD; e++) states[st + e] = S[e]!;
        chunkScores(A, L, rho, k, u, pow, base, C, hc, n, D);
        for (let t = 0; t < n; t++) {
          const rt = base + t * C;
          // inter-chunk: (w^t * rho_t)^T S0   (a [n, D] x [D, D] product)
          for (let j = 0; j < D; j++) {
            let acc = 0;
            for (let i = 0; i < D; i++) acc += pow[t * D + i]! * rho[rt + i]! * S[i * D + j]!;
            o[rt + j] = acc;
          }
          // intra-chunk: A[t, 0..t] V   (a [n, n] x [n, D] product, lower triangle)
          for (let s = 0; s <= t; s++) {
            const a = A[t * L + s]!;
            const vs = base + s * C;
            for (let j = 0; j < D; j++) o[rt + j] += a * v[vs + j]!;
          }
        }
        // carry: S = w^n * S + sum_s (w^(n-1-s) * k_s) v_s^T   (a [D, n] x [n, D] product)
        for (let i = 0; i < D; i++) {
          const wn = pow[n * D + i]!;
          for (let j = 0; j < D; j++) S[i * D + j] = wn * S[i * D + j]!;
          for (let s = 0; s < n; s++) {
            const kt = pow[(n - 1 - s) * D + i]! * k[base + s * C + i]!;
            if (kt === 0) continue;
            const vs = base + s * C;
            for (let j = 0; j < D; j++) S[i * D + j] += kt * v[vs + j]!;
          }
        }
      }
      if (final) final.set(S, (b * H + h) * DD);
    }
  }
}

/**
 * Backward of `wkvChunkedForward` (needs its `states`): WRITES drho, dk, dv; ACCUMULATES dlogw
 * and du. Chunks in reverse, carrying G = dL/dS_end of the chunk (0 after the last one):
 *   dA[t,s] = do_t . v_s (s <= t)
 *   drho_t  = w^t * (S0 do_t) + sum_(s<t) dA[t,s] w^(t-s-1) * k_s + dA[t,t] u * k_t
 *   dk_s    = sum_(t>s) dA[t,s] w^(t-s-1) * rho_t + dA[s,s] u * rho_s + w^(n-1-s) * (G v_s)
 *   dv_s    = sum_(t>=s) A[t,s] do_t + G^T (w^(n-1-s) * k_s)
 *   du     += sum_t dA[t,t] rho_t * k_t
 *   dlogw  += every factor w^m times m times its own gradient (four terms below)
 *   G      <- w^n * G + sum_t (w^t * rho_t) do_t^T        (= dL/dS0, the previous chunk's G)
 */
export function wkvChunkedBackward(
  drho: FloatArray, dk: FloatArray, dv: FloatArray, dlogw: Float64Array, du: FloatArray,
  dout: FloatArray, states: FloatArray, rho: FloatArray, k: FloatArray, v: FloatArray, logw: Float64Array, u: FloatArray,
  B: number, T: number, H: number, D: number, L: number,
): void {
  const C = H * D;
  const DD = D * D;
  const nc = chunkCount(T, L);
  const G = new Float64Array(DD);
  const Gn = new Float64Array(DD);
  const pow = new Float64Array((L + 1) * D);
  const A = new Float64Array(L * L);
  const dA = new Float64Array(L * L);
  const sdo = new Float64Array(D);
  const gv = new Float64Array(D);
  for (let h = 0; h < H; h++) {
    const hc = h * D;
    decayPowers(pow, logw, hc, D, L);
    for (let b = 0; b < B; b++) {
      G.fill(0);
      for (let c = nc - 1; c >= 0; c--) {
        const t0 = c * L;
        const n = Math.min(L, T - t0);
        const base = (b * T + t0) * C + hc;
        const st = ((b * H + h) * nc + c) * DD;
        chunkScores(A, L, rho, k, u, pow, base, C, hc, n, D);
        // dA = dO V^T (lower triangle)
        for (let t = 0; t < n; t++) {
          for (let s = 0; s <= t; s++) {
            let a = 0;
            for (let j = 0; j < D; j++) a += dout[base + t * C + j]! * v[base + s * C + j]!;
            dA[t * L + s] = a;
          }
        }
        // G_prev = w^n * G + sum_t (w^t * rho_t) do_t^T, and the state terms of dlogw
        for (let i = 0; i < D; i++) {
          let gs = 0;
          for (let j = 0; j < D; j++) gs += G[i * D + j]! * states[st + i * D + j]!;
          dlogw[hc + i] += n * pow[n * D + i]! * gs;
          for (let j = 0; j < D; j++) Gn[i * D + j] = pow[n * D + i]! * G[i * D + j]!;
        }
        for (let t = 0; t < n; t++) {
          const rt = base + t * C;
          // S0 do_t and G v_t
          for (let i = 0; i < D; i++) {
            let a = 0, g = 0;
            for (let j = 0; j < D; j++) {
              a += states[st + i * D + j]! * dout[rt + j]!;
              g += G[i * D + j]! * v[rt + j]!;
            }
            sdo[i] = a;
            gv[i] = g;
          }
          for (let i = 0; i < D; i++) {
            const pt = pow[t * D + i]!;
            const pe = pow[(n - 1 - t) * D + i]!;
            const ri = rho[rt + i]!, ki = k[rt + i]!, ui = u[hc + i]!;
            const dTT = dA[t * L + t]!;
            // row t as a query: inter-chunk and diagonal terms (the s < t terms are added below)
            drho[rt + i] = pt * sdo[i]! + dTT * ui * ki;
            // row t as a key: diagonal and carry terms (the t' > t terms are added below)
            dk[rt + i] = dTT * ui * ri + pe * gv[i]!;
            du[hc + i] += dTT * ri * ki;
            dlogw[hc + i] += t * pt * ri * sdo[i]! + (n - 1 - t) * pe * ki * gv[i]!;
            for (let j = 0; j < D; j++) Gn[i * D + j] += pt * ri * dout[rt + j]!;
          }
          // dv_t = sum_(t'>=t) A[t',t] do_t' + G^T (w^(n-1-t) * k_t)
          for (let j = 0; j < D; j++) {
            let a = 0;
            for (let i = 0; i < D; i++) a += G[i * D + j]! * pow[(n - 1 - t) * D + i]! * k[rt + i]!;
            for (let t2 = t; t2 < n; t2++) a += A[t2 * L + t]! * dout[base + t2 * C + j]!;
            dv[rt + j] = a;
          }
        }
        // off-diagonal score terms: A[t,s] = sum_i rho_t,i k_s,i w_i^(t-s-1), s < t
        for (let t = 1; t < n; t++) {
          const rt = base + t * C;
          for (let s = 0; s < t; s++) {
            const g = dA[t * L + s]!;
            if (g === 0) continue;
            const ks = base + s * C;
            const m = t - s - 1;
            for (let i = 0; i < D; i++) {
              const p = pow[m * D + i]!;
              drho[rt + i] += g * p * k[ks + i]!;
              dk[ks + i] += g * p * rho[rt + i]!;
              dlogw[hc + i] += g * m * p * rho[rt + i]! * k[ks + i]!;
            }
          }
        }
        G.set(Gn);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The whole time-mixing op.

/** xs_t = mu * x_t + (1 - mu) * x_(t-1) per sequence (x_(-1) = 0). Writes xs [N, C]. */
function tokenShift(xs: FloatArray, x: FloatArray, mu: FloatArray, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const r = (b * T + t) * C;
      for (let c = 0; c < C; c++) {
        const prev = t > 0 ? x[r - C + c]! : 0;
        xs[r + c] = mu[c]! * x[r + c]! + (1 - mu[c]!) * prev;
      }
    }
  }
}

/** Backward of tokenShift: dx += ..., dmu += ... (both accumulate). */
function tokenShiftBackward(dx: FloatArray, dmu: FloatArray, dxs: FloatArray, x: FloatArray, mu: FloatArray, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const r = (b * T + t) * C;
      for (let c = 0; c < C; c++) {
        const g = dxs[r + c]!;
        const prev = t > 0 ? x[r - C + c]! : 0;
        dx[r + c] += g * mu[c]!;
        if (t > 0) dx[r - C + c] += g * (1 - mu[c]!);
        dmu[c] += g * (x[r + c]! - prev);
      }
    }
  }
}

/** n = o / rms_head(o) * g per (row, head); writes n and rstd [N, H]. */
function headNormForward(n: FloatArray, rstd: FloatArray, o: FloatArray, g: FloatArray, N: number, H: number, D: number, eps: number): void {
  const C = H * D;
  for (let r = 0; r < N; r++) {
    for (let h = 0; h < H; h++) {
      const base = r * C + h * D;
      let ss = 0;
      for (let i = 0; i < D; i++) ss += o[base + i]! * o[base + i]!;
      const rs = 1 / Math.sqrt(ss / D + eps);
      rstd[r * H + h] = rs;
      for (let i = 0; i < D; i++) n[base + i] = o[base + i]! * rs * g[h * D + i]!;
    }
  }
}

/** Backward of headNormForward: WRITES dout, ACCUMULATES dg. */
function headNormBackward(dout: FloatArray, dg: FloatArray, dn: FloatArray, o: FloatArray, rstd: FloatArray, g: FloatArray, N: number, H: number, D: number): void {
  const C = H * D;
  for (let r = 0; r < N; r++) {
    for (let h = 0; h < H; h++) {
      const base = r * C + h * D;
      const rs = rstd[r * H + h]!;
      let dot = 0;
      for (let i = 0; i < D; i++) {
        const dh = dn[base + i]! * g[h * D + i]!;
        dot += dh * o[base + i]!;
        dg[h * D + i] += dn[base + i]! * o[base + i]! * rs;
      }
      const c = (rs * rs * rs * dot) / D;
      for (let i = 0; i < D; i++) dout[base + i] = rs * dn[base + i]! * g[h * D + i]! - c * o[base + i]!;
    }
  }
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

function silu(z: number): number {
  return z * sigmoid(z);
}

/** d silu / dz = s (1 + z (1 - s)), s = sigmoid(z). */
function siluGrad(z: number): number {
  const sg = sigmoid(z);
  return sg * (1 + z * (1 - sg));
}

function checkDims(d: RwkvDims): number {
  const { B, T, C, H } = d;
  for (const [name, v] of [['B', B], ['T', T], ['C', C], ['H', H]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`rwkv: ${name} must be a positive integer (got ${v})`);
  }
  if (C % H !== 0) throw new RangeError(`rwkv: C (${C}) must be a multiple of H (${H})`);
  return C / H;
}

/**
 * The whole op's forward: reads a.x, writes every other field of `a` (states only when chunked).
 * With `prefill` (a decode state of B rows), also leaves there each sequence's state after its
 * last token, so decoding continues a prompt that went through the full forward.
 */
export function rwkvForward(d: RwkvDims, p: RwkvWeights, a: RwkvActivations, form: WkvForm, prefill?: RwkvDecodeState): void {
  const D = checkDims(d);
  const { B, T, C, H } = d;
  const N = B * T;
  const xs = new Float64Array(N * C);
  const logw = logDecay(new Float64Array(C), p.decay);
  tokenShift(xs, a.x, p.mixR, B, T, C);
  matmul(a.rho, xs, p.wr, N, C, C);
  tokenShift(xs, a.x, p.mixK, B, T, C);
  matmul(a.k, xs, p.wk, N, C, C);
  tokenShift(xs, a.x, p.mixV, B, T, C);
  matmul(a.v, xs, p.wv, N, C, C);
  tokenShift(xs, a.x, p.mixG, B, T, C);
  matmul(a.g, xs, p.wg, N, C, C);
  if (prefill && prefill.rows !== B) throw new RangeError(`rwkv: the prefill state has ${prefill.rows} rows, the batch ${B}`);
  const final = prefill?.S;
  if (form.kind === 'recurrent') wkvRecurrentForward(a.o, a.rho, a.k, a.v, logw, p.bonus, B, T, H, D, final);
  else wkvChunkedForward(a.o, a.states, a.rho, a.k, a.v, logw, p.bonus, B, T, H, D, form.chunk, final);
  if (prefill) for (let b = 0; b < B; b++) prefill.xprev.set(a.x.subarray((b * T + T - 1) * C, (b * T + T) * C), b * C);
  headNormForward(a.nrm, a.rstd, a.o, p.normW, N, H, D, d.eps);
  const z = new Float64Array(N * C);
  for (let i = 0; i < N * C; i++) z[i] = a.nrm[i]! * silu(a.g[i]!);
  matmul(a.y, z, p.wo, N, C, C);
}

/**
 * The whole op's backward for dL/dy = dy [N, C]: WRITES dx [N, C], ACCUMULATES every gradient
 * in `g`. Needs the forward's activations intact (same form).
 */
export function rwkvBackward(d: RwkvDims, p: RwkvWeights, a: RwkvActivations, form: WkvForm, dy: FloatArray, dx: FloatArray, g: RwkvWeights): void {
  const D = checkDims(d);
  const { B, T, C, H } = d;
  const N = B * T;
  const NC = N * C;
  const dn = new Float64Array(NC);
  const dO = new Float64Array(NC);
  const drho = new Float64Array(NC);
  const dk = new Float64Array(NC);
  const dv = new Float64Array(NC);
  const dxs = new Float64Array(NC);
  const xs = new Float64Array(NC);
  const logw = logDecay(new Float64Array(C), p.decay);
  const dlogw = new Float64Array(C);
  // the gate: z = n * silu(g)
  const z = new Float64Array(NC);
  for (let i = 0; i < NC; i++) z[i] = a.nrm[i]! * silu(a.g[i]!);
  const dz = new Float64Array(NC);
  matmulTNAcc(g.wo, z, dy, N, C, C);
  matmulNT(dz, dy, p.wo, N, C, C);
  const dgate = new Float64Array(NC);
  for (let i = 0; i < NC; i++) {
    dn[i] = dz[i]! * silu(a.g[i]!);
    dgate[i] = dz[i]! * a.nrm[i]! * siluGrad(a.g[i]!);
  }
  headNormBackward(dO, g.normW, dn, a.o, a.rstd, p.normW, N, H, D);
  if (form.kind === 'recurrent') wkvRecurrentBackward(drho, dk, dv, dlogw, g.bonus, dO, a.rho, a.k, a.v, logw, p.bonus, B, T, H, D);
  else wkvChunkedBackward(drho, dk, dv, dlogw, g.bonus, dO, a.states, a.rho, a.k, a.v, logw, p.bonus, B, T, H, D, form.chunk);
  // d decay = dlogw * dlogw/ddecay = dlogw * (-exp(decay)) = dlogw * logw
  for (let c = 0; c < C; c++) g.decay[c] += dlogw[c]! * logw[c]!;
  dx.fill(0, 0, NC);
  const branches: [FloatArray, FloatArray, FloatArray, FloatArray, FloatArray][] = [
    [drho, p.mixR, p.wr, g.mixR, g.wr],
    [dk, p.mixK, p.wk, g.mixK, g.wk],
    [dv, p.mixV, p.wv, g.mixV, g.wv],
    [dgate, p.mixG, p.wg, g.mixG, g.wg],
  ];
  for (const [dproj, mu, w, dmu, dw] of branches) {
    tokenShift(xs, a.x, mu, B, T, C); // recomputed: cheaper than keeping three [N, C] inputs
    matmulTNAcc(dw, xs, dproj, N, C, C);
    matmulNT(dxs, dproj, w, N, C, C);
    tokenShiftBackward(dx, dmu, dxs, a.x, mu, B, T, C);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding: one token per row, state only.

/** Decoding state, kept in float64 whatever the model's precision (H D^2 + C floats per row). */
export interface RwkvDecodeState {
  rows: number;
  /** Each row's previous input x_(t-1) [rows, C] (0 before the first token). */
  xprev: Float64Array;
  /** Each row's per-head states [rows, H, D, D]. */
  S: Float64Array;
}

export function rwkvDecodeState(rows: number, C: number, H: number): RwkvDecodeState {
  const D = C / H;
  return { rows, xprev: new Float64Array(rows * C), S: new Float64Array(rows * H * D * D) };
}

/** Forgets row r's context, or every row's. */
export function rwkvDecodeReset(s: RwkvDecodeState, r?: number): void {
  if (r === undefined) {
    s.xprev.fill(0);
    s.S.fill(0);
    return;
  }
  const C = s.xprev.length / s.rows;
  const per = s.S.length / s.rows;
  s.xprev.fill(0, r * C, (r + 1) * C);
  s.S.fill(0, r * per, (r + 1) * per);
}

/**
 * Feeds one input row x [rows, C] per sequence (its next position) and writes y [rows, C],
 * updating each row's state: the recurrence of `wkvRecurrentForward` for one step, with token
 * shift against the stored previous input. O(C^2 + C D) per row whatever the position.
 */
export function rwkvDecodeStep(d: { C: number; H: number; eps: number }, p: RwkvWeights, s: RwkvDecodeState, x: FloatArray, y: FloatArray): void {
  const { C, H } = d;
  const D = C / H;
  const R = s.rows;
  const xs = new Float64Array(R * C);
  const rho = new Float64Array(R * C);
  const k = new Float64Array(R * C);
  const v = new Float64Array(R * C);
  const o = new Float64Array(R * C);
  const nrm = new Float64Array(R * C);
  const rstd = new Float64Array(R * H);
  const shift = (mu: FloatArray): void => {
    for (let i = 0; i < R * C; i++) {
      const c = i % C;
      xs[i] = mu[c]! * x[i]! + (1 - mu[c]!) * s.xprev[i]!;
    }
  };
  shift(p.mixR);
  matmul(rho, xs, p.wr, R, C, C);
  shift(p.mixK);
  matmul(k, xs, p.wk, R, C, C);
  shift(p.mixV);
  matmul(v, xs, p.wv, R, C, C);
  const g = new Float64Array(R * C);
  shift(p.mixG);
  matmul(g, xs, p.wg, R, C, C);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      const hc = h * D;
      const row = r * C + hc;
      const S = s.S.subarray((r * H + h) * D * D, (r * H + h + 1) * D * D);
      let ruk = 0;
      for (let i = 0; i < D; i++) ruk += rho[row + i]! * p.bonus[hc + i]! * k[row + i]!;
      for (let j = 0; j < D; j++) {
        let acc = ruk * v[row + j]!;
        for (let i = 0; i < D; i++) acc += rho[row + i]! * S[i * D + j]!;
        o[row + j] = acc;
      }
      for (let i = 0; i < D; i++) {
        const wi = Math.exp(-Math.exp(p.decay[hc + i]!));
        for (let j = 0; j < D; j++) S[i * D + j] = wi * S[i * D + j]! + k[row + i]! * v[row + j]!;
      }
    }
  }
  for (let i = 0; i < R * C; i++) s.xprev[i] = x[i]!;
  headNormForward(nrm, rstd, o, p.normW, R, H, D, d.eps);
  for (let i = 0; i < R * C; i++) nrm[i] = nrm[i]! * silu(g[i]!);
  matmul(y, nrm, p.wo, R, C, C);
}
