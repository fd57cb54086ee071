import type { FloatArray } from '../types.js';

/**
 * In place over nMat [T, T] matrices: row t becomes softmax(scale * att[t, 0..t]) with
 * exact zeros above the diagonal (whatever was stored there is never read).
 */
export function softmaxCausalForward(att: FloatArray, nMat: number, T: number, scale: number): void {
  for (let m = 0; m < nMat; m++) {
    for (let t = 0; t < T; t++) {
      const row = (m * T + t) * T;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) max = Math.max(max, scale * att[row + j]);
      let sum = 0;
      for (let j = 0; j <= t; j++) {
        const e = Math.exp(scale * att[row + j] - max);
        att[row + j] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let j = 0; j <= t; j++) att[row + j] *= inv;
      for (let j = t + 1; j < T; j++) att[row + j] = 0;
    }
  }
}

/** datt := scale * att * (datt - sum_{k<=t} att datt) on and below the diagonal, 0 above. */
export function softmaxCausalBackward(datt: FloatArray, att: FloatArray, nMat: number, T: number, scale: number): void {
  for (let m = 0; m < nMat; m++) {
    for (let t = 0; t < T; t++) {
      const row = (m * T + t) * T;
      let dot = 0;
      for (let k = 0; k <= t; k++) dot += att[row + k] * datt[row + k];
      for (let j = 0; j <= t; j++) datt[row + j] = scale * att[row + j] * (datt[row + j] - dot);
      for (let j = t + 1; j < T; j++) datt[row + j] = 0;
    }
  }
}

/**
 * Key tile of the oracle's online softmax: small, so that short test sequences already span
 * several tiles and one that ends mid-tile.
 */
const JS_KEY_TILE = 16;

/**
 * Fused causal attention forward (see Kernels.attentionCausalForward): per query row, the keys
 * are visited in tiles with a running max and sum (online softmax), so no T x T matrix exists.
 * Accumulates in float64 temporaries whatever the arrays' precision.
 */
export function attentionCausalForward(out: FloatArray, lse: FloatArray, qkv: FloatArray,
  B: number, T: number, H: number, D: number, scale: number): void {
  const C = H * D;
  const C3 = 3 * C;
  const acc = new Float64Array(D);
  const s = new Float64Array(JS_KEY_TILE);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = b * T * C3 + h * D;
      for (let t = 0; t < T; t++) {
        const q = base + t * C3;
        let m = -Infinity;
        let l = 0;
        acc.fill(0);
        for (let j0 = 0; j0 <= t; j0 += JS_KEY_TILE) {
          const j1 = Math.min(t + 1, j0 + JS_KEY_TILE);
          let tileMax = -Infinity;
          for (let j = j0; j < j1; j++) {
            const k = base + j * C3 + C;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += qkv[q + d]! * qkv[k + d]!;
            s[j - j0] = scale * dot;
            tileMax = Math.max(tileMax, s[j - j0]!);
          }
          const mNew = Math.max(m, tileMax);
          const corr = Math.exp(m - mNew);
          l *= corr;
          for (let d = 0; d < D; d++) acc[d] *= corr;
          for (let j = j0; j < j1; j++) {
            const p = Math.exp(s[j - j0]! - mNew);
            l += p;
            const v = base + j * C3 + 2 * C;
            for (let d = 0; d < D; d++) acc[d] += p * qkv[v + d]!;
          }
          m = mNew;
        }
        const o = (b * T + t) * C + h * D;
        for (let d = 0; d < D; d++) out[o + d] = acc[d]! / l;
        lse[(b * H + h) * T + t] = m + Math.log(l);
      }
    }
  }
}

/**
 * Fused causal attention backward (see Kernels.attentionCausalBackward): the probabilities are
 * recomputed from q, k and the saved log-sum-exp; delta_t = dout_t . out_t replaces the
 * softmax's row sum. Gradients are summed in float64 for one head at a time, then written.
 */
export function attentionCausalBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, out: FloatArray,
  lse: FloatArray, B: number, T: number, H: number, D: number, scale: number): void {
  const C = H * D;
  const C3 = 3 * C;
  const dq = new Float64Array(T * D);
  const dk = new Float64Array(T * D);
  const dv = new Float64Array(T * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = b * T * C3 + h * D;
      dq.fill(0);
      dk.fill(0);
      dv.fill(0);
      for (let t = 0; t < T; t++) {
        const q = base + t * C3;
        const o = (b * T + t) * C + h * D;
        let delta = 0;
        for (let d = 0; d < D; d++) delta += dout[o + d]! * out[o + d]!;
        const ls = lse[(b * H + h) * T + t]!;
        for (let j = 0; j <= t; j++) {
          const k = base + j * C3 + C;
          const v = k + C;
          let sdot = 0;
          let pdot = 0;
          for (let d = 0; d < D; d++) {
            sdot += qkv[q + d]! * qkv[k + d]!;
            pdot += dout[o + d]! * qkv[v + d]!;
          }
          const p = Math.exp(scale * sdot - ls);
          const ds = scale * p * (pdot - delta);
          for (let d = 0; d < D; d++) {
            dv[j * D + d] += p * dout[o + d]!;
            dq[t * D + d] += ds * qkv[k + d]!;
            dk[j * D + d] += ds * qkv[q + d]!;
          }
        }
      }
      for (let t = 0; t < T; t++) {
        const r = base + t * C3;
        for (let d = 0; d < D; d++) {
          dqkv[r + d] = dq[t * D + d]!;
          dqkv[r + C + d] = dk[t * D + d]!;
          dqkv[r + 2 * C + d] = dv[t * D + d]!;
        }
      }
    }
  }
}
