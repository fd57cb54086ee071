/**
 * Test helpers for the model folder (not used by the library): tiny configs, random parameters
 * that exercise every term, and a finite-difference check of every parameter tensor.
 */
import assert from 'node:assert/strict';
import type { Arena } from '../kernels/arena.js';
import type { FloatArray } from '../kernels/types.js';
import type { ModelConfig } from './config.js';
import type { GPT } from './gpt.js';
import type { ParamTensor } from './layout.js';
import { mulberry32, normalSampler } from './rng.js';

const base = { rope_theta: 10000, norm_eps: 1e-5, init_std: 0.02 };
/** The [model] sections of presets/seed-small.toml and presets/default.toml. */
export const SEED_SMALL: ModelConfig = { vocab_size: 1024, d_model: 128, n_layer: 4, n_head: 4, seq_len: 128, ffn_hidden: 512, tie_embeddings: false, ...base };
export const DEFAULT: ModelConfig = { vocab_size: 1024, d_model: 192, n_layer: 6, n_head: 6, seq_len: 256, ffn_hidden: 768, tie_embeddings: false, ...base };

export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    vocab_size: 11, d_model: 8, n_layer: 2, n_head: 2, seq_len: 5, ffn_hidden: 12,
    tie_embeddings: false, rope_theta: 10000, norm_eps: 1e-5, init_std: 0.02, ...over,
  };
}

/**
 * Parameters far from init so that no term is negligible: matrices normal(0, 0.4), norm
 * weights 1 + normal(0, 0.3) (a norm weight of exactly 1 would hide a missing weight factor).
 */
export function randomizeParams(model: GPT, seed: number): void {
  const normal = normalSampler(mulberry32(seed));
  for (const t of model.tensors) {
    const isNorm = t.shape.length === 1;
    for (let i = t.offset; i < t.offset + t.size; i++) model.params[i] = isNorm ? 1 + 0.3 * normal() : 0.4 * normal();
  }
}

export function randomIds(n: number, V: number, seed: number): Int32Array {
  const u = mulberry32(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(u() * V);
  return out;
}

export interface TensorGradReport {
  name: string;
  checked: number;
  /** max |analytic - numeric| / max |numeric| over the checked elements of the tensor. */
  relErr: number;
  maxNumeric: number;
}

/**
 * Central differences (step h) of `loss()` for `count` elements of each parameter tensor (all of
 * them when count >= size), against the analytic gradient already in `model.grads`.
 * The error is normalised by the tensor's largest numeric gradient, so a near-zero element
 * does not produce a huge relative error, while a wrong factor anywhere shows as >= 0.3.
 */
export function finiteDifferenceReport(model: GPT, loss: () => number, count = Infinity, h = 1e-5, seed = 1): TensorGradReport[] {
  const p = model.params;
  const u = mulberry32(seed);
  const out: TensorGradReport[] = [];
  for (const t of model.tensors) {
    const idx: number[] = [];
    if (count >= t.size) for (let i = 0; i < t.size; i++) idx.push(i);
    else for (let j = 0; j < count; j++) idx.push(Math.floor(u() * t.size));
    let maxNum = 0;
    let maxDiff = 0;
    for (const j of idx) {
      const i = t.offset + j;
      const old = p[i]!;
      p[i] = old + h;
      const fp = loss();
      p[i] = old - h;
      const fm = loss();
      p[i] = old;
      const num = (fp - fm) / (2 * h);
      maxNum = Math.max(maxNum, Math.abs(num));
      maxDiff = Math.max(maxDiff, Math.abs(num - model.grads[i]!));
    }
    out.push({ name: t.name, checked: idx.length, relErr: maxNum > 0 ? maxDiff / maxNum : maxDiff, maxNumeric: maxNum });
  }
  return out;
}

export function copyOf(x: FloatArray): Float64Array {
  return Float64Array.from(x);
}

/** log softmax(logits row)[target], computed directly in float64 (the reference the loss tests compare with). */
export function logProb(logits: ArrayLike<number>, row: number, V: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[row * V + v]!);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[row * V + v]! - max);
  return logits[row * V + target]! - max - Math.log(s);
}

/** A model's loss and gradients after one step, for comparing backends. */
export interface BackendRun { loss: number; grads: Float64Array; tensors: ParamTensor[] }

/**
 * One forward (B rows of random ids, seeds 1 and 2, copied into `arena` so every backend can
 * read them) and backward(0.5) of `m` from zero gradients.
 */
export function runOnce(m: GPT, arena: Arena, B: number): BackendRun {
  const n = B * m.config.seq_len;
  const x = arena.ints(n);
  const y = arena.ints(n);
  x.set(randomIds(n, m.config.vocab_size, 1));
  y.set(randomIds(n, m.config.vocab_size, 2));
  m.zeroGrad();
  const loss = m.forward(x, y, B);
  m.backward(0.5);
  return { loss, grads: Float64Array.from(m.grads), tensors: m.tensors };
}

/** Loss within lossTol (relative), and per tensor max |a - ref| <= gradTol * max |ref| (the reference's scale). */
export function assertRunsClose(a: BackendRun, ref: BackendRun, lossTol: number, gradTol: number, label: string): void {
  assert.ok(Math.abs(a.loss - ref.loss) <= lossTol * ref.loss, `${label}: loss ${a.loss} vs ${ref.loss}`);
  for (const t of ref.tensors) {
    let maxRef = 0;
    let maxDiff = 0;
    for (let i = t.offset; i < t.offset + t.size; i++) {
      maxRef = Math.max(maxRef, Math.abs(ref.grads[i]!));
      maxDiff = Math.max(maxDiff, Math.abs(a.grads[i]! - ref.grads[i]!));
    }
    assert.ok(maxRef > 0, `${label} ${t.name}: zero gradient`);
    assert.ok(maxDiff <= gradTol * maxRef, `${label} ${t.name}: max diff ${maxDiff.toExponential(3)} > ${gradTol} * ${maxRef.toExponential(3)}`);
  }
}
