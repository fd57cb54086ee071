/** Evaluation on fixed batches, and the sampling driver shared by training and `pocketlm sample`. */

export interface LossModel {
  forward(inputs: Int32Array, targets: Int32Array | null, B?: number): number;
}

export interface TokenBatch {
  inputs: Int32Array;
  targets: Int32Array;
}

/**
 * Mean loss (nats/token) over batches of B full rows each. The batches are copied into the
 * given arena views first: wasm and native kernels can only read ids that live in the arena.
 */
export function meanLoss(model: LossModel, batches: readonly TokenBatch[], B: number, inputs: Int32Array, targets: Int32Array): number {
  if (batches.length === 0) throw new Error('meanLoss: no batches');
  let sum = 0;
  for (const b of batches) {
    inputs.set(b.inputs);
    targets.set(b.targets);
    sum += model.forward(inputs, targets, B);
  }
  return sum / batches.length;
}

/** One-token-at-a-time decoding with a KV cache (src/model/generate.ts has this shape). */
export interface StepDecoder {
  reset(): void;
  step(token: number): ArrayLike<number>;
}

export interface SampleSettings {
  temperature: number;
  topK: number;
  topP: number;
}

export type SampleFn = (logits: ArrayLike<number>, settings: SampleSettings, rng: () => number) => number;

/**
 * Feeds the prompt, then yields up to `maxNew` sampled tokens one by one (so a caller can
 * stream them), stopping early at `stopId`. The decoder handles contexts longer than the
 * model's (src/model/generate.ts slides its window).
 */
export function* sampleTokens(
  decoder: StepDecoder, sample: SampleFn, prompt: readonly number[], maxNew: number,
  settings: SampleSettings, rng: () => number, stopId: number | null,
): Generator<number, void, void> {
  if (prompt.length === 0) throw new Error('sampleTokens: the prompt must hold at least one token');
  decoder.reset();
  let logits: ArrayLike<number> = [];
  for (const id of prompt) logits = decoder.step(id);
  for (let i = 0; i < maxNew; i++) {
    const next = sample(logits, settings, rng);
    if (next === stopId) return;
    yield next;
    if (i + 1 < maxNew) logits = decoder.step(next);
  }
}
