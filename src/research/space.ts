import { DEFAULT_ARENA_BASE, WASM32_MAX_BYTES } from '../kernels/arena.js';
import { MIXERS, mixerName } from '../model/config.js';
import { OPTIMIZERS, validateConfig, type RunConfig } from '../train/config.js';
import { formatBytes, trainingMemoryPlan } from '../train/memory.js';
import { estimateTrialMemoryMb } from './memory.js';
import { UserError } from '../util/errors.js';
import type { Rng } from './rng.js';
import type { Changes, ParamValue } from './types.js';

/**
 * The search space of a study (the original's ranges) and the rules that keep a candidate
 * config consistent: the keys a strategy may change, the values each may take, the keys that
 * follow another (ffn_hidden follows d_model, min_lr follows lr, lr follows a switch to or from
 * Lion), and the check a candidate passes before it is trained (valid, inside the space, fits
 * the study's memory limit).
 */

export const D_MODEL_RANGE = { min: 64, max: 384, step: 32 } as const;
export const N_HEADS = [2, 4, 6, 8] as const;
export const N_LAYER_RANGE = { min: 2, max: 12 } as const;
export const SEQ_LENS = [64, 128, 256, 512] as const;
export const LR_RANGE = { min: 1e-4, max: 1e-2 } as const;
/** optim.min_lr as a share of optim.lr. */
export const MIN_LR_RATIO_RANGE = { min: 0.01, max: 0.3 } as const;
/** The ratios a mutation of optim.min_lr draws from (inside MIN_LR_RATIO_RANGE). */
export const MIN_LR_RATIOS = [0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3] as const;
export const BATCH_SIZE_RANGE = { min: 2, max: 16 } as const;
export const GRAD_ACCUM_RANGE = { min: 1, max: 8 } as const;
/** Drawn on a 0.01 grid. */
export const WEIGHT_DECAY_RANGE = { min: 0, max: 0.2 } as const;
/** Drawn on a grid of 10 steps. */
export const WARMUP_RANGE = { min: 0, max: 200 } as const;
export const VOCAB_SIZES = [512, 1024, 2048, 4096] as const;
/**
 * Lion's update has the size of the lr itself (a sign per weight), so it needs an lr about 3 to
 * 10 times smaller than AdamW's (Chen et al. 2023): switching to Lion divides optim.lr by this
 * factor, switching away multiplies it back. A fixed factor (the geometric middle of 3..10,
 * rounded) keeps completeChanges deterministic, so a --plan entry gets the same lr every time.
 */
export const LION_LR_FACTOR = 5;

/** The keys a strategy may change, in the order they are described. */
export const SPACE_KEYS = [
  'model.d_model', 'model.n_head', 'model.n_layer', 'model.seq_len', 'model.vocab_size', 'model.mixer',
  'optim.name', 'optim.lr', 'optim.min_lr', 'optim.weight_decay', 'optim.warmup_steps',
  'train.batch_size', 'train.grad_accum',
] as const;
export type SpaceKey = (typeof SPACE_KEYS)[number];

/** `x` rounded to `digits` significant digits, as the clean double it prints as (0.00045, not 0.00045000000000000004). */
export function roundSig(x: number, digits: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(digits));
}

/** Every d_model value of the space. */
export function dModelValues(): number[] {
  const out: number[] = [];
  for (let d = D_MODEL_RANGE.min; d <= D_MODEL_RANGE.max; d += D_MODEL_RANGE.step) out.push(d);
  return out;
}

/** The head counts of the space valid for `dModel`: they divide it and leave an even head size (RoPE rotates pairs). */
export function validHeads(dModel: number): number[] {
  return N_HEADS.filter((h) => dModel % h === 0 && (dModel / h) % 2 === 0);
}

/**
 * The valid head count for `dModel` whose head size is nearest (in ratio) to `headSize`, so a
 * width change keeps the attention's shape; ties go to more heads.
 */
export function nearestHeads(dModel: number, headSize: number): number | null {
  let best: number | null = null;
  let bestDist = Infinity;
  for (const h of validHeads(dModel)) {
    const dist = Math.abs(Math.log(dModel / h / headSize));
    if (dist < bestDist - 1e-12 || (Math.abs(dist - bestDist) <= 1e-12 && best !== null && h > best)) {
      best = h;
      bestDist = dist;
    }
  }
  return best;
}

/**
 * The SwiGLU width for a new d_model: the base's ffn_hidden / d_model ratio kept, rounded to a
 * multiple of 32. Keeping the base's ratio (rather than resetting to 8/3 x d_model) means a
 * width trial changes the width and nothing else: the presets use 4 x d_model, and resetting
 * to 8/3 would shrink every MLP by a third at the same time, so the trial could not tell which
 * of the two changes its score came from.
 */
export function ffnFor(base: RunConfig, dModel: number): number {
  const ratio = base.model.ffn_hidden / base.model.d_model;
  return Math.max(32, Math.round((dModel * ratio) / 32) * 32);
}

/** `lr` clamped into the space's range. */
export function clampLr(lr: number): number {
  return Math.min(LR_RANGE.max, Math.max(LR_RANGE.min, lr));
}

/**
 * The value a dotted key has in `cfg` (undefined when the section or key is absent), except
 * that an absent model.mixer reads as its meaning, "attention": a change to "attention" from a
 * config without the key is no change.
 */
export function getKey(cfg: RunConfig, key: string): unknown {
  const [sec, k] = key.split('.');
  const section = (cfg as unknown as Record<string, Record<string, unknown> | undefined>)[sec!];
  if (key === 'model.mixer') return mixerName(cfg.model);
  return section?.[k!];
}

/**
 * `changes` made whole: the keys that follow another are added unless the changes set them
 * themselves, and keys equal to the base's value are dropped.
 *   - model.d_model: model.ffn_hidden keeps the base's ratio (ffnFor); model.n_head, when it
 *     no longer divides the new width into even heads, becomes the valid count nearest the
 *     base's head size.
 *   - optim.name to "lion" from another optimizer: optim.lr / LION_LR_FACTOR; from "lion" to
 *     another: x LION_LR_FACTOR (clamped to the space). "muon" keeps optim.muon_lr as it is
 *     (its default unless the base sets it): optim.lr is then only the AdamW lr of the
 *     embedding, head and norms.
 *   - optim.lr (given or derived): optim.min_lr keeps its ratio to the lr.
 * Deterministic, so a --plan entry is completed the same way as a strategy's changes.
 */
export function completeChanges(base: RunConfig, changes: Changes): Changes {
  const out: Changes = { ...changes };
  const has = (k: string) => Object.prototype.hasOwnProperty.call(changes, k);
  const d = out['model.d_model'];
  if (typeof d === 'number' && d !== base.model.d_model) {
    if (!has('model.ffn_hidden')) out['model.ffn_hidden'] = ffnFor(base, d);
    if (!has('model.n_head')) {
      const h = base.model.n_head;
      if (d % h !== 0 || (d / h) % 2 !== 0) {
        const near = nearestHeads(d, base.model.d_model / base.model.n_head);
        if (near !== null) out['model.n_head'] = near;
      }
    }
  }
  const name = out['optim.name'];
  if (typeof name === 'string' && name !== base.optim.name && !has('optim.lr')) {
    if (name === 'lion' && base.optim.name !== 'lion') out['optim.lr'] = clampLr(roundSig(base.optim.lr / LION_LR_FACTOR, 2));
    else if (base.optim.name === 'lion' && name !== 'lion') out['optim.lr'] = clampLr(roundSig(base.optim.lr * LION_LR_FACTOR, 2));
  }
  const lr = out['optim.lr'];
  if (typeof lr === 'number' && lr !== base.optim.lr && !has('optim.min_lr')) {
    out['optim.min_lr'] = roundSig((lr * base.optim.min_lr) / base.optim.lr, 3);
  }
  for (const k of Object.keys(out)) if (getKey(base, k) === out[k]) delete out[k];
  return out;
}

/**
 * `base` with each dotted key of `changes` set, validated as a whole (a deep copy: `base` is
 * untouched). A key that is not section.key, an unknown key or a value the config refuses
 * throws the config's one-line UserError, naming `label`.
 */
export function applyChanges(base: RunConfig, changes: Changes, label = 'the trial changes'): RunConfig {
  const cfg = structuredClone(base) as unknown as Record<string, Record<string, unknown>>;
  for (const [key, value] of Object.entries(changes)) {
    const parts = key.split('.');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UserError(`change key "${key}" in ${label} must be section.key (e.g. model.d_model)`);
    const [sec, k] = parts as [string, string];
    const section = cfg[sec];
    if (section === undefined || typeof section !== 'object') cfg[sec] = { [k]: value };
    else section[k] = value;
  }
  return validateConfig(cfg, label);
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined ? '(none)' : String(v);
}

/** The keys of `changes` in a fixed order: the space's order, then any other key alphabetically. */
function orderedKeys(changes: Changes): string[] {
  const rank = (k: string) => {
    const i = (SPACE_KEYS as readonly string[]).indexOf(k);
    // ffn_hidden is described right after d_model, the key it follows.
    if (k === 'model.ffn_hidden') return 0.5;
    return i < 0 ? SPACE_KEYS.length : i;
  };
  return Object.keys(changes).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** "model.d_model 128→192, model.ffn_hidden 512→768" (keys in a fixed order), or "no change". */
export function describeChanges(base: RunConfig, changes: Changes): string {
  const keys = orderedKeys(changes);
  if (keys.length === 0) return 'no change';
  return keys.map((k) => `${k} ${show(getKey(base, k))}→${show(changes[k])}`).join(', ');
}

/** The limits a candidate must fit. */
export interface CandidateLimits {
  /** A trial process's memory (estimateTrialMemoryMb: the arena plan, scoring and the process), in MiB. */
  maxMemoryMb: number;
  /** Kernel threads each trial runs (resolved: >= 1); each reserves gemm scratch. */
  threads: number;
}

const inRange = (v: number, r: { min: number; max: number }) => v >= r.min && v <= r.max;
/** Relative slack for the float keys' bounds: a value rounded to 3 significant digits may sit 0.5% past a bound. */
const SLACK = 0.01;
const inRangeLoose = (v: number, r: { min: number; max: number }) => v >= r.min * (1 - SLACK) && v <= r.max * (1 + SLACK);

/** Why `cfg` lies outside the search space (one line), or null. */
export function spaceViolation(cfg: RunConfig): string | null {
  const m = cfg.model, o = cfg.optim, t = cfg.train;
  if (!inRange(m.d_model, D_MODEL_RANGE) || m.d_model % D_MODEL_RANGE.step !== 0) {
    return `model.d_model ${m.d_model} is outside the search space (multiples of ${D_MODEL_RANGE.step} from ${D_MODEL_RANGE.min} to ${D_MODEL_RANGE.max})`;
  }
  if (!(N_HEADS as readonly number[]).includes(m.n_head)) return `model.n_head ${m.n_head} is outside the search space (${N_HEADS.join(', ')})`;
  if (!inRange(m.n_layer, N_LAYER_RANGE)) return `model.n_layer ${m.n_layer} is outside the search space (${N_LAYER_RANGE.min} to ${N_LAYER_RANGE.max})`;
  if (!(SEQ_LENS as readonly number[]).includes(m.seq_len)) return `model.seq_len ${m.seq_len} is outside the search space (${SEQ_LENS.join(', ')})`;
  if (!(VOCAB_SIZES as readonly number[]).includes(m.vocab_size)) return `model.vocab_size ${m.vocab_size} is outside the search space (${VOCAB_SIZES.join(', ')})`;
  if (!(OPTIMIZERS as readonly string[]).includes(o.name)) return `optim.name ${o.name} is outside the search space (${OPTIMIZERS.join(', ')})`;
  if (!inRangeLoose(o.lr, LR_RANGE)) return `optim.lr ${o.lr} is outside the search space (${LR_RANGE.min} to ${LR_RANGE.max})`;
  const ratio = o.min_lr / o.lr;
  if (!inRangeLoose(ratio, MIN_LR_RATIO_RANGE)) {
    return `optim.min_lr ${o.min_lr} is ${roundSig(ratio, 3)} x optim.lr, outside the search space (${MIN_LR_RATIO_RANGE.min} to ${MIN_LR_RATIO_RANGE.max} x optim.lr)`;
  }
  if (!inRange(o.weight_decay, WEIGHT_DECAY_RANGE)) return `optim.weight_decay ${o.weight_decay} is outside the search space (${WEIGHT_DECAY_RANGE.min} to ${WEIGHT_DECAY_RANGE.max})`;
  if (!inRange(o.warmup_steps, WARMUP_RANGE)) return `optim.warmup_steps ${o.warmup_steps} is outside the search space (${WARMUP_RANGE.min} to ${WARMUP_RANGE.max})`;
  if (!inRange(t.batch_size, BATCH_SIZE_RANGE)) return `train.batch_size ${t.batch_size} is outside the search space (${BATCH_SIZE_RANGE.min} to ${BATCH_SIZE_RANGE.max})`;
  if (!inRange(t.grad_accum, GRAD_ACCUM_RANGE)) return `train.grad_accum ${t.grad_accum} is outside the search space (${GRAD_ACCUM_RANGE.min} to ${GRAD_ACCUM_RANGE.max})`;
  return null;
}

/** Arena bytes a wasm32 memory can hold: a plan above this cannot be built whatever the limit. */
const ARENA_BYTES = WASM32_MAX_BYTES - DEFAULT_ARENA_BASE;

/**
 * Null when `cfg` is a valid config, inside the search space, and its training memory plan
 * fits `limits.maxMemoryMb` (and the wasm32 arena); else the one-line reason. The study should
 * also check its base config with this at the start: every candidate inherits the base's
 * values for the keys it does not change.
 */
export function checkCandidate(cfg: RunConfig, limits: CandidateLimits): string | null {
  try {
    validateConfig(cfg, 'the candidate config');
  } catch (e) {
    if (e instanceof UserError) return e.message;
    throw e;
  }
  const outside = spaceViolation(cfg);
  if (outside !== null) return outside;
  const plan = trainingMemoryPlan(cfg, { threads: Math.max(1, limits.threads) });
  if (plan.bytes > ARENA_BYTES) return `needs ${formatBytes(plan.bytes)} to train, over the wasm32 arena's ${formatBytes(ARENA_BYTES)}`;
  // the whole trial process (arena, scoring, Node itself) against the study's limit
  const needMb = estimateTrialMemoryMb(cfg, Math.max(1, limits.threads), 'auto');
  if (needMb > limits.maxMemoryMb) {
    const parts = plan.parts.filter((p) => p.bytes > 0).sort((a, b) => b.bytes - a.bytes).slice(0, 3);
    return `needs about ${Math.ceil(needMb)} MiB as a trial (${parts.map((p) => `${p.name} ${formatBytes(p.bytes)}`).join(', ')}, plus the process), over the study's limit of ${limits.maxMemoryMb} MiB`;
  }
  return null;
}

/**
 * A new value for one space key, different from `cfg`'s (for `model.n_head`: a count valid for
 * cfg's d_model), or null when the key has no other value available.
 */
export function drawValue(cfg: RunConfig, key: SpaceKey, rng: Rng): ParamValue | null {
  const cur = getKey(cfg, key);
  const other = <T extends ParamValue>(values: readonly T[]): T | null => {
    const left = values.filter((v) => v !== cur);
    return left.length ? rng.pick(left) : null;
  };
  const ints = (lo: number, hi: number, step = 1) => {
    const out: number[] = [];
    for (let v = lo; v <= hi; v += step) out.push(v);
    return out;
  };
  switch (key) {
    case 'model.d_model': return other(dModelValues());
    case 'model.n_head': return other(validHeads(cfg.model.d_model));
    case 'model.n_layer': return other(ints(N_LAYER_RANGE.min, N_LAYER_RANGE.max));
    case 'model.seq_len': return other(SEQ_LENS);
    case 'model.vocab_size': return other(VOCAB_SIZES);
    case 'model.mixer': return other(MIXERS);
    case 'optim.name': return other(OPTIMIZERS);
    case 'optim.lr': {
      // log-uniform over the range, 2 significant digits
      for (let i = 0; i < 8; i++) {
        const lr = clampLr(roundSig(LR_RANGE.min * (LR_RANGE.max / LR_RANGE.min) ** rng.next(), 2));
        if (lr !== cur) return lr;
      }
      return null;
    }
    case 'optim.min_lr': return other(MIN_LR_RATIOS.map((r) => roundSig(cfg.optim.lr * r, 3)));
    case 'optim.weight_decay': return other(ints(0, 20).map((i) => i / 100));
    case 'optim.warmup_steps': return other(ints(WARMUP_RANGE.min, WARMUP_RANGE.max, 10));
    case 'train.batch_size': return other(ints(BATCH_SIZE_RANGE.min, BATCH_SIZE_RANGE.max));
    case 'train.grad_accum': return other(ints(GRAD_ACCUM_RANGE.min, GRAD_ACCUM_RANGE.max));
  }
}
