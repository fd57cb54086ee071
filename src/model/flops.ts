import type { ModelConfig } from './config.js';
import { countParams } from './layout.js';
import { attentionMixer } from './mixers/attention-mixer.js';
import { mixerFor } from './mixers/index.js';

/**
 * Training FLOPs per token (forward + backward), the convention used for MFU:
 *
 *   6 * params                      every parameter takes part in one multiply-add per token in
 *                                   the forward (2 FLOPs) and two in the backward (4 FLOPs).
 *                                   `params` is the full count (embedding table included), as
 *                                   in the usual 6N rule; the input embedding is really a lookup,
 *                                   so for untied models this overstates by 6 * V * C.
 * + the sequence mixer's own products (Mixer.flopsPerToken):
 *   attention: 6 * n_layer * seq_len * d_model, the score/value products: per token and layer,
 *                                   QK^T and PV are 2 * T * C FLOPs each in the forward over the
 *                                   FULL T x T matrix, and the backward doubles that (12 L T C in
 *                                   all). We count the CAUSAL HALF (only keys j <= t do useful
 *                                   work), hence 6 L T C. The fused attention kernel skips key
 *                                   tiles past each query block (only the diagonal tiles do
 *                                   masked work) but recomputes QK^T in backward (2 L T C more
 *                                   than counted); recomputation is not counted, as usual for MFU.
 *   rwkv: 6 * n_layer * d_model * (chunk + 2 * head_dim), independent of seq_len (rwkv-mixer.ts).
 */
export function flopsPerToken(cfg: ModelConfig): number {
  return 6 * countParams(cfg) + mixerFlopsPerToken(cfg);
}

/** The sequence mixer's term of flopsPerToken (see there). */
export function mixerFlopsPerToken(cfg: ModelConfig): number {
  return mixerFor(cfg).flopsPerToken(cfg);
}

/** The causal-half attention term 6 * n_layer * seq_len * d_model (see flopsPerToken), whatever cfg's mixer. */
export function attentionFlopsPerToken(cfg: ModelConfig): number {
  return attentionMixer.flopsPerToken(cfg);
}
