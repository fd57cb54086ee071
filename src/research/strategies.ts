import type { RunConfig } from '../train/config.js';
import { UserError } from '../util/errors.js';
import type { Rng } from './rng.js';
import {
  applyChanges, BATCH_SIZE_RANGE, checkCandidate, clampLr, completeChanges, D_MODEL_RANGE, describeChanges, drawValue,
  GRAD_ACCUM_RANGE, getKey, LR_RANGE, N_LAYER_RANGE, roundSig, SEQ_LENS, SPACE_KEYS, VOCAB_SIZES,
  type CandidateLimits, type SpaceKey,
} from './space.js';
import { STRATEGIES, type Changes, type Strategy, type TrialKind } from './types.js';

/**
 * The mutation strategies of the original's experiment loop (phi-auto's hypothesis generator),
 * each a function of the current best config and the study's generator returning the changes
 * of one candidate, completed by completeChanges (ffn_hidden follows d_model, min_lr follows
 * lr, ...). A strategy that has nothing to offer from this base (scale_up at the top of the
 * space) returns {}; proposeTrial then draws again.
 */
export type StrategyFn = (base: RunConfig, rng: Rng) => Changes;

/** One option of a strategy, before completion; null when it would change nothing. */
type Option = Changes | null;

/** Picks one option that changes something, completed; {} when none does. */
function pickOption(base: RunConfig, rng: Rng, options: Option[]): Changes {
  const live = options
    .filter((o): o is Changes => o !== null)
    .map((o) => completeChanges(base, o))
    .filter((o) => Object.keys(o).length > 0);
  return live.length ? rng.pick(live) : {};
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** A width `delta` away, inside the space (null when the clamp leaves it unchanged). */
function width(base: RunConfig, delta: number): number | null {
  const d = clamp(base.model.d_model + delta, D_MODEL_RANGE.min, D_MODEL_RANGE.max);
  return d === base.model.d_model ? null : d;
}

function depth(base: RunConfig, delta: number): number | null {
  const l = clamp(base.model.n_layer + delta, N_LAYER_RANGE.min, N_LAYER_RANGE.max);
  return l === base.model.n_layer ? null : l;
}

/** The keys of `parts` that are not null, as one option (null when all are). */
function option(parts: Record<string, number | null>): Option {
  const out: Changes = {};
  for (const [k, v] of Object.entries(parts)) if (v !== null) out[k] = v;
  return Object.keys(out).length ? out : null;
}

/** 1 to 3 keys of the space, each set to another value of its range. */
export const randomStrategy: StrategyFn = (base, rng) => {
  const count = rng.int(1, 3);
  const pool: SpaceKey[] = [...SPACE_KEYS];
  const keys: SpaceKey[] = [];
  for (let i = 0; i < count; i++) keys.push(pool.splice(rng.int(0, pool.length - 1), 1)[0]!);
  // Drawn in the space's order on a working copy, so n_head is drawn for the new d_model and
  // min_lr as a share of the new lr.
  keys.sort((a, b) => SPACE_KEYS.indexOf(a) - SPACE_KEYS.indexOf(b));
  const work = structuredClone(base);
  const raw: Changes = {};
  for (const key of keys) {
    const v = drawValue(work, key, rng);
    if (v === null) continue;
    raw[key] = v;
    const [sec, k] = key.split('.') as [string, string];
    (work as unknown as Record<string, Record<string, unknown>>)[sec]![k] = v;
  }
  return completeChanges(base, raw);
};

/** One notch bigger: +64 width, +2 layers, or +32 width and +1 layer. */
export const scaleUpStrategy: StrategyFn = (base, rng) =>
  pickOption(base, rng, [
    option({ 'model.d_model': width(base, 64) }),
    option({ 'model.n_layer': depth(base, 2) }),
    width(base, 32) !== null && depth(base, 1) !== null ? option({ 'model.d_model': width(base, 32), 'model.n_layer': depth(base, 1) }) : null,
  ]);

/** One notch smaller: -64 width, -2 layers, or -32 width and -1 layer. */
export const scaleDownStrategy: StrategyFn = (base, rng) =>
  pickOption(base, rng, [
    option({ 'model.d_model': width(base, -64) }),
    option({ 'model.n_layer': depth(base, -2) }),
    width(base, -32) !== null && depth(base, -1) !== null ? option({ 'model.d_model': width(base, -32), 'model.n_layer': depth(base, -1) }) : null,
  ]);

/** The factors lr_search multiplies or divides optim.lr by. */
export const LR_FACTORS = [1.5, 2, 3] as const;

/** optim.lr times or divided by 1.5, 2 or 3 (inside the space; min_lr keeps its ratio). */
export const lrSearchStrategy: StrategyFn = (base, rng) => {
  const options: Option[] = [];
  for (const f of LR_FACTORS) {
    for (const lr of [base.optim.lr * f, base.optim.lr / f]) {
      if (lr < LR_RANGE.min * 0.999 || lr > LR_RANGE.max * 1.001) continue;
      options.push({ 'optim.lr': clampLr(roundSig(lr, 2)) });
    }
  }
  return pickOption(base, rng, options);
};

/**
 * Another seq_len; the batch scales by the inverse ratio (one notch longer halves it, one
 * shorter doubles it, inside 2..16), so a micro-batch holds about as many tokens as before and
 * a trial under a token budget takes about as many steps: the trial measures the context
 * length, not a change of batch.
 */
export const seqLenStrategy: StrategyFn = (base, rng) =>
  pickOption(base, rng, SEQ_LENS.filter((t) => t !== base.model.seq_len).map((t) => ({
    'model.seq_len': t,
    'train.batch_size': clamp(Math.round((base.train.batch_size * base.model.seq_len) / t), BATCH_SIZE_RANGE.min, BATCH_SIZE_RANGE.max),
  })));

/**
 * Faster per token at about the same capacity: wider and shallower (+64 width, -2 layers);
 * twice the batch with half the accumulation (the same tokens per step, fewer and larger
 * matrix products); or half the vocabulary (a cheaper output layer and softmax).
 */
export const efficientStrategy: StrategyFn = (base, rng) => {
  const b = base.train.batch_size * 2, g = base.train.grad_accum / 2;
  const v = base.model.vocab_size / 2;
  return pickOption(base, rng, [
    width(base, 64) !== null && depth(base, -2) !== null ? { 'model.d_model': width(base, 64)!, 'model.n_layer': depth(base, -2)! } : null,
    b <= BATCH_SIZE_RANGE.max && Number.isInteger(g) && g >= GRAD_ACCUM_RANGE.min ? { 'train.batch_size': b, 'train.grad_accum': g } : null,
    (VOCAB_SIZES as readonly number[]).includes(v) ? { 'model.vocab_size': v } : null,
  ]);
};

export const STRATEGY_FNS: Record<Strategy, StrategyFn> = {
  random: randomStrategy,
  scale_up: scaleUpStrategy,
  scale_down: scaleDownStrategy,
  lr_search: lrSearchStrategy,
  seq_len: seqLenStrategy,
  efficient: efficientStrategy,
};

/** The original's prior weights of the strategies. */
export const BASE_WEIGHTS: Record<Strategy, number> = {
  random: 0.3, scale_up: 0.2, scale_down: 0.1, lr_search: 0.2, seq_len: 0.1, efficient: 0.1,
};

/** A strategy's weight is re-weighted by its win rate once it has this many finished trials. */
export const MIN_RESULTS_FOR_REWEIGHT = 3;

/** What proposeTrial needs to know of one earlier trial of the study. */
export interface TrialRecord {
  /**
   * What proposed it: a strategy, or a plan / noise / confirm / final trial (these count only as
   * tried configs; pass the base's noise runs too, so that after the best has moved on, the
   * search does not propose the study's base config again).
   */
  strategy: TrialKind;
  /**
   * Whether the candidate was kept. One record per finished candidate (its confirmation run is
   * part of it, not a record of its own); a crash, divergence, timeout or prune is not kept.
   */
  kept: boolean;
  /** The config it trained: a later candidate equal to it (on the searched keys) is a repeat. */
  config?: RunConfig;
}

/**
 * The strategies' weights given the history: BASE_WEIGHTS, and a strategy with >=
 * MIN_RESULTS_FOR_REWEIGHT finished trials gets base x (1 + 2 x wins / total): a strategy that
 * has never won keeps its prior weight, one that always wins triples it.
 */
export function strategyWeights(history: readonly TrialRecord[]): Record<Strategy, number> {
  const out = { ...BASE_WEIGHTS };
  for (const s of STRATEGIES) {
    const mine = history.filter((h) => h.strategy === s);
    if (mine.length >= MIN_RESULTS_FOR_REWEIGHT) out[s] = BASE_WEIGHTS[s] * (1 + (2 * mine.filter((h) => h.kept).length) / mine.length);
  }
  return out;
}

/**
 * The part of a config the search can change (model, optim, and the batch shape), as a string:
 * two trials with the same fingerprint are the same experiment whatever their seed, time
 * budget or evaluation settings.
 */
export function searchFingerprint(cfg: RunConfig): string {
  return JSON.stringify([cfg.model, cfg.optim, cfg.train.batch_size, cfg.train.grad_accum, cfg.data.tokenizer]);
}

export interface ProposeOptions {
  /** 'weighted': the six strategies by their weights; 'random': only the random one (the baseline of the comparison study). */
  mode: 'weighted' | 'random';
  limits: CandidateLimits;
  /** Candidates drawn before giving up (default 50). */
  maxTries?: number;
}

export interface Proposal {
  strategy: Strategy;
  /** Only keys whose value differs from the base's. */
  changes: Changes;
  description: string;
}

/** No acceptable candidate in maxTries draws: the search has run out of room around this base. */
export class NoCandidateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoCandidateError';
  }
}

/**
 * The next candidate: a strategy drawn by weight (or the random one), its changes, and their
 * description. A candidate that changes nothing, fails checkCandidate (invalid, outside the
 * space, over the memory limit) or repeats a config already tried is drawn again (strategy
 * included), up to maxTries times; then NoCandidateError says what the draws ran into.
 */
export function proposeTrial(base: RunConfig, history: readonly TrialRecord[], rng: Rng, opts: ProposeOptions): Proposal {
  const maxTries = opts.maxTries ?? 50;
  const weights = strategyWeights(history);
  const names: Strategy[] = opts.mode === 'random' ? ['random'] : [...STRATEGIES];
  const w = names.map((s) => weights[s]);
  const tried = new Set<string>([searchFingerprint(base)]);
  for (const h of history) if (h.config) tried.add(searchFingerprint(h.config));
  let nothing = 0, repeats = 0, refused = 0;
  let lastRefusal = '';
  for (let i = 0; i < maxTries; i++) {
    const strategy = names[rng.weighted(w)]!;
    const changes = STRATEGY_FNS[strategy](base, rng);
    for (const k of Object.keys(changes)) if (getKey(base, k) === changes[k]) delete changes[k];
    if (Object.keys(changes).length === 0) {
      nothing++;
      continue;
    }
    let cfg: RunConfig;
    try {
      cfg = applyChanges(base, changes);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      refused++;
      lastRefusal = `${describeChanges(base, changes)}: ${e.message}`;
      continue;
    }
    const reason = checkCandidate(cfg, opts.limits);
    if (reason !== null) {
      refused++;
      lastRefusal = `${describeChanges(base, changes)}: ${reason}`;
      continue;
    }
    const fp = searchFingerprint(cfg);
    if (tried.has(fp)) {
      repeats++;
      continue;
    }
    return { strategy, changes, description: describeChanges(base, changes) };
  }
  throw new NoCandidateError(
    `no new candidate config in ${maxTries} draws from the current best (${refused} refused, ${repeats} already tried, ${nothing} changed nothing)` +
    (lastRefusal ? `; last refused: ${lastRefusal}` : ''),
  );
}
