import type { Arena } from '../kernels/arena.js';
import type { FloatArray, Kernels } from '../kernels/types.js';
import { decayRuns, runViews, type DecayRun } from './runs.js';
import { readStep } from './scalars.js';
import { MUON_DEFAULTS, type OptimConfig, type Optimizer, type ParamTensor } from './types.js';

/**
 * Muon (Keller Jordan et al. 2024, as in modded-nanoGPT): for every hidden weight matrix,
 *   m = mu m + g;  u = g + mu m  (Nesterov);  O = NewtonSchulz(u);
 *   W = (1 - lr_m wd) W - lr_m sqrt(max(1, fan_out / fan_in)) O,
 * where NewtonSchulz approximately replaces u = U S V^T by U V^T (every singular value moved
 * into roughly [0.7, 1.2]), so the step has the same size in every direction the gradient
 * spans instead of being dominated by a few large ones. Everything else (token embedding,
 * LM head, norm weights) is updated by AdamW with the same hyperparameters as `adamw`.
 *
 * Learning rates: step(lr) gets the scheduled AdamW rate; the matrices use
 * lr_m = muon_lr * lr / cfg.lr, so warmup and decay shape both groups alike.
 *
 * Update scale: sqrt(max(1, fan_out / fan_in)), modded-nanoGPT's rule (written there
 * max(1, rows/cols)^0.5 for PyTorch's [out, in] weights; ours are stored [in, out]). O has
 * spectral norm ~1, so the step changes a layer's output RMS, per unit of input RMS, by up to
 * lr_m sqrt(fan_in / fan_out) times the factor: the factor makes that lr_m for maps that widen
 * (gate, up: fan_out = F > C), as for square ones, and leaves maps that narrow (down) at 1
 * rather than shrinking them. We keep this rule, rather than Moonshot's 0.2 sqrt(max(in, out))
 * that matches AdamW's update RMS, because its learning rate and momentum (0.02, 0.95) are the
 * ones tuned for small GPTs trained from scratch, the case here; the matrices have their own
 * `muon_lr` anyway, so the AdamW-matching rule would buy nothing but the need to retune.
 *
 * Weight decay is decoupled and multiplied by the matrices' own rate (lr_m * weight_decay per
 * step, the PyTorch convention), only on tensors flagged `decay`.
 *
 * Which matrices: the model's hidden projections, by name (see src/model/layout.ts), each
 * split into its logical matrices. `wqkv` [C, 3C] holds q | k | v side by side and
 * `w_gate_up` [C, 2F] holds gate | up: they are fused for one gemm in the forward pass, but
 * they are separate linear maps. Orthogonalising the fused block would make the three (or
 * two) parts share one set of singular values: their updates would be constrained jointly
 * (O_q O_q^T + O_k O_k^T + O_v O_v^T = I for O = [O_q | O_k | O_v]), each part getting only a
 * share of a unit spectrum, and a large gradient in one (say v) would take step size away
 * from the others.
 * Each logical matrix is orthogonalised on its own, as modded-nanoGPT does with its
 * [3, d, d] qkv weight. Anything not named here (including any new 2-D tensor) goes to
 * AdamW, which is safe for every shape.
 *
 * Newton-Schulz on the gemm kernels, with no transposes and no copies of the weights:
 * for u of shape [r, c] (a column block of the fused gradient, read in place through its
 * leading dimension) let p = min(r, c). With r <= c ("wide") X is u and the iteration is
 *   A = X X^T,  B = a I + b A + c A^2,  X' = B X
 * and with r > c ("tall") the transposed iteration on the stored orientation
 *   A = X^T X,  B likewise,  X' = X B
 * (X' = a X + (b A + c A A) X, with a folded into the diagonal of B so that one gemm makes
 * X'). The Frobenius norm needed first is sqrt(trace(A)) of the first A, computed from the
 * unnormalised u, so normalising costs a scale of A and a gemm alpha, not a pass over u.
 * The last product accumulates straight into the weights (gemm beta = 1, alpha = -lr_m *
 * scale). Scratch (u, two X buffers, A, B) comes from the arena once, at construction.
 *
 * State (checkpointed): `m` holds Muon's momentum on the matrices and AdamW's first moment
 * elsewhere; `v` holds AdamW's second moment (zero on the matrices). Scalars: `step`.
 */

/** (a, b, c) of the quintic iteration X' = a X + b (X X^T) X + c (X X^T)^2 X, from modded-nanoGPT. */
export const NS_COEFFS = [3.4445, -4.775, 2.0315] as const;
/** Guards the normalisation of an all-zero update (as modded-nanoGPT: X / (||X|| + 1e-7)). */
export const NS_EPS = 1e-7;

/** How each hidden matrix of the model splits, by tensor name suffix: the number of column blocks. */
const HIDDEN_MATRICES: ReadonlyArray<readonly [RegExp, number]> = [
  [/^blocks\.\d+\.wqkv$/, 3], // attention: q | k | v
  [/^blocks\.\d+\.wrkvg$/, 4], // rwkv: r | k | v | g (its time_mix [4, C] is a vector per projection: AdamW)
  [/^blocks\.\d+\.wo$/, 1],
  [/^blocks\.\d+\.w_gate_up$/, 2], // gate | up
  [/^blocks\.\d+\.w_down$/, 1],
];

/** One logical matrix Muon orthogonalises: `cols` columns of a tensor starting at column `col`. */
export interface MuonBlock {
  tensor: string;
  /** fan_in: rows of the [in, out] block. */
  rows: number;
  /** fan_out: columns of the block. */
  cols: number;
  /** First column of the block inside its tensor. */
  col: number;
  /** Leading dimension: the tensor's full number of columns. */
  ld: number;
  /** sqrt(max(1, fan_out / fan_in)). */
  scale: number;
}

/** The Muon / AdamW split of a parameter layout. */
export interface MuonPlan {
  /** Tensors whose update is orthogonalised, each with its logical blocks. */
  matrices: { tensor: ParamTensor; blocks: MuonBlock[] }[];
  /** Everything else: AdamW. */
  adamw: ParamTensor[];
}

/** Splits the layout into Muon's hidden matrices (by name, see HIDDEN_MATRICES) and AdamW's rest. */
/** The largest matrix, the largest block and the largest short side: what the scratch must hold. */
function scratchSizes(plan: MuonPlan): { maxSize: number; maxBlock: number; maxP: number } {
  let maxSize = 0, maxBlock = 0, maxP = 0;
  for (const { tensor: t, blocks } of plan.matrices) {
    maxSize = Math.max(maxSize, t.size);
    for (const bl of blocks) {
      maxBlock = Math.max(maxBlock, bl.rows * bl.cols);
      maxP = Math.max(maxP, Math.min(bl.rows, bl.cols));
    }
  }
  return { maxSize, maxBlock, maxP };
}

/**
 * The arena allocations (lengths in floats, in order) Muon makes for a model with these tensors:
 * m and v over all parameters, then the scratch u, two X buffers, A and B. The memory plan
 * (src/train/memory.ts) counts these before anything is allocated.
 */
export function muonStateFloats(tensors: readonly ParamTensor[], numParams: number): number[] {
  const { maxSize, maxBlock, maxP } = scratchSizes(muonPlan(tensors));
  return [numParams, numParams, maxSize, maxBlock, maxBlock, maxP * maxP, maxP * maxP];
}

export function muonPlan(tensors: readonly ParamTensor[]): MuonPlan {
  const plan: MuonPlan = { matrices: [], adamw: [] };
  for (const t of tensors) {
    const rule = HIDDEN_MATRICES.find(([re]) => re.test(t.name));
    if (!rule || t.size === 0) {
      plan.adamw.push(t);
      continue;
    }
    const parts = rule[1];
    const [rows, ld] = t.shape;
    if (t.shape.length !== 2 || rows * ld !== t.size || ld % parts !== 0) {
      throw new RangeError(`muon: tensor "${t.name}" of shape [${t.shape.join(', ')}] (size ${t.size}) is not a 2-D matrix of ${parts} equal column blocks`);
    }
    const cols = ld / parts;
    const blocks: MuonBlock[] = [];
    for (let i = 0; i < parts; i++) {
      blocks.push({ tensor: t.name, rows, cols, col: i * cols, ld, scale: Math.sqrt(Math.max(1, cols / rows)) });
    }
    plan.matrices.push({ tensor: t, blocks });
  }
  return plan;
}

/** A block with its views, made once. */
interface BlockViews {
  rows: number;
  cols: number;
  ld: number;
  scale: number;
  /** u's block (starts at the block's first column, rows ld apart). */
  u: FloatArray;
  /** the weights' block, likewise. */
  p: FloatArray;
}

interface MatrixViews {
  size: number;
  decay: boolean;
  p: FloatArray;
  g: FloatArray;
  m: FloatArray;
  u: FloatArray;
  blocks: BlockViews[];
}

export class Muon implements Optimizer {
  readonly name = 'muon' as const;
  stepCount = 0;
  private readonly m: FloatArray;
  private readonly v: FloatArray;
  private readonly runs: DecayRun[];
  private readonly pv: FloatArray[];
  private readonly gv: FloatArray[];
  private readonly mv: FloatArray[];
  private readonly vv: FloatArray[];
  private readonly mats: MatrixViews[];
  /** Newton-Schulz ping-pong buffers for X (each holds the largest block), and A, B (p x p). */
  private readonly x: [FloatArray, FloatArray];
  private readonly a: FloatArray;
  private readonly b: FloatArray;
  private readonly muonLr: number;
  private readonly momentum: number;
  private readonly nsSteps: number;

  constructor(
    private readonly cfg: OptimConfig,
    private readonly kernels: Kernels,
    arena: Arena,
    params: FloatArray,
    grads: FloatArray,
    tensors: readonly ParamTensor[],
  ) {
    this.muonLr = cfg.muon_lr ?? MUON_DEFAULTS.muon_lr;
    this.momentum = cfg.muon_momentum ?? MUON_DEFAULTS.muon_momentum;
    this.nsSteps = cfg.ns_steps ?? MUON_DEFAULTS.ns_steps;
    if (!Number.isInteger(this.nsSteps) || this.nsSteps < 1) throw new RangeError(`muon: ns_steps must be an integer >= 1, got ${this.nsSteps}`);
    const n = params.length;
    decayRuns(tensors, n); // validates bounds and overlaps of the whole layout
    const plan = muonPlan(tensors);
    this.m = arena.floats(n);
    this.v = arena.floats(n);
    this.runs = decayRuns(plan.adamw, n);
    this.pv = runViews(params, this.runs);
    this.gv = runViews(grads, this.runs);
    this.mv = runViews(this.m, this.runs);
    this.vv = runViews(this.v, this.runs);

    const { maxSize, maxBlock, maxP } = scratchSizes(plan);
    const u = arena.floats(maxSize);
    this.x = [arena.floats(maxBlock), arena.floats(maxBlock)];
    this.a = arena.floats(maxP * maxP);
    this.b = arena.floats(maxP * maxP);
    this.mats = plan.matrices.map(({ tensor: t, blocks }) => {
      const p = params.subarray(t.offset, t.offset + t.size);
      const ut = u.subarray(0, t.size);
      return {
        size: t.size, decay: t.decay, p, g: grads.subarray(t.offset, t.offset + t.size),
        m: this.m.subarray(t.offset, t.offset + t.size), u: ut,
        blocks: blocks.map((bl) => ({ rows: bl.rows, cols: bl.cols, ld: bl.ld, scale: bl.scale, u: ut.subarray(bl.col), p: p.subarray(bl.col) })),
      };
    });
  }

  step(lr: number): void {
    const k = this.kernels;
    const { beta1: b1, beta2: b2, eps, weight_decay } = this.cfg;
    const t = this.stepCount + 1;
    const bc1 = 1 - Math.pow(b1, t);
    const bc2 = 1 - Math.pow(b2, t);
    for (let i = 0; i < this.runs.length; i++) {
      const wd = this.runs[i].decay ? weight_decay : 0;
      k.adamwUpdate(this.pv[i], this.gv[i], this.mv[i], this.vv[i], this.runs[i].size, lr, b1, b2, eps, wd, bc1, bc2);
    }
    const lrM = (this.muonLr * lr) / this.cfg.lr;
    const mu = this.momentum;
    for (const mt of this.mats) {
      k.scale(mt.m, mu, mt.size);
      k.axpy(mt.m, mt.g, 1, mt.size); // m = mu m + g
      mt.u.set(mt.g);
      k.axpy(mt.u, mt.m, mu, mt.size); // u = g + mu m
      if (mt.decay && weight_decay > 0) k.scale(mt.p, 1 - lrM * weight_decay, mt.size);
      for (const bl of mt.blocks) this.orthogonalStep(bl, lrM);
    }
    this.stepCount = t;
  }

  /** p_block -= lrM * scale * NewtonSchulz(u_block), see the comment at the top. */
  private orthogonalStep(bl: BlockViews, lrM: number): void {
    const k = this.kernels;
    const { rows: r, cols: c, ld } = bl;
    const wide = r <= c;
    const p = wide ? r : c;
    const q = wide ? c : r;
    const A = this.a;
    const B = this.b;
    const ca = NS_COEFFS[0], cb = NS_COEFFS[1], cc = NS_COEFFS[2];
    let X = bl.u;
    let ldx = ld;
    let xAlpha = 1;
    for (let s = 0; s < this.nsSteps; s++) {
      // A = X X^T (wide) or X^T X (tall), p x p
      if (wide) k.gemm(false, true, p, p, q, 1, X, ldx, X, ldx, 0, A, p);
      else k.gemm(true, false, p, p, q, 1, X, ldx, X, ldx, 0, A, p);
      if (s === 0) {
        // X is the unnormalised u: ||u||_F^2 = trace(u u^T); normalise A here and X in the products.
        let tr = 0;
        for (let i = 0; i < p; i++) tr += A[i * (p + 1)];
        const inv = 1 / (Math.sqrt(tr) + NS_EPS);
        k.scale(A, inv * inv, p * p);
        xAlpha = inv;
      }
      // B = a I + b A + c A A
      k.gemm(false, false, p, p, p, cc, A, p, A, p, 0, B, p);
      k.axpy(B, A, cb, p * p);
      for (let i = 0; i < p; i++) B[i * (p + 1)] += ca;
      // X' = B X (wide) or X B (tall), in the stored [r, c] orientation
      const last = s === this.nsSteps - 1;
      const out = last ? bl.p : this.x[s % 2];
      const ldo = last ? ld : c;
      const alphaOut = last ? -lrM * bl.scale * xAlpha : xAlpha;
      const beta = last ? 1 : 0;
      if (wide) k.gemm(false, false, p, q, p, alphaOut, B, p, X, ldx, beta, out, ldo);
      else k.gemm(false, false, q, p, p, alphaOut, X, ldx, B, p, beta, out, ldo);
      X = out;
      ldx = c;
      xAlpha = 1;
    }
  }

  state(): Record<string, FloatArray> {
    return { m: this.m, v: this.v };
  }

  scalars(): Record<string, number> {
    return { step: this.stepCount };
  }

  loadScalars(s: Record<string, number>): void {
    this.stepCount = readStep(s, this.name);
  }

  evalParams(): void {}
  trainParams(): void {}
}
