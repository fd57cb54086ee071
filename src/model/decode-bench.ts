import { createBackend, type BackendChoice } from '../kernels/index.js';
import { UserError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import { BatchDecoder, sampleToken } from './generate.js';
import { GPT } from './gpt.js';
import { mulberry32 } from './rng.js';

export interface DecodeBenchOptions {
  config: ModelConfig;
  backend: BackendChoice;
  threads?: number;
  /** Numbers of sequences decoded together (default 1 and 8). */
  sequences?: number[];
  /** Context lengths at which decoding is timed (default: 1, seq_len / 2 and seq_len - tokens). */
  contexts?: number[];
  /** Tokens timed per sequence at each context length (default 32). */
  tokens?: number;
  seed?: number;
}

export interface DecodeBenchRow {
  /** Sequences decoded side by side. */
  sequences: number;
  /** Tokens already in each sequence's KV cache when the timed tokens start. */
  context: number;
  /** Tokens timed per sequence (each one a forward step plus sampling). */
  tokens: number;
  /** sequences / the median round's time. */
  tokens_per_second: number;
  /** Median milliseconds of a decoding round (one new token for every sequence). */
  ms_per_round: number;
  /**
   * How the sequences are decoded: 'single' = one row; 'batched' = one BatchDecoder whose rows
   * share each matrix product (one forward of R rows per round, as `sampleBatch` does).
   */
  mode: 'single' | 'batched';
}

export interface DecodeBenchResult {
  backend: string;
  threads: number;
  params: number;
  rows: DecodeBenchRow[];
  peak_rss_mb: number;
}

/**
 * Sampling speed with the KV cache (src/model/generate.ts): for each number of sequences and
 * context length, every sequence is first filled with `context` random tokens (not timed), then
 * `tokens` tokens per sequence are decoded and sampled (temperature 0.8, top-k 40), each round
 * (one token for every sequence) timed; the median round gives the rate.
 * Weights are GPT.init's random ones: the speed does not depend on their values.
 */
export async function runDecodeBench(opts: DecodeBenchOptions): Promise<DecodeBenchResult> {
  const cfg = opts.config;
  const T = cfg.seq_len;
  const tokens = opts.tokens ?? 32;
  if (!Number.isInteger(tokens) || tokens < 1 || tokens >= T) throw new UserError(`bench decode: tokens per sequence must be in 1..${T - 1} (got ${tokens})`);
  const contexts = opts.contexts ?? [...new Set([1, Math.floor(T / 2), T - tokens])];
  for (const c of contexts) {
    if (!Number.isInteger(c) || c < 1 || c + tokens > T) throw new UserError(`bench decode: context ${c} plus ${tokens} timed tokens must fit model.seq_len ${T}`);
  }
  const sequences = opts.sequences ?? [1, 8];
  const backend = await createBackend({ backend: opts.backend, threads: opts.threads });
  try {
    const { kernels, arena } = backend;
    const model = new GPT(cfg, kernels, arena, 1);
    model.init(opts.seed ?? 1337);
    const rng = mulberry32(opts.seed ?? 1337);
    const V = cfg.vocab_size;
    const sampling = { temperature: 0.8, topK: 40 };
    const rows: DecodeBenchRow[] = [];
    for (const nSeq of sequences) {
      const dec = new BatchDecoder(model, kernels, arena, nSeq, T);
      const last = new Int32Array(nSeq);
      const fill = () => { for (let s = 0; s < nSeq; s++) last[s] = Math.floor(rng() * V); };
      // one untimed pass warms the JIT and the worker threads
      dec.reset();
      for (let i = 0; i < Math.min(T, 16); i++) { fill(); dec.step(last); }
      for (const context of contexts) {
        dec.reset();
        for (let i = 0; i < context; i++) { fill(); dec.step(last); }
        fill();
        const rounds: number[] = [];
        for (let i = 0; i < tokens; i++) {
          const t0 = performance.now();
          const logits = dec.step(last);
          for (let s = 0; s < nSeq; s++) last[s] = sampleToken(logits.subarray(s * V, (s + 1) * V), sampling, rng);
          rounds.push(performance.now() - t0);
        }
        // the median round: a shared machine's stalls land in a few rounds, not in the figure
        rounds.sort((x, y) => x - y);
        const mid = rounds.length >> 1;
        const ms = rounds.length % 2 ? rounds[mid]! : (rounds[mid - 1]! + rounds[mid]!) / 2;
        rows.push({
          sequences: nSeq, context, tokens, tokens_per_second: nSeq / (ms / 1000), ms_per_round: ms,
          mode: nSeq === 1 ? 'single' : 'batched',
        });
      }
    }
    return {
      backend: backend.info.name, threads: backend.info.threads, params: model.numParams, rows,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await backend.dispose();
  }
}
