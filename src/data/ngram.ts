/**
 * Count-based n-gram language models (orders 1-3) over a token stream, scored by
 * cross-entropy in nats per token. Two smoothings:
 * - add-k: P(w|h) = (c(h,w) + k) / (c(h) + k*V)
 * - interpolated Kneser-Ney: absolute discounting with one discount per order
 *   (D = n1 / (n1 + 2*n2) from that order's count-of-counts), the lower orders using
 *   continuation counts N1+(. g), the bottom interpolated with the uniform 1/V.
 * Keys pack n-grams into one number: ((u*V)+v)*V+w stays below 2^53 for V < 2^17.
 */

/** Every model is scored on the same positions: those with two tokens of history. */
export const EVAL_FROM = 2;

export interface NgramCounts {
  order: number;
  V: number;
  /** counts[k-1]: map from the packed k-gram to its count (k = 1..order). */
  counts: Map<number, number>[];
}

/** Counts all k-grams, k = 1..order, of the token stream. */
export function countNgrams(tokens: ArrayLike<number>, V: number, order: number): NgramCounts {
  const counts: Map<number, number>[] = [];
  for (let k = 1; k <= order; k++) counts.push(new Map());
  for (let i = 0; i < tokens.length; i++) {
    let key = 0;
    for (let k = 1; k <= order && i - k + 1 >= 0; k++) {
      // the k-gram ending at i is tokens[i-k+1..i]; build it by prefixing the older token
      key = tokens[i - k + 1]! * V ** (k - 1) + key;
      const m = counts[k - 1]!;
      m.set(key, (m.get(key) ?? 0) + 1);
    }
  }
  return { order, V, counts };
}

/** Cross-entropy (nats/token) of the add-k model of the given order on `eval`. */
export function addKCrossEntropy(c: NgramCounts, order: number, k: number, tokens: ArrayLike<number>, from = EVAL_FROM): number {
  const V = c.V;
  const ctxCounts = order > 1 ? c.counts[order - 2]! : null;
  const total = sumValues(c.counts[0]!);
  const table = c.counts[order - 1]!;
  let nll = 0;
  let n = 0;
  for (let i = Math.max(order - 1, from); i < tokens.length; i++) {
    let key = 0;
    for (let j = i - order + 1; j <= i; j++) key = key * V + tokens[j]!;
    const ctx = order > 1 ? Math.floor(key / V) : 0;
    const num = (table.get(key) ?? 0) + k;
    const den = (ctxCounts ? ctxCounts.get(ctx) ?? 0 : total) + k * V;
    nll -= Math.log(num / den);
    n++;
  }
  return nll / n;
}

interface KnLevel {
  /** count used at this level: raw for the top order, continuation count below */
  cnt: Map<number, number>;
  /** per context: sum of cnt over w, and number of w with cnt > 0 */
  den: Map<number, number>;
  types: Map<number, number>;
  D: number;
}

export interface KneserNey { order: number; V: number; levels: KnLevel[] }

/** Builds the interpolated Kneser-Ney model of the given order from counts. */
export function buildKneserNey(c: NgramCounts, order: number): KneserNey {
  const V = c.V;
  const levels: KnLevel[] = [];
  for (let k = 1; k <= order; k++) {
    let cnt: Map<number, number>;
    if (k === order) cnt = c.counts[k - 1]!;
    else {
      // continuation count of g: how many distinct tokens precede it
      cnt = new Map();
      const V_k = V ** k;
      for (const key of c.counts[k]!.keys()) {
        const g = key % V_k;
        cnt.set(g, (cnt.get(g) ?? 0) + 1);
      }
    }
    const den = new Map<number, number>();
    const types = new Map<number, number>();
    let n1 = 0;
    let n2 = 0;
    for (const [key, v] of cnt) {
      const ctx = Math.floor(key / V);
      den.set(ctx, (den.get(ctx) ?? 0) + v);
      types.set(ctx, (types.get(ctx) ?? 0) + 1);
      if (v === 1) n1++;
      else if (v === 2) n2++;
    }
    const D = n1 + 2 * n2 > 0 ? Math.min(0.99, Math.max(0.01, n1 / (n1 + 2 * n2))) : 0.5;
    levels.push({ cnt, den, types, D });
  }
  return { order, V, levels };
}

/** P(w | the last order-1 tokens before position i), with shorter contexts at the start. */
function knProb(m: KneserNey, tokens: ArrayLike<number>, i: number): number {
  const V = m.V;
  let p = 1 / V;
  for (let k = 1; k <= m.order; k++) {
    if (i - k + 1 < 0) break;
    let key = 0;
    for (let j = i - k + 1; j <= i; j++) key = key * V + tokens[j]!;
    const lv = m.levels[k - 1]!;
    const ctx = Math.floor(key / V);
    const den = lv.den.get(ctx) ?? 0;
    if (den === 0) continue; // unseen context: keep the lower-order estimate
    const c = lv.cnt.get(key) ?? 0;
    p = Math.max(c - lv.D, 0) / den + (lv.D * (lv.types.get(ctx) ?? 0) / den) * p;
  }
  return p;
}

export function kneserNeyCrossEntropy(m: KneserNey, tokens: ArrayLike<number>, from = EVAL_FROM): number {
  let nll = 0;
  let n = 0;
  for (let i = Math.max(m.order - 1, from); i < tokens.length; i++) {
    nll -= Math.log(knProb(m, tokens, i));
    n++;
  }
  return nll / n;
}

/** Sums P(w|h) over the vocabulary: 1 for a proper model (used by tests). */
export function knTotalProbability(m: KneserNey, history: number[]): number {
  const toks = [...history, 0];
  let s = 0;
  for (let w = 0; w < m.V; w++) {
    toks[toks.length - 1] = w;
    s += knProb(m, toks, toks.length - 1);
  }
  return s;
}

function sumValues(m: Map<number, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}
