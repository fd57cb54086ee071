import type { FloatArray, Kernels } from '../../kernels/types.js';
import { DEFAULT_RWKV_CHUNK, type ModelConfig } from '../config.js';
import { linearBackward, linearForward } from '../linear.js';
import type { Mixer, MixerBuild, MixerDecodeBuild, MixerDecoder, MixerLayer, MixerParam } from './mixer.js';

/**
 * RWKV-style time mixing as a `Mixer`, over planned buffers and the Kernels' products. The op
 * and its derivation are in rwkv.ts (the plain-loop float64 oracle this file is tested
 * against); this is the same op laid out for speed:
 *
 * Parameters of layer l (`blocks.l.*`): time_mix [4, C] (token-shift mixes of r | k | v | g),
 * wrkvg [C, 4C] (the four projections side by side, like attention's wqkv), time_decay [C]
 * (w = exp(-exp(decay))), time_bonus [C] (u), head_norm [C], wo [C, C].
 *
 * Forward for B rows of T tokens, chunk length L, nc = ceil(T / L) chunks, Tp = nc L:
 *   1. token shift into four planes xs [4][N][C]; ONE batched product proj_i = xs_i Wrkvg_i;
 *   2. r (the query, rho), k, v copied HEAD-MAJOR [B, H, Tp, D] (rows T..Tp zero): every
 *      (sequence, head, chunk) is then a contiguous [L, D] block at a fixed stride, so each
 *      block product below is ONE gemmStridedBatched over all B H nc chunks;
 *   3. rdec = rho * w^t and kdec = k * w^(L-1-t) (t = position in the chunk; every factor <= 1);
 *   4. U_c = kdec_c^T v_c (batched [D, L] x [L, D]); the states entering each chunk by a scan
 *      S_(c+1) = w^L * S_c + U_c (O(D^2) per chunk: the only sequential part);
 *   5. o_c = rdec_c S_c (batched [L, D] x [D, D]) + A_c v_c (batched [L, L] x [L, D]), where the
 *      decay-weighted scores A_c[t, s] = sum_i rho_t,i k_s,i w_i^(t-s-1) (s < t), A[t,t] =
 *      sum_i rho_t,i u_i k_t,i are a plain loop over a table of w^m (L^2 D / 2 per chunk): the
 *      factorised product (rho w^t)(k w^(-s-1))^T would overflow float32 for strong decays;
 *   6. per-head RMS norm, the gate z = nrm * silu(g), y = z Wo.
 * Padding rows (zero rho, k, v) add nothing to any state or output, so T need not be a multiple
 * of L. The backward mirrors each product (its transposes), carries dL/dS backwards through
 * the same scan, and recomputes rdec, kdec, A and the token shifts rather than keeping them.
 *
 * Kept per layer: rho | k | v head-major (3 B Tp C), the gate's g (N C), o (N C) and the norm's
 * rstd (N H): about what attention keeps (qkv, atty, lse) plus one plane. Scratch (all layers
 * share it): token shifts and projections (8 N C), nrm (N C), rdec, kdec, o / dO head-major (3 B Tp C), A and dA
 * (2 B H Tp L), U, the chunk states and dL/dS (3 B H nc D^2), and the three head-major
 * gradients (3 B Tp C).
 */

export function rwkvChunk(cfg: ModelConfig): number {
  return cfg.rwkv_chunk ?? DEFAULT_RWKV_CHUNK;
}

interface Dims {
  maxB: number;
  T: number;
  C: number;
  H: number;
  D: number;
  L: number;
  nc: number;
  Tp: number;
  eps: number;
}

function dimsOf(cfg: ModelConfig, maxB: number): Dims {
  const T = cfg.seq_len;
  const C = cfg.d_model;
  const H = cfg.n_head;
  const L = Math.min(rwkvChunk(cfg), T);
  const nc = Math.ceil(T / L);
  return { maxB, T, C, H, D: C / H, L, nc, Tp: nc * L, eps: cfg.norm_eps };
}

function keptOf(d: Dims): number {
  const { maxB, T, C, H, Tp } = d;
  return 3 * maxB * Tp * C + 2 * maxB * T * C + maxB * T * H;
}

function scratchOf(d: Dims): number {
  const { maxB, T, C, H, D, L, nc, Tp } = d;
  const NC = maxB * T * C;
  const P = maxB * Tp * C;
  return 9 * NC + 6 * P + 2 * maxB * H * Tp * L + 3 * maxB * H * nc * D * D;
}

/** Values the RWKV papers initialise with, per layer (ratio l / (n_layer - 1)) and channel. */
function initMix(l: number, nLayer: number, C: number): (i: number) => number {
  const ratio01 = nLayer > 1 ? l / (nLayer - 1) : 0;
  const ratio10 = 1 - l / nLayer;
  return (i) => {
    const which = Math.floor(i / C);
    const x = (i % C) / C;
    if (which === 0 || which === 3) return x ** (0.5 * ratio10); // r, g
    if (which === 1) return x ** ratio10; // k
    return Math.min(1, x ** ratio10 + 0.3 * ratio01); // v
  };
}

/** Decay -6 .. -1 across each head's channels (time constants ~400 down to ~3 tokens). */
function initDecay(l: number, nLayer: number, D: number): (i: number) => number {
  const ratio01 = nLayer > 1 ? l / (nLayer - 1) : 0;
  return (c) => {
    const i = c % D;
    const x = D > 1 ? i / (D - 1) : 0;
    return -6 + 5 * x ** (0.7 + 1.3 * ratio01);
  };
}

function initBonus(l: number, nLayer: number, D: number): (i: number) => number {
  const ratio01 = nLayer > 1 ? l / (nLayer - 1) : 0;
  return (c) => {
    const i = c % D;
    const x = D > 1 ? i / (D - 1) : 0;
    return ratio01 * (1 - x) + (((i + 1) % 3) - 1) * 0.1;
  };
}

export const rwkvMixer: Mixer = {
  name: 'rwkv',

  params(cfg, l): MixerParam[] {
    const C = cfg.d_model;
    const D = C / cfg.n_head;
    return [
      { name: 'time_mix', shape: [4, C], decay: false, init: { values: initMix(l, cfg.n_layer, C) } },
      { name: 'wrkvg', shape: [C, 4 * C], decay: true, init: 'normal' },
      { name: 'time_decay', shape: [C], decay: false, init: { values: initDecay(l, cfg.n_layer, D) } },
      { name: 'time_bonus', shape: [C], decay: false, init: { values: initBonus(l, cfg.n_layer, D) } },
      { name: 'head_norm', shape: [C], decay: false, init: 'ones' },
      { name: 'wo', shape: [C, C], decay: true, init: 'normal_residual' },
    ];
  },

  keptFloats(cfg, maxB) {
    return keptOf(dimsOf(cfg, maxB));
  },

  scratchFloats(cfg, maxB) {
    return scratchOf(dimsOf(cfg, maxB));
  },

  modelAllocs() {
    return [];
  },

  decoderAllocs(cfg, rows) {
    const C = cfg.d_model;
    const D = C / cfg.n_head;
    const perLayer: number[] = [];
    for (let l = 0; l < cfg.n_layer; l++) perLayer.push(rows * C, rows * cfg.n_head * D * D); // xprev, states
    return [...perLayer, 4 * rows * C, 4 * rows * C, rows * C]; // xs, proj, o
  },

  build(b) {
    const d = dimsOf(b.cfg, b.maxB);
    const s = scratchViews(d, b.scratch);
    const layers: MixerLayer[] = [];
    for (let l = 0; l < b.cfg.n_layer; l++) layers.push(new RwkvLayer(d, b, l, s));
    return { layers, decoder: (db) => new RwkvDecoder(db) };
  },

  /**
   * Per token and layer the chunked form's products take C D (rdec S) + C L / 2 (the scores'
   * causal half) + C L / 2 (A v) + C D (the state update) multiply-adds in the forward, twice
   * that in the backward: 6 n_layer C (L + 2 D) FLOPs, whatever T is.
   */
  flopsPerToken(cfg) {
    const d = dimsOf(cfg, 1);
    return 6 * cfg.n_layer * d.C * (d.L + 2 * d.D);
  },
};

interface Scratch {
  xs: FloatArray; // [4][N][C]
  proj: FloatArray; // [4][N][C]
  nrm: FloatArray; // [N][C]
  rdec: FloatArray; // head-major [B, H, Tp, D]
  kdec: FloatArray;
  oh: FloatArray; // o (forward), dO (backward), head-major
  A: FloatArray; // [B H nc, L, L]
  dA: FloatArray;
  U: FloatArray; // [B H nc, D, D]: U, then rdec^T dO (backward)
  states: FloatArray; // [B H nc, D, D]: the state entering each chunk
  G: FloatArray; // [B H nc, D, D]: dL/dS at each chunk's end
  drho: FloatArray; // head-major gradients
  dk: FloatArray;
  dv: FloatArray;
}

function scratchViews(d: Dims, buf: FloatArray): Scratch {
  const { maxB, T, C, H, D, L, nc, Tp } = d;
  const NC = maxB * T * C;
  const P = maxB * Tp * C;
  let at = 0;
  const take = (n: number): FloatArray => {
    const v = buf.subarray(at, at + n);
    at += n;
    return v;
  };
  return {
    xs: take(4 * NC), proj: take(4 * NC), nrm: take(NC), rdec: take(P), kdec: take(P), oh: take(P),
    A: take(maxB * H * Tp * L), dA: take(maxB * H * Tp * L), U: take(maxB * H * nc * D * D),
    states: take(maxB * H * nc * D * D), G: take(maxB * H * nc * D * D),
    drho: take(P), dk: take(P), dv: take(P),
  };
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

function silu(z: number): number {
  return z * sigmoid(z);
}

/**
 * The per-head RMS norm and the gate: z = o / rms_head(o) * normW * silu(gate) for `rows` rows
 * of C = H D (gate read from gateOff on). With `fresh` each rms is computed and written to rstd
 * [rows, H]; else rstd is read (backward's recomputation of z). z may be o itself. The training
 * forward, its backward and the decoder share it.
 */
function gatedHeadNorm(
  z: FloatArray, rstd: FloatArray, fresh: boolean, o: FloatArray, normW: FloatArray, gate: FloatArray, gateOff: number,
  rows: number, H: number, D: number, eps: number,
): void {
  const C = H * D;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < H; h++) {
      const base = r * C + h * D;
      let rs: number;
      if (fresh) {
        let ss = 0;
        for (let i = 0; i < D; i++) ss += o[base + i]! * o[base + i]!;
        rs = 1 / Math.sqrt(ss / D + eps);
        rstd[r * H + h] = rs;
      } else {
        rs = rstd[r * H + h]!;
      }
      for (let i = 0; i < D; i++) z[base + i] = o[base + i]! * rs * normW[h * D + i]! * silu(gate[gateOff + base + i]!);
    }
  }
}

class RwkvLayer implements MixerLayer {
  private readonly x: FloatArray;
  private readonly y: FloatArray;
  private readonly dy: FloatArray;
  private readonly dx: FloatArray;
  private readonly w: Record<string, FloatArray>;
  private readonly g: Record<string, FloatArray>;
  /**
   * Kept: rho, k, v head-major (planes of maxB Tp C), o [N, C], rstd [N, H]. The chunk states
   * are recomputed in backward (one batched product and the scan) rather than kept: they would
   * cost C D / L floats per token and layer, 4 [N, C] planes at L = 8, D = 32.
   */
  private readonly rho: FloatArray;
  private readonly k: FloatArray;
  private readonly v: FloatArray;
  /** The gate's pre-activation g [N, C]. */
  private readonly gate: FloatArray;
  private readonly o: FloatArray;
  private readonly rstd: FloatArray;
  /** pow[m C + c] = w_c^m for m = 0..L (float64, recomputed from the decay at each call). */
  private readonly pow: Float64Array;
  private readonly logw: Float64Array;
  private readonly dlogw: Float64Array;

  constructor(private readonly d: Dims, b: MixerBuild, l: number, private readonly s: Scratch) {
    const { maxB, T, C, H, L, Tp } = d;
    this.x = b.x[l]!;
    this.y = b.y;
    this.dy = b.dy;
    this.dx = b.dx;
    this.w = b.weights[l]!;
    this.g = b.grads[l]!;
    const P = maxB * Tp * C;
    this.rho = b.arena.floats(P);
    this.k = b.arena.floats(P);
    this.v = b.arena.floats(P);
    this.gate = b.arena.floats(maxB * T * C);
    this.o = b.arena.floats(maxB * T * C);
    this.rstd = b.arena.floats(maxB * T * H);
    this.pow = new Float64Array((L + 1) * C);
    this.logw = new Float64Array(C);
    this.dlogw = new Float64Array(C);
  }

  private powers(): void {
    const { C, L } = this.d;
    const decay = this.w.time_decay!;
    for (let c = 0; c < C; c++) this.logw[c] = -Math.exp(decay[c]!);
    for (let m = 0; m <= L; m++) for (let c = 0; c < C; c++) this.pow[m * C + c] = Math.exp(m * this.logw[c]!);
  }

  /** xs_i = mix_i * x_t + (1 - mix_i) * x_(t-1) for the four planes (x_(-1) = 0). */
  private tokenShift(B: number): void {
    const { T, C } = this.d;
    const NC = B * T * C;
    const x = this.x;
    const xs = this.s.xs;
    const mix = this.w.time_mix!;
    for (let p = 0; p < 4; p++) {
      const off = p * NC;
      const mo = p * C;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const r = (b * T + t) * C;
          for (let c = 0; c < C; c++) {
            const mu = mix[mo + c]!;
            const prev = t > 0 ? x[r - C + c]! : 0;
            xs[off + r + c] = mu * x[r + c]! + (1 - mu) * prev;
          }
        }
      }
    }
  }

  /** Token-major [N, C] -> head-major [B, H, Tp, D] (rows T..Tp written as 0). */
  private toHeads(dst: FloatArray, src: FloatArray, srcOff: number, B: number): void {
    const { T, C, H, D, Tp } = this.d;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const hb = (b * H + h) * Tp * D;
        for (let t = 0; t < T; t++) {
          const so = srcOff + (b * T + t) * C + h * D;
          const dO = hb + t * D;
          for (let i = 0; i < D; i++) dst[dO + i] = src[so + i]!;
        }
        dst.fill(0, hb + T * D, hb + Tp * D);
      }
    }
  }

  /** Head-major -> token-major (padding rows dropped). */
  private fromHeads(dst: FloatArray, dstOff: number, src: FloatArray, B: number): void {
    const { T, C, H, D, Tp } = this.d;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const hb = (b * H + h) * Tp * D;
        for (let t = 0; t < T; t++) {
          const to = dstOff + (b * T + t) * C + h * D;
          const so = hb + t * D;
          for (let i = 0; i < D; i++) dst[to + i] = src[so + i]!;
        }
      }
    }
  }

  /** rdec = rho * w^t, kdec = k * w^(L-1-t) (t = row within its chunk). */
  private decayed(B: number): void {
    const { C, H, D, L, Tp } = this.d;
    const { rdec, kdec } = this.s;
    const { rho, k, pow } = this;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const hb = (b * H + h) * Tp * D;
        const hc = h * D;
        for (let t = 0; t < Tp; t++) {
          const tl = t % L;
          const r = hb + t * D;
          const pr = tl * C + hc;
          const pk = (L - 1 - tl) * C + hc;
          for (let i = 0; i < D; i++) {
            rdec[r + i] = rho[r + i]! * pow[pr + i]!;
            kdec[r + i] = k[r + i]! * pow[pk + i]!;
          }
        }
      }
    }
  }

  /** The decay-weighted scores of every chunk (lower triangle and diagonal; 0 above). */
  private scores(B: number): void {
    const { C, H, D, L, nc } = this.d;
    const A = this.s.A;
    const { rho, k, pow } = this;
    const u = this.w.time_bonus!;
    const LD = L * D;
    const LL = L * L;
    const nq = B * H * nc;
    for (let q = 0; q < nq; q++) {
      const hc = (Math.floor(q / nc) % H) * D;
      const base = q * LD;
      const ab = q * LL;
      for (let t = 0; t < L; t++) {
        const rt = base + t * D;
        for (let s = 0; s < t; s++) {
          const ks = base + s * D;
          const pm = (t - s - 1) * C + hc;
          let a = 0;
          for (let i = 0; i < D; i++) a += rho[rt + i]! * k[ks + i]! * pow[pm + i]!;
          A[ab + t * L + s] = a;
        }
        let dg = 0;
        for (let i = 0; i < D; i++) dg += rho[rt + i]! * u[hc + i]! * k[rt + i]!;
        A[ab + t * L + t] = dg;
        for (let s = t + 1; s < L; s++) A[ab + t * L + s] = 0;
      }
    }
  }

  forward(kn: Kernels, B: number): void {
    const { T, C, H, D, L, nc } = this.d;
    const N = B * T;
    const NC = N * C;
    const s = this.s;
    const LD = L * D;
    const DD = D * D;
    const nq = B * H * nc;
    this.powers();
    this.tokenShift(B);
    kn.gemmStridedBatched(false, false, N, C, C, 1, s.xs, C, NC, this.w.wrkvg!, 4 * C, C, 0, s.proj, C, NC, 4);
    this.toHeads(this.rho, s.proj, 0, B);
    this.toHeads(this.k, s.proj, NC, B);
    this.toHeads(this.v, s.proj, 2 * NC, B);
    this.gate.set(s.proj.subarray(3 * NC, 4 * NC));
    this.decayed(B);
    this.chunkStates(kn, B);
    const st = s.states;
    // o = rdec S (inter-chunk) + A v (intra-chunk)
    kn.gemmStridedBatched(false, false, L, D, D, 1, s.rdec, D, LD, st, D, DD, 0, s.oh, D, LD, nq);
    this.scores(B);
    kn.gemmStridedBatched(false, false, L, D, L, 1, s.A, L, L * L, this.v, D, LD, 1, s.oh, D, LD, nq);
    this.fromHeads(this.o, 0, s.oh, B);
    gatedHeadNorm(s.nrm, this.rstd, true, this.o, this.w.head_norm!, this.gate, 0, N, H, D, this.d.eps);
    linearForward(kn, this.y, s.nrm, this.w.wo!, N, C, C);
  }

  /**
   * From rdec/kdec (decayed()): U_c = kdec_c^T v_c (batched [D, L] x [L, D]), then the scan
   * S_0 = 0, S_(c+1) = w^L * S_c + U_c into s.states (the state entering each chunk).
   */
  private chunkStates(kn: Kernels, B: number): void {
    const { C, H, D, L, nc } = this.d;
    const s = this.s;
    const LD = L * D;
    const DD = D * D;
    kn.gemmStridedBatched(true, false, D, D, L, 1, s.kdec, D, LD, this.v, D, LD, 0, s.U, D, DD, B * H * nc);
    const st = s.states;
    const U = s.U;
    const pow = this.pow;
    const pL = L * C;
    for (let bh = 0; bh < B * H; bh++) {
      const hc = (bh % H) * D;
      const q0 = bh * nc * DD;
      st.fill(0, q0, q0 + DD);
      for (let c = 1; c < nc; c++) {
        const cur = q0 + c * DD;
        const prev = cur - DD;
        for (let i = 0; i < D; i++) {
          const wl = pow[pL + hc + i]!;
          for (let j = 0; j < D; j++) st[cur + i * D + j] = wl * st[prev + i * D + j]! + U[prev + i * D + j]!;
        }
      }
    }
  }

  backward(kn: Kernels, B: number, alpha: number): void {
    const { T, C, H, D, L, nc } = this.d;
    const N = B * T;
    const NC = N * C;
    const s = this.s;
    const LD = L * D;
    const LL = L * L;
    const DD = D * D;
    const nq = B * H * nc;
    const { o, rstd, pow } = this;
    const gNorm = this.w.head_norm!;
    this.powers();
    const dlogw = this.dlogw.fill(0);
    // z = nrm * silu(g) again (nrm from o and rstd); the out-projection's backward writes dz over it
    const gt = this.gate;
    gatedHeadNorm(s.nrm, rstd, false, o, gNorm, gt, 0, N, H, D, this.d.eps);
    linearBackward(kn, s.nrm, this.g.wo!, this.dy, s.nrm, this.w.wo!, N, C, C, alpha);
    // through the gate: dnrm = dz * silu(g) (over dz), dg = dz * nrm * silu'(g) (the fourth
    // projection's gradient, in its plane of s.proj)
    const dgate = s.proj.subarray(3 * NC, 4 * NC);
    for (let r = 0; r < N; r++) {
      for (let h = 0; h < H; h++) {
        const base = r * C + h * D;
        const rs = rstd[r * H + h]!;
        for (let i = 0; i < D; i++) {
          const z = gt[base + i]!;
          const sg = sigmoid(z);
          const dz = s.nrm[base + i]!;
          s.nrm[base + i] = dz * z * sg;
          dgate[i + base] = dz * o[base + i]! * rs * gNorm[h * D + i]! * sg * (1 + z * (1 - sg));
        }
      }
    }
    // head norm backward: dO (token-major, in the first xs plane: the token shifts are recomputed later)
    const dO = s.xs;
    const dg = this.g.head_norm!;
    for (let r = 0; r < N; r++) {
      for (let h = 0; h < H; h++) {
        const base = r * C + h * D;
        const rs = rstd[r * H + h]!;
        let dot = 0;
        for (let i = 0; i < D; i++) {
          const dn = s.nrm[base + i]!;
          dot += dn * gNorm[h * D + i]! * o[base + i]!;
          dg[h * D + i] += dn * o[base + i]! * rs;
        }
        const cc = (rs * rs * rs * dot) / D;
        for (let i = 0; i < D; i++) dO[base + i] = rs * s.nrm[base + i]! * gNorm[h * D + i]! - cc * o[base + i]!;
      }
    }
    this.toHeads(s.oh, dO, 0, B); // s.oh now holds dO head-major
    this.decayed(B);
    this.chunkStates(kn, B);
    this.scores(B);
    const dOh = s.oh;
    const st = s.states;
    // dA = dO v^T; dv = A^T dO; W_c = rdec_c^T dO_c (into U)
    kn.gemmStridedBatched(false, true, L, L, D, 1, dOh, D, LD, this.v, D, LD, 0, s.dA, L, LL, nq);
    kn.gemmStridedBatched(true, false, L, D, L, 1, s.A, L, LL, dOh, D, LD, 0, s.dv, D, LD, nq);
    kn.gemmStridedBatched(true, false, D, D, L, 1, s.rdec, D, LD, dOh, D, LD, 0, s.U, D, DD, nq);
    // G_c = dL/dS at the end of chunk c: G_(nc-1) = 0, G_(c-1) = w^L * G_c + W_c; and the
    // decay's share through the scan, L w^L sum_j G_c[i, j] S_c[i, j]
    const G = s.G;
    const W = s.U;
    const pL = L * C;
    for (let bh = 0; bh < B * H; bh++) {
      const hc = (bh % H) * D;
      const q0 = bh * nc * DD;
      G.fill(0, q0 + (nc - 1) * DD, q0 + nc * DD);
      for (let c = nc - 2; c >= 0; c--) {
        const cur = q0 + c * DD;
        const next = cur + DD;
        for (let i = 0; i < D; i++) {
          const wl = pow[pL + hc + i]!;
          for (let j = 0; j < D; j++) G[cur + i * D + j] = wl * G[next + i * D + j]! + W[next + i * D + j]!;
        }
      }
      for (let c = 0; c < nc; c++) {
        const cur = q0 + c * DD;
        for (let i = 0; i < D; i++) {
          let gs = 0;
          for (let j = 0; j < D; j++) gs += G[cur + i * D + j]! * st[cur + i * D + j]!;
          dlogw[hc + i] += L * pow[pL + hc + i]! * gs;
        }
      }
    }
    // dv += kdec G; dkdec = v G^T; drdec = dO S^T
    kn.gemmStridedBatched(false, false, L, D, D, 1, s.kdec, D, LD, G, D, DD, 1, s.dv, D, LD, nq);
    kn.gemmStridedBatched(false, true, L, D, D, 1, this.v, D, LD, G, D, DD, 0, s.dk, D, LD, nq);
    kn.gemmStridedBatched(false, true, L, D, D, 1, dOh, D, LD, st, D, DD, 0, s.drho, D, LD, nq);
    this.decayBackward(B);
    this.scoresBackward(B);
    // back to token-major projections' gradients
    this.fromHeads(s.proj, 0, s.drho, B);
    this.fromHeads(s.proj, NC, s.dk, B);
    this.fromHeads(s.proj, 2 * NC, s.dv, B);
    this.tokenShift(B);
    kn.gemmStridedBatched(true, false, C, C, N, 1, s.xs, C, NC, s.proj, C, NC, 1, this.g.wrkvg!, 4 * C, C, 4);
    const dx = this.dx;
    dx.fill(0, 0, NC);
    const dxs = s.xs; // the token shifts are not needed after the weight gradients
    const x = this.x;
    const mix = this.w.time_mix!;
    const dmix = this.g.time_mix!;
    const wrkvg = this.w.wrkvg!;
    for (let p = 0; p < 4; p++) {
      kn.gemm(false, true, N, C, C, 1, s.proj.subarray(p * NC), C, wrkvg.subarray(p * C), 4 * C, 0, dxs, C);
      const mo = p * C;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const r = (b * T + t) * C;
          for (let c = 0; c < C; c++) {
            const gr = dxs[r + c]!;
            const mu = mix[mo + c]!;
            const prev = t > 0 ? x[r - C + c]! : 0;
            dx[r + c] += gr * mu;
            if (t > 0) dx[r - C + c] += gr * (1 - mu);
            dmix[mo + c] += gr * (x[r + c]! - prev);
          }
        }
      }
    }
    // d decay = dlogw * dlogw/ddecay = dlogw * (-exp(decay)) = dlogw * logw
    const gd = this.g.time_decay!;
    for (let c = 0; c < C; c++) gd[c] += dlogw[c]! * this.logw[c]!;
  }

  /**
   * dk = dkdec * w^(L-1-t), drho = drdec * w^t (in place), and the decay's share through those
   * factors: m * factor * value * gradient for each factor w^m.
   */
  private decayBackward(B: number): void {
    const { C, H, D, L, Tp } = this.d;
    const { rho, k, pow, dlogw } = this;
    const { dk, drho } = this.s;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const hb = (b * H + h) * Tp * D;
        const hc = h * D;
        for (let t = 0; t < Tp; t++) {
          const tl = t % L;
          const mk = L - 1 - tl;
          const r = hb + t * D;
          const pr = tl * C + hc;
          const pk = mk * C + hc;
          for (let i = 0; i < D; i++) {
            const fr = pow[pr + i]!;
            const fk = pow[pk + i]!;
            const gr = drho[r + i]!;
            const gk = dk[r + i]!;
            dlogw[hc + i] += tl * fr * rho[r + i]! * gr + mk * fk * k[r + i]! * gk;
            drho[r + i] = gr * fr;
            dk[r + i] = gk * fk;
          }
        }
      }
    }
  }

  /** The scores' backward: adds their terms to drho, dk, du and dlogw. */
  private scoresBackward(B: number): void {
    const { C, H, D, L, nc } = this.d;
    const { rho, k, pow, dlogw } = this;
    const { dA, drho, dk } = this.s;
    const u = this.w.time_bonus!;
    const du = this.g.time_bonus!;
    const LD = L * D;
    const LL = L * L;
    const nq = B * H * nc;
    for (let q = 0; q < nq; q++) {
      const hc = (Math.floor(q / nc) % H) * D;
      const base = q * LD;
      const ab = q * LL;
      for (let t = 0; t < L; t++) {
        const rt = base + t * D;
        for (let s = 0; s < t; s++) {
          const gA = dA[ab + t * L + s]!;
          if (gA === 0) continue;
          const ks = base + s * D;
          const m = t - s - 1;
          const pm = m * C + hc;
          for (let i = 0; i < D; i++) {
            const p = pow[pm + i]! * gA;
            const ri = rho[rt + i]!;
            const ki = k[ks + i]!;
            drho[rt + i] += p * ki;
            dk[ks + i] += p * ri;
            dlogw[hc + i] += m * p * ri * ki;
          }
        }
        const gd = dA[ab + t * L + t]!;
        for (let i = 0; i < D; i++) {
          const ri = rho[rt + i]!;
          const ki = k[rt + i]!;
          const ui = u[hc + i]!;
          drho[rt + i] += gd * ui * ki;
          dk[rt + i] += gd * ui * ri;
          du[hc + i] += gd * ri * ki;
        }
      }
    }
  }
}

/**
 * Decoding: per row and layer the previous input x_(t-1) [C] (token shift) and the H states
 * [D, D]; constant memory and time per token at any position (capacity: no limit). A step is
 * the recurrence of rwkv.ts's oracle for one token.
 */
class RwkvDecoder implements MixerDecoder {
  readonly capacity = Number.POSITIVE_INFINITY;
  private readonly C: number;
  private readonly H: number;
  private readonly D: number;
  private readonly rows: number;
  private readonly eps: number;
  private readonly weights: Record<string, FloatArray>[];
  private readonly xprev: FloatArray[] = [];
  private readonly S: FloatArray[] = [];
  private readonly xs: FloatArray;
  private readonly proj: FloatArray;
  private readonly o: FloatArray;
  private readonly w: Float64Array;
  /** 1 / rms of each (row, head) of the current step (JS memory: only this step reads it). */
  private readonly rstd: Float64Array;

  constructor(b: MixerDecodeBuild) {
    const { cfg, arena, rows } = b;
    const C = (this.C = cfg.d_model);
    this.H = cfg.n_head;
    this.D = C / this.H;
    this.rows = rows;
    this.eps = cfg.norm_eps;
    this.weights = b.weights;
    for (let l = 0; l < cfg.n_layer; l++) {
      this.xprev.push(arena.floats(rows * C));
      this.S.push(arena.floats(rows * this.H * this.D * this.D));
    }
    this.xs = arena.floats(4 * rows * C);
    this.proj = arena.floats(4 * rows * C);
    this.o = arena.floats(rows * C);
    this.w = new Float64Array(C);
    this.rstd = new Float64Array(rows * this.H);
  }

  reset(r?: number): void {
    const { C } = this;
    const per = this.H * this.D * this.D;
    for (let l = 0; l < this.xprev.length; l++) {
      if (r === undefined) {
        this.xprev[l]!.fill(0);
        this.S[l]!.fill(0);
      } else {
        this.xprev[l]!.fill(0, r * C, (r + 1) * C);
        this.S[l]!.fill(0, r * per, (r + 1) * per);
      }
    }
  }

  step(kn: Kernels, l: number, x: FloatArray, y: FloatArray, _pos: Int32Array, active?: ArrayLike<boolean>): void {
    const { C, H, D, rows: R } = this;
    const lw = this.weights[l]!;
    const mix = lw.time_mix!;
    const u = lw.time_bonus!;
    const decay = lw.time_decay!;
    const xp = this.xprev[l]!;
    const S = this.S[l]!;
    const { xs, proj, o, w } = this;
    const RC = R * C;
    for (let p = 0; p < 4; p++) {
      for (let r = 0; r < R; r++) {
        for (let c = 0; c < C; c++) {
          const mu = mix[p * C + c]!;
          xs[p * RC + r * C + c] = mu * x[r * C + c]! + (1 - mu) * xp[r * C + c]!;
        }
      }
    }
    kn.gemmStridedBatched(false, false, R, C, C, 1, xs, C, RC, lw.wrkvg!, 4 * C, C, 0, proj, C, RC, 4);
    for (let c = 0; c < C; c++) w[c] = Math.exp(-Math.exp(decay[c]!));
    const DD = D * D;
    for (let r = 0; r < R; r++) {
      if (active && !active[r]) {
        o.fill(0, r * C, (r + 1) * C);
        continue;
      }
      for (let h = 0; h < H; h++) {
        const hc = h * D;
        const row = r * C + hc;
        const sb = (r * H + h) * DD;
        let ruk = 0;
        for (let i = 0; i < D; i++) ruk += proj[row + i]! * u[hc + i]! * proj[RC + row + i]!;
        for (let j = 0; j < D; j++) {
          let acc = ruk * proj[2 * RC + row + j]!;
          for (let i = 0; i < D; i++) acc += proj[row + i]! * S[sb + i * D + j]!;
          o[row + j] = acc;
        }
        for (let i = 0; i < D; i++) {
          const wi = w[hc + i]!;
          const ki = proj[RC + row + i]!;
          for (let j = 0; j < D; j++) S[sb + i * D + j] = wi * S[sb + i * D + j]! + ki * proj[2 * RC + row + j]!;
        }
      }
      for (let c = 0; c < C; c++) xp[r * C + c] = x[r * C + c]!;
    }
    // per-head RMS norm and the gate, in place (rows not active hold o = 0 and give 0)
    gatedHeadNorm(o, this.rstd, true, o, lw.head_norm!, proj, 3 * RC, R, H, D, this.eps);
    linearForward(kn, y, o, lw.wo!, R, C, C);
  }
}
