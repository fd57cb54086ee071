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

/** KV-cache decoding of several rows at once (src/model/generate.ts BatchDecoder has this shape). */
export interface BatchStepDecoder {
  readonly rows: number;
  readonly capacity: number;
  reset(row?: number): void;
  /** Feeds tokens[r] to each active row; returns logits [rows, V]. */
  step(tokens: ArrayLike<number>, active?: ArrayLike<boolean>): ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> };
}

/**
 * Samples a continuation of every prompt, `decoder.rows` prompts at a time through one batched
 * decoder: each prompt with its own rng (`rngs[i]`), up to `maxNew` tokens, stopping at
 * `stopId`. Row i gets exactly the tokens `sampleTokens` would give for prompt i with rngs[i]
 * (the same draws in the same order; the decoder's rows are independent). Prompt plus
 * continuation must fit the decoder (no sliding window here): prompt length + maxNew - 1 <=
 * capacity.
 */
export function sampleBatch(
  decoder: BatchStepDecoder, sample: SampleFn, prompts: readonly (readonly number[])[], maxNew: number,
  settings: SampleSettings, rngs: readonly (() => number)[], stopId: number | null, vocabSize: number,
): number[][] {
  if (rngs.length !== prompts.length) throw new Error(`sampleBatch: ${rngs.length} rngs for ${prompts.length} prompts`);
  const out: number[][] = prompts.map(() => []);
  const R = decoder.rows;
  for (let start = 0; start < prompts.length; start += R) {
    const n = Math.min(R, prompts.length - start);
    const fed = new Int32Array(R);
    const next = new Int32Array(R);
    const active = new Array<boolean>(R).fill(false);
    for (let r = 0; r < n; r++) {
      const p = prompts[start + r]!;
      if (p.length === 0) throw new Error('sampleBatch: a prompt must hold at least one token');
      if (p.length + maxNew - 1 > decoder.capacity) throw new Error(`sampleBatch: prompt ${start + r} (${p.length} tokens) + ${maxNew} new tokens exceed the decoder's ${decoder.capacity}`);
      active[r] = maxNew > 0;
      next[r] = p[0]!;
    }
    decoder.reset();
    while (active.some((a) => a)) {
      const logits = decoder.step(next, active);
      for (let r = 0; r < n; r++) {
        if (!active[r]) continue;
        const p = prompts[start + r]!;
        fed[r]!++;
        if (fed[r]! < p.length) {
          next[r] = p[fed[r]!]!;
          continue;
        }
        const gen = out[start + r]!;
        const id = sample(logits.subarray(r * vocabSize, (r + 1) * vocabSize), settings, rngs[start + r]!);
        if (id === stopId) { active[r] = false; continue; }
        gen.push(id);
        if (gen.length >= maxNew) { active[r] = false; continue; }
        next[r] = id;
      }
    }
  }
  return out;
}
