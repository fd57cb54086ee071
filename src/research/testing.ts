// Journals for the research tests (imported only by *.test.ts): a builder that writes events
// the way the study loop does, with a clock that advances one minute per event.
import type { Changes, JournalEvent, NoiseEstimate, TrialKind, TrialResult, TrialStatus } from './types.js';

export class JournalBuilder {
  readonly events: JournalEvent[] = [];
  private clock: number;

  constructor(start = '2026-03-01T10:00:00.000Z') {
    this.clock = Date.parse(start);
  }

  private tick(minutes = 1): string {
    const t = new Date(this.clock).toISOString();
    this.clock += minutes * 60_000;
    return t;
  }

  study(baseName = 'tiny'): this {
    this.events.push({
      type: 'study', time: this.tick(), version: 1, base_config: '[model]\nd_model = 64\n', base_name: baseName,
      budget: { kind: 'tokens', value: 200_000 }, seed: 1, pruning: true, strategies: 'weighted', plan: null,
      max_trials: null, hours: 1, max_memory_mb: 2048, threads: 2, noise_seeds: 3, final_seeds: 3, rungs: 3, backend: 'auto',
      guard: { min_battery_percent: 20, max_temperature_c: 45 }, score: { file: 'score.txt', bytes: 1000, docs: 3, source: 'test' },
    });
    return this;
  }

  start(id: number, kind: TrialKind, changes: Changes = {}, opts: { description?: string; seed?: number; confirms?: number | null } = {}): this {
    this.events.push({
      type: 'trial_start', time: this.tick(), id, kind, changes, description: opts.description ?? '', config: '',
      seed: opts.seed ?? 1, confirms: opts.confirms ?? null, rng: [1, 2, 3, 4],
    });
    return this;
  }

  end(id: number, status: TrialStatus, bpb: number | null, over: Partial<TrialResult> = {}): this {
    const result: TrialResult = {
      status, val_loss: bpb === null ? null : bpb * 2.5, val_bpb: bpb, steps: 100, tokens: 200_000, seconds: 60,
      tokens_per_second: 3333.3, peak_rss_mb: 321.5, reason: status === 'ok' ? '' : `${status} at step 40`, ...over,
    };
    this.events.push({ type: 'trial_end', time: this.tick(), id, result });
    return this;
  }

  /** A whole trial: start + end. */
  trial(id: number, kind: TrialKind, changes: Changes, status: TrialStatus, bpb: number | null, opts: { description?: string; seed?: number; confirms?: number | null } = {}): this {
    return this.start(id, kind, changes, opts).end(id, status, bpb);
  }

  noise(bpb: number[], margin: number): this {
    const mean = bpb.reduce((a, b) => a + b, 0) / bpb.length;
    const sd = Math.sqrt(bpb.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, bpb.length - 1));
    const noise: NoiseEstimate = { bpb, seeds: bpb.map((_, i) => i + 1), mean, sd, margin };
    this.events.push({ type: 'noise', time: this.tick(), noise });
    return this;
  }

  decision(id: number, kept: boolean, candidate: number, best: number, margin: number, reason = kept ? 'beats the best by more than the margin' : 'within the noise'): this {
    this.events.push({ type: 'decision', time: this.tick(), id, kept, candidate_bpb: candidate, best_bpb: best, margin, reason });
    return this;
  }

  pause(reason: string, seconds: number): this {
    this.events.push({ type: 'pause', time: this.tick(Math.ceil(seconds / 60)), reason, seconds });
    return this;
  }

  finish(reason = 'max trials reached'): this {
    this.events.push({ type: 'end', time: this.tick(), reason });
    return this;
  }
}

/**
 * A small study: 3 noise runs of the base (mean 1.5, margin 0.02), then
 * 3 lr (kept: 1.45), 4 d_model (discarded), 5 n_layer (pruned), 6 batch (crash),
 * 7 seq_len candidate 1.40 confirmed by 8 (1.41) and kept at 1.405, 9 warmup (discarded),
 * 10 started and never ended.
 */
export function sampleStudy(): JournalBuilder {
  return new JournalBuilder()
    .study('tiny')
    .trial(0, 'noise', {}, 'ok', 1.49, { seed: 1 })
    .trial(1, 'noise', {}, 'ok', 1.5, { seed: 2 })
    .trial(2, 'noise', {}, 'ok', 1.51, { seed: 3 })
    .noise([1.49, 1.5, 1.51], 0.02)
    .trial(3, 'lr_search', { 'optim.lr': 0.003 }, 'ok', 1.45, { description: 'lr 0.001 -> 0.003' })
    .decision(3, true, 1.45, 1.5, 0.02)
    .trial(4, 'scale_up', { 'model.d_model': 128 }, 'ok', 1.44)
    .decision(4, false, 1.44, 1.45, 0.02)
    .trial(5, 'random', { 'model.n_layer': 6 }, 'pruned', null)
    .pause('battery 12% below 20% and not charging', 600)
    .trial(6, 'scale_up', { 'train.batch_size': 64 }, 'crash', null)
    .trial(7, 'seq_len', { 'model.seq_len': 256 }, 'ok', 1.4, { description: 'seq_len\t128 -> 256' })
    .trial(8, 'confirm', { 'model.seq_len': 256 }, 'ok', 1.41, { seed: 2, confirms: 7 })
    .decision(7, true, 1.405, 1.45, 0.02, 'mean of 2 seeds beats the best')
    .trial(9, 'efficient', { 'optim.warmup_steps': 50 }, 'ok', 1.43)
    .decision(9, false, 1.43, 1.405, 0.02)
    .start(10, 'random', { 'optim.weight_decay': 0.05 });
}
