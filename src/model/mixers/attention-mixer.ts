import type { Arena } from '../../kernels/arena.js';
import { ropeTables, type FloatArray, type Kernels } from '../../kernels/types.js';
import type { ModelConfig } from '../config.js';
import { linearForward } from '../linear.js';
import { AttentionPlan, attentionBackward, attentionForward } from './attention.js';
import type { Mixer, MixerDecodeBuild, MixerDecoder, MixerLayer } from './mixer.js';

interface Rope { cos: FloatArray; sin: FloatArray }

/**
 * Causal softmax attention with RoPE as a `Mixer` (the op pair is attention.ts):
 * parameters `wqkv` [C, 3C] (q | k | v) and `wo` [C, C]; per layer it keeps qkv [N, 3C], the
 * log-sum-exp [B, H, T] and the heads' outputs atty [N, C]; its backward scratch is dqkv
 * [N, 3C] (datty is written over dx). Decoding keeps a KV cache of min(maxTokens, seq_len)
 * positions per row and layer.
 */

function ropeFor(cfg: ModelConfig, arena: Arena): Rope {
  const T = cfg.seq_len;
  const D = cfg.d_model / cfg.n_head;
  const cos = arena.floats((T * D) / 2);
  const sin = arena.floats((T * D) / 2);
  ropeTables(cos, sin, T, D, cfg.rope_theta);
  return { cos, sin };
}

export const attentionMixer: Mixer = {
  name: 'attention',

  params(cfg) {
    const C = cfg.d_model;
    return [
      { name: 'wqkv', shape: [C, 3 * C], decay: true, init: 'normal' },
      { name: 'wo', shape: [C, C], decay: true, init: 'normal_residual' },
    ];
  },

  keptFloats(cfg, maxB) {
    const N = maxB * cfg.seq_len;
    return 3 * N * cfg.d_model /* qkv */ + maxB * cfg.n_head * cfg.seq_len /* lse */ + N * cfg.d_model /* atty */;
  },

  scratchFloats(cfg, maxB) {
    return 3 * maxB * cfg.seq_len * cfg.d_model; // dqkv
  },

  modelAllocs(cfg) {
    const half = (cfg.seq_len * (cfg.d_model / cfg.n_head)) / 2;
    return [half, half]; // RoPE cos, sin
  },

  decoderAllocs(cfg, rows, maxTokens) {
    const C = cfg.d_model;
    const H = cfg.n_head;
    const cap = Math.min(maxTokens, cfg.seq_len);
    // qkv, atty, scores, rowLoss, zeroTargets, then K and V per layer
    return [3 * rows * C, rows * C, H * cap, H, H, ...Array<number>(2 * cfg.n_layer).fill(rows * cap * C)];
  },

  build(b) {
    const { cfg, maxB, arena } = b;
    const T = cfg.seq_len;
    const C = cfg.d_model;
    const H = cfg.n_head;
    const N = maxB * T;
    const rope = ropeFor(cfg, arena);
    const dqkv = b.scratch.subarray(0, 3 * N * C);
    const layers: MixerLayer[] = [];
    for (let l = 0; l < cfg.n_layer; l++) {
      const w = b.weights[l]!;
      const g = b.grads[l]!;
      const plan = new AttentionPlan(
        { maxB, T, C, H },
        {
          x: b.x[l]!, qkv: arena.floats(3 * N * C), lse: arena.floats(maxB * H * T), atty: arena.floats(N * C), y: b.y,
          wqkv: w.wqkv!, wo: w.wo!, cos: rope.cos, sin: rope.sin,
          dy: b.dy, dx: b.dx, dwqkv: g.wqkv!, dwo: g.wo!, datty: b.dx, dqkv,
        },
      );
      layers.push({
        forward: (k, B) => attentionForward(k, plan, B),
        backward: (k, B, alpha) => attentionBackward(k, plan, B, alpha),
      });
    }
    return { layers, decoder: (d) => new KvCacheDecoder(d, rope) };
  },

  /**
   * 6 * n_layer * seq_len * d_model: per token and layer QK^T and PV over the CAUSAL HALF of
   * the T x T scores, 2 T C FLOPs each forward, doubled in backward (see flops.ts).
   */
  flopsPerToken(cfg) {
    return 6 * cfg.n_layer * cfg.seq_len * cfg.d_model;
  },
};

/**
 * The KV cache of every row and layer: K and V [capacity, C] (post-RoPE keys), capacity =
 * min(maxTokens, seq_len): the model never saw a position >= seq_len, and the RoPE tables stop
 * there. One query row per sequence against its cache. Its softmax uses
 * `crossEntropyForwardBackward` with target 0 and dscale 1, which writes softmax(row) - onehot(0)
 * in place; adding 1 back to element 0 leaves the softmax (absolute error ~1 ulp of 1.0 on that
 * element). This keeps every exp inside the kernels at O(H * n) per token, where the [T, T]
 * causal kernel would cost O(H * n^2).
 */
class KvCacheDecoder implements MixerDecoder {
  readonly capacity: number;
  private readonly C: number;
  private readonly H: number;
  private readonly D: number;
  private readonly rows: number;
  private readonly wqkv: FloatArray[];
  private readonly wo: FloatArray[];
  private readonly cos: FloatArray;
  private readonly sin: FloatArray;
  private readonly qkv: FloatArray;
  private readonly atty: FloatArray;
  private readonly scores: FloatArray;
  private readonly rowLoss: FloatArray;
  private readonly zeroTargets: Int32Array;
  private readonly kCache: FloatArray[] = [];
  private readonly vCache: FloatArray[] = [];

  constructor(b: MixerDecodeBuild, rope: Rope) {
    const { cfg, arena, rows } = b;
    this.capacity = Math.min(b.maxTokens, cfg.seq_len);
    const C = (this.C = cfg.d_model);
    this.H = cfg.n_head;
    this.D = C / this.H;
    this.rows = rows;
    this.wqkv = b.weights.map((w) => w.wqkv!);
    this.wo = b.weights.map((w) => w.wo!);
    this.cos = rope.cos;
    this.sin = rope.sin;
    this.qkv = arena.floats(rows * 3 * C);
    this.atty = arena.floats(rows * C);
    this.scores = arena.floats(this.H * this.capacity);
    this.rowLoss = arena.floats(this.H);
    this.zeroTargets = arena.ints(this.H);
    for (let l = 0; l < cfg.n_layer; l++) {
      this.kCache.push(arena.floats(rows * this.capacity * C));
      this.vCache.push(arena.floats(rows * this.capacity * C));
    }
  }

  reset(): void {
    // positions live in BatchDecoder: a row's cache entries past its position are never read
  }

  step(k: Kernels, l: number, x: FloatArray, y: FloatArray, pos: Int32Array, active?: ArrayLike<boolean>): void {
    const { C, H, D } = this;
    const C3 = 3 * C;
    const cap = this.capacity;
    linearForward(k, this.qkv, x, this.wqkv[l]!, this.rows, C, C3);
    const kc = this.kCache[l]!;
    const vc = this.vCache[l]!;
    for (let r = 0; r < this.rows; r++) {
      if (active && !active[r]) continue;
      const p = pos[r]!;
      if (p >= cap) throw new Error(`attention decoder: row ${r} is full (${cap} tokens)`);
      const n = p + 1;
      const row = this.qkv.subarray(r * C3, (r + 1) * C3);
      // q and k are the first 2H heads of the row: rotate both at position p
      k.ropeForward(row, 1, 1, 2 * H, D, C3, this.cos.subarray((p * D) / 2), this.sin.subarray((p * D) / 2));
      const kr = kc.subarray(r * cap * C, (r + 1) * cap * C);
      const vr = vc.subarray(r * cap * C, (r + 1) * cap * C);
      kr.set(row.subarray(C, 2 * C), p * C);
      vr.set(row.subarray(2 * C, C3), p * C);
      // scores[h, j] = q_h . k_h[j] / sqrt(D), j < n; rows of length n, one per head
      k.gemmStridedBatched(false, true, 1, n, D, 1 / Math.sqrt(D), row, C3, D, kr, C, D, 0, this.scores, n, n, H);
      k.crossEntropyForwardBackward(this.scores, this.rowLoss, this.scores, this.zeroTargets, H, n, 1);
      for (let hd = 0; hd < H; hd++) this.scores[hd * n] += 1;
      k.gemmStridedBatched(false, false, 1, D, n, 1, this.scores, n, n, vr, C, D, 0, this.atty.subarray(r * C), C, D, H);
    }
    linearForward(k, y, this.atty, this.wo[l]!, this.rows, C, C);
  }
}
