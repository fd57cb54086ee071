/**
 * SPIN's objective (Chen et al. 2024, eq. 4.7 with the logistic loss l(t) = log(1 + e^-t)): for a
 * pair i of a real continuation y and a synthetic one y' of the same prompt,
 *   t_i = lambda * [ (log p(y|x) - log p_ref(y|x)) - (log p(y'|x) - log p_ref(y'|x)) ]
 *   L = mean_i l(t_i)
 * where p_ref is the frozen previous iterate (which also sampled y'). Its gradient is
 *   dL/dtheta = mean_i -sigma(-t_i) lambda (grad log p(y|x) - grad log p(y'|x)),
 * i.e. per-sequence signed weights on the summed cross-entropies CE = -log p of the two rows:
 *   w_real = sigma(-t_i) lambda / n,  w_synthetic = -sigma(-t_i) lambda / n
 * which GPT.backward(1, weights) applies to a forward with reduction 'sum'.
 */
export interface SpinTerms {
  /** mean_i l(t_i) */
  loss: number;
  /** t_i / lambda: how much more the model prefers the real continuation than the reference does. */
  margins: Float64Array;
  /** Weights on the real rows' and the synthetic rows' summed cross-entropy. */
  weightsReal: Float64Array;
  weightsSynthetic: Float64Array;
}

/** log(1 + e^x) without overflow. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** 1 / (1 + e^-x) without overflow. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** The loss, margins and weights from the four per-pair summed log-probabilities. */
export function spinTerms(
  policyReal: ArrayLike<number>, refReal: ArrayLike<number>, policySynthetic: ArrayLike<number>, refSynthetic: ArrayLike<number>,
  lambda: number,
): SpinTerms {
  const n = policyReal.length;
  if (refReal.length !== n || policySynthetic.length !== n || refSynthetic.length !== n) throw new Error('spinTerms: the four arrays differ in length');
  if (n === 0) throw new Error('spinTerms: no pairs');
  const margins = new Float64Array(n);
  const wr = new Float64Array(n);
  const ws = new Float64Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const m = policyReal[i]! - refReal[i]! - (policySynthetic[i]! - refSynthetic[i]!);
    margins[i] = m;
    const t = lambda * m;
    loss += softplus(-t);
    const g = (sigmoid(-t) * lambda) / n;
    wr[i] = g;
    ws[i] = -g;
  }
  return { loss: loss / n, margins, weightsReal: wr, weightsSynthetic: ws };
}
