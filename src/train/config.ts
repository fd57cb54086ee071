import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml, stringify as stringifyToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { MIXERS, type ModelConfig } from '../model/config.js';
import { MUON_DEFAULTS, type OptimConfig } from '../optim/types.js';
import { MAX_VOCAB } from '../tokenizer/merges.js';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';

/**
 * The run config: four TOML sections whose keys are the TypeScript field names (snake_case,
 * no mapping layer). Where a config comes from, lowest layer first:
 *   1. a preset `presets/NAME.toml` (`--preset NAME`; "default" when neither it nor a file
 *      is given), or a config file (`--config FILE`);
 *   2. a config file is either complete (every required key) or starts with a top-level
 *      `extends = "PRESET"` line and then lists only what it changes; with both --preset
 *      and --config, the file is layered over the preset (its own `extends`, if any, must
 *      name the same preset);
 *   3. `--set section.key=value` overrides, in order; the value is read as a TOML value
 *      (numbers, booleans, "strings", [arrays]); anything that is not valid TOML is taken
 *      as a bare string, so `--set optim.name=lion` works.
 * Keys marked "default" below may be left out anywhere; all others are required.
 * Every error is one UserError line naming the key and the file (or --set) it came from.
 */

// ---------------------------------------------------------------- fields

/** One config key: its zod schema and the words used in errors ("must be <expect>"). */
interface Field<S extends z.ZodType = z.ZodType> {
  schema: S;
  expect: string;
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER): Field<z.ZodNumber> => ({
  schema: z.number().int().min(min).max(max),
  expect: max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`,
});
const positive = (): Field<z.ZodNumber> => ({ schema: z.number().positive(), expect: 'a number > 0' });
const nonNegative = (): Field<z.ZodNumber> => ({ schema: z.number().min(0), expect: 'a number >= 0' });
const unitOpen = (): Field<z.ZodNumber> => ({ schema: z.number().min(0).lt(1), expect: 'a number in [0, 1)' });
const fraction = (): Field<z.ZodNumber> => ({ schema: z.number().gt(0).max(1), expect: 'a number in (0, 1]' });
/** A factor that is either 0 (off) or above 1 (a factor of 1 or less would fire on every step). */
const factorOrOff = () => ({ schema: z.union([z.literal(0), z.number().gt(1)]), expect: '0 (off) or a number > 1' });
const bool = (): Field<z.ZodBoolean> => ({ schema: z.boolean(), expect: 'true or false' });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => ({
  schema: z.enum(values),
  expect: `one of ${values.map((v) => `"${v}"`).join(', ')}`,
});
const text = (): Field<z.ZodString> => ({ schema: z.string(), expect: 'a string' });
/** A list of paths; a single string is accepted as a list of one. */
const pathList = () => ({
  schema: z.preprocess((v) => (typeof v === 'string' ? (v === '' ? [] : [v]) : v), z.array(z.string().min(1))),
  expect: 'a string or an array of strings',
});
/**
 * The key may be left out and then stays absent (the code reads absent as its documented
 * default): configs, run folders and checkpoints written before the key existed keep matching.
 */
function optional<S extends z.ZodType>(f: Field<S>): Field<z.ZodOptional<S>> {
  return { schema: f.schema.optional(), expect: f.expect };
}
/** The key may be left out; it then takes `value`. */
function withDefault<S extends z.ZodType>(f: Field<S>, value: z.output<S>): Field<z.ZodDefault<S>> {
  return { schema: f.schema.default(value as never) as z.ZodDefault<S>, expect: f.expect };
}

/**
 * The vocabulary a BPE tokenizer trained on the data (data.tokenizer = "bpe") may have, as
 * prepareDataset requires it: 256 byte tokens, <|endoftext|> and at least one merge, up to the
 * tokenizer's limit. Any other tokenizer only needs model.vocab_size >= its own size.
 */
export const BPE_MIN_VOCAB = 258;
export const BPE_MAX_VOCAB = MAX_VOCAB;

export const OPTIMIZERS = ['adamw', 'lion', 'sfadamw', 'muon'] as const;
export const SCHEDULES = ['cosine', 'linear', 'constant'] as const;
export const BACKENDS = ['auto', 'wasm', 'native', 'js'] as const;
export const DATASETS = ['tinystories', 'tinystories-sample', 'moby-dick'] as const;

const FIELDS = {
  model: {
    vocab_size: int(257, 1 << 24), // 256 bytes + at least <|endoftext|>
    d_model: int(1),
    n_layer: int(1),
    n_head: int(1),
    seq_len: int(2),
    ffn_hidden: int(1),
    tie_embeddings: bool(),
    rope_theta: positive(),
    norm_eps: positive(),
    init_std: positive(),
    /** dropout probability on the embedding and on each residual branch's output, training only; absent = 0 (off) */
    dropout: optional(unitOpen()),
    /** sequence mixer: "attention" | "rwkv"; absent = attention */
    mixer: optional(oneOf(MIXERS)),
    /** rwkv: chunk length of the chunked training form; absent = 8 */
    rwkv_chunk: optional(int(1, 1024)),
  },
  train: {
    batch_size: int(1),
    grad_accum: int(1),
    /** wall-clock budget in seconds; 0 = no limit */
    time_seconds: nonNegative(),
    /** optimizer steps; 0 = no limit (time decides) */
    steps: int(0),
    /** steps between evaluations; 0 = only at the end */
    eval_every: int(0),
    eval_batches: int(1),
    /** minutes between checkpoints; 0 = only at the end */
    checkpoint_minutes: nonNegative(),
    /** also checkpoint every N steps (tests, deterministic resume); 0 = off */
    checkpoint_every: withDefault(int(0), 0),
    /** global gradient-norm clip; 0 = off */
    grad_clip: nonNegative(),
    seed: int(0, 2 ** 32 - 1),
    /** steps between printed samples; 0 = with each evaluation */
    sample_every: withDefault(int(0), 0),
    /** tokens per printed sample; 0 = no samples */
    sample_tokens: withDefault(int(0), 64),
    sample_temperature: withDefault(nonNegative(), 0.8),
    /** steps between log.jsonl training records */
    log_every: withDefault(int(1), 10),
    backend: withDefault(oneOf(BACKENDS), 'auto'),
    /** kernel threads; 0 = one per core */
    threads: withDefault(int(0, 256), 0),
    /**
     * a step whose training loss exceeds this factor of its recent average (after warmup,
     * with 1 nat as the smallest average) is rolled back like a NaN; 0 = off. 3 is far above
     * the batch-to-batch noise of normal training (at most 1.4x the average over 3,000 steps of
     * 32-token batches on TinyStories) and below the loss of a diverging model.
     */
    spike_factor: withDefault(factorOrOff(), 3),
    /** learning-rate multiplier applied at each rollback (kept for the rest of the run) */
    rollback_lr_factor: withDefault(fraction(), 0.5),
    /** rollbacks to the last good state before giving up; 0 = stop at the first divergence */
    max_rollbacks: withDefault(int(0), 3),
  },
  optim: {
    name: oneOf(OPTIMIZERS),
    lr: positive(),
    min_lr: nonNegative(),
    warmup_steps: int(0),
    schedule: oneOf(SCHEDULES),
    beta1: unitOpen(),
    beta2: unitOpen(),
    eps: positive(),
    weight_decay: nonNegative(),
    /** muon: the hidden matrices' peak lr (scheduled like optim.lr); the rest uses AdamW at optim.lr */
    muon_lr: withDefault(positive(), MUON_DEFAULTS.muon_lr),
    /** muon: Nesterov momentum of the hidden matrices */
    muon_momentum: withDefault(unitOpen(), MUON_DEFAULTS.muon_momentum),
    /** muon: Newton-Schulz iterations orthogonalising each update */
    ns_steps: withDefault(int(1, 50), MUON_DEFAULTS.ns_steps),
  },
  data: {
    /** used when data.paths is empty */
    dataset: withDefault(oneOf(DATASETS), 'tinystories'),
    /** text files to train on (documents separated by <|endoftext|> lines); overrides dataset */
    paths: withDefault(pathList(), []),
    /** explicit validation files; empty = the dataset's own split */
    val_paths: withDefault(pathList(), []),
    /** TinyStories: megabytes of the train file to download */
    max_train_mb: withDefault(positive(), 200),
    /** "bpe" = train a byte-level BPE of model.vocab_size on the train split; "gpt2"; or a tokenizer.json path */
    tokenizer: withDefault(text(), 'bpe'),
    /** share of train documents written as the words task (`Words: a, b, c` + `Story: ...`, src/tasks/words.ts); absent = 0 */
    words_fraction: optional(unitOpen()),
  },
} as const;

type Sections = typeof FIELDS;
type SectionName = keyof Sections;
const SECTION_NAMES = Object.keys(FIELDS) as SectionName[];

/** The zod shape of one section, built from its Field table (types preserved). */
function shapeOf<T extends Record<string, Field>>(fields: T): { [K in keyof T]: T[K]['schema'] } {
  return Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.schema])) as { [K in keyof T]: T[K]['schema'] };
}

export const modelConfigSchema = z.strictObject(shapeOf(FIELDS.model));
export const trainConfigSchema = z.strictObject(shapeOf(FIELDS.train));
export const optimConfigSchema = z.strictObject(shapeOf(FIELDS.optim));
export const dataConfigSchema = z.strictObject(shapeOf(FIELDS.data));

/** Checks that need more than one field. Paths name the field the message is about. */
function crossFieldChecks(cfg: { model: ModelConfigT; optim: OptimConfigT; data: DataConfigT }, ctx: z.RefinementCtx): void {
  const m = cfg.model;
  if (m.d_model % m.n_head !== 0) {
    ctx.addIssue({ code: 'custom', path: ['model', 'n_head'], params: { keys: ['model.d_model', 'model.n_head'] }, message: `model.d_model (${m.d_model}) must be divisible by model.n_head (${m.n_head})` });
  } else if ((m.mixer ?? 'attention') === 'attention' && (m.d_model / m.n_head) % 2 !== 0) {
    ctx.addIssue({ code: 'custom', path: ['model', 'n_head'], params: { keys: ['model.d_model', 'model.n_head'] }, message: `head size model.d_model / model.n_head = ${m.d_model / m.n_head} must be even (RoPE rotates pairs)` });
  }
  if (cfg.optim.min_lr > cfg.optim.lr) {
    ctx.addIssue({ code: 'custom', path: ['optim', 'min_lr'], params: { keys: ['optim.min_lr', 'optim.lr'] }, message: `optim.min_lr (${cfg.optim.min_lr}) must not exceed optim.lr (${cfg.optim.lr}); lower optim.min_lr too` });
  }
  if (cfg.data.tokenizer === 'bpe' && (m.vocab_size < BPE_MIN_VOCAB || m.vocab_size > BPE_MAX_VOCAB)) {
    ctx.addIssue({ code: 'custom', path: ['model', 'vocab_size'], params: { keys: ['model.vocab_size', 'data.tokenizer'] }, message: `model.vocab_size must be from ${BPE_MIN_VOCAB} to ${BPE_MAX_VOCAB} to train a BPE tokenizer of that size on the data (data.tokenizer = "bpe": 256 byte tokens, <|endoftext|> and at least one merge), got ${m.vocab_size}` });
  }
  if (cfg.data.tokenizer === 'gpt2' && m.vocab_size < 50257) {
    ctx.addIssue({ code: 'custom', path: ['model', 'vocab_size'], params: { keys: ['data.tokenizer', 'model.vocab_size'] }, message: `data.tokenizer = "gpt2" needs model.vocab_size >= 50257, got ${m.vocab_size}` });
  }
}

export const runConfigSchema = z
  .strictObject({ model: modelConfigSchema, train: trainConfigSchema, optim: optimConfigSchema, data: dataConfigSchema })
  .superRefine(crossFieldChecks);

export type ModelConfigT = z.infer<typeof modelConfigSchema>;
export type TrainConfigT = z.infer<typeof trainConfigSchema>;
export type OptimConfigT = z.infer<typeof optimConfigSchema>;
export type DataConfigT = z.infer<typeof dataConfigSchema>;
export type RunConfig = z.infer<typeof runConfigSchema>;

// The optimizers declare the [optim] section they read; the schema must produce exactly it
// (keys OptimConfig leaves optional, with defaults, the schema always fills).
const optimMatches: Required<OptimConfig> extends OptimConfigT ? (OptimConfigT extends OptimConfig ? true : never) : never = true;
void optimMatches;
// Likewise the [model] section is exactly the model's ModelConfig (optional keys included).
const modelMatches: ModelConfig extends ModelConfigT ? (ModelConfigT extends ModelConfig ? true : never) : never = true;
void modelMatches;

// ---------------------------------------------------------------- sources

type Table = Record<string, unknown>;

/** One layer of config: a parsed TOML table and where it came from (for error messages). */
interface Layer {
  label: string;
  data: Table;
  /** a --set assignment: one key, reported as "section.key" */
  fromSet?: boolean;
}

export function presetsDir(): string {
  return path.join(packageRoot(), 'presets');
}

export function listPresets(): string[] {
  return fs
    .readdirSync(presetsDir())
    .filter((f) => f.endsWith('.toml'))
    .map((f) => f.slice(0, -'.toml'.length))
    .sort();
}

function readToml(file: string, label: string, what: string): Table {
  let src: string;
  try {
    src = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${what} not found: ${label}`);
    if (code === 'EISDIR') throw new UserError(`${what} is a directory, not a TOML file: ${label}`);
    throw new UserError(`cannot read ${what} ${label}: ${(e as Error).message}`);
  }
  return parseTomlText(src, label);
}

/** Parses TOML text; a syntax error becomes `label:line:column: TOML syntax error: ...`. */
export function parseTomlText(src: string, label: string): Table {
  try {
    return parseToml(src) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      const reason = e.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
      throw new UserError(`${label}:${e.line}:${e.column}: TOML syntax error: ${reason}`);
    }
    throw e;
  }
}

function presetLayer(name: string): Layer {
  const names = listPresets();
  if (!names.includes(name)) {
    const near = closest(name, names);
    throw new UserError(`unknown preset "${name}"${near ? `; did you mean "${near}"?` : ''} (presets: ${names.join(', ')})`);
  }
  const label = `presets/${name}.toml`;
  return { label, data: readToml(path.join(presetsDir(), `${name}.toml`), label, 'preset') };
}

/** Splits `section.key=value` and reads the value as TOML, falling back to a bare string. */
export function parseSet(assignment: string): { key: string; value: unknown } {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UserError(`--set expects section.key=value, got "${assignment}"`);
  const key = assignment.slice(0, eq).trim();
  const raw = assignment.slice(eq + 1).trim();
  let value: unknown = raw;
  try {
    value = (parseToml(`v = ${raw}`) as Table).v;
  } catch {
    // not a TOML value: a bare word or path, kept as the string it is
  }
  return { key, value };
}

function setLayer(assignment: string): Layer {
  const { key, value } = parseSet(assignment);
  const label = `--set ${assignment}`;
  const parts = key.split('.');
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    const near = parts.length === 1 ? suggestKey('', key) : closest(key, allKeys());
    throw new UserError(`--set key "${key}" must be section.key${near ? `; did you mean "${near}"?` : ''}`);
  }
  return { label, data: { [parts[0]]: { [parts[1]]: value } }, fromSet: true };
}

// ---------------------------------------------------------------- key checks

function allKeys(): string[] {
  return SECTION_NAMES.flatMap((s) => Object.keys(FIELDS[s]).map((k) => `${s}.${k}`));
}

/** Levenshtein distance (small strings; O(len^2) is fine). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The candidate nearest to `word`, or null when nothing is plausibly what was meant. */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 2)) ? best : null;
}

/** Suggests the valid key for an unknown `section.key`: same key in another section first. */
function suggestKey(section: string, key: string): string | null {
  const elsewhere = SECTION_NAMES.find((s) => key in FIELDS[s]);
  if (elsewhere) return `${elsewhere}.${key}`;
  const inSection = (SECTION_NAMES as string[]).includes(section)
    ? Object.keys(FIELDS[section as SectionName]).map((k) => `${section}.${k}`)
    : [];
  return closest(`${section}.${key}`, inSection.length ? inSection : allKeys()) ?? closest(`${section}.${key}`, allKeys());
}

function unknownKey(full: string, label: string, near: string | null): UserError {
  return new UserError(`unknown key "${full}" in ${label}${near ? `; did you mean "${near}"?` : ''}`);
}

/** Rejects unknown sections and keys in one layer, before anything is merged. */
function checkKeys(layer: Layer, allowExtends: boolean): void {
  for (const [sec, body] of Object.entries(layer.data)) {
    if (sec === 'extends' && allowExtends) continue;
    if (!(SECTION_NAMES as string[]).includes(sec)) {
      if (layer.fromSet) {
        const key = Object.keys(body as Table)[0];
        throw unknownKey(`${sec}.${key}`, layer.label, closest(`${sec}.${key}`, allKeys()));
      }
      const isTable = typeof body === 'object' && body !== null && !Array.isArray(body);
      const near = isTable ? closest(sec, SECTION_NAMES) : suggestKey('', sec);
      const what = isTable ? `section [${sec}]` : `key "${sec}"`;
      throw new UserError(`unknown ${what} in ${layer.label}${near ? `; did you mean "${near}"?` : ''}` +
        (isTable ? '' : ' (keys belong in a [section])'));
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new UserError(`"${sec}" in ${layer.label} must be a [${sec}] section (a table), got ${describe(body)}`);
    }
    for (const key of Object.keys(body)) {
      if (!(key in FIELDS[sec as SectionName])) throw unknownKey(`${sec}.${key}`, layer.label, suggestKey(sec, key));
    }
  }
}

// ---------------------------------------------------------------- load

export interface LoadConfigOptions {
  /** preset name: presets/NAME.toml */
  preset?: string;
  /** a TOML config file (complete, or `extends = "PRESET"` plus changes) */
  file?: string;
  /** `section.key=value` overrides, applied in order */
  set?: string[];
}

/** Builds the layer list (lowest first) from the options. */
function collectLayers(opts: LoadConfigOptions): Layer[] {
  const layers: Layer[] = [];
  if (opts.file !== undefined) {
    const data = readToml(opts.file, opts.file, 'config file');
    const fileLayer = { label: opts.file, data };
    checkKeys(fileLayer, true);
    const ext = data.extends;
    if (ext !== undefined && typeof ext !== 'string') {
      throw new UserError(`extends in ${opts.file} must be a preset name (a string), got ${describe(ext)}`);
    }
    if (ext !== undefined && opts.preset !== undefined && ext !== opts.preset) {
      throw new UserError(`${opts.file} extends preset "${ext}" but --preset ${opts.preset} was also given; use one`);
    }
    const base = ext ?? opts.preset;
    if (base !== undefined) layers.push(presetLayer(base));
    delete data.extends;
    layers.push(fileLayer);
  } else {
    layers.push(presetLayer(opts.preset ?? 'default'));
  }
  for (const a of opts.set ?? []) layers.push(setLayer(a));
  for (const l of layers) checkKeys(l, false);
  return layers;
}

/**
 * Loads, merges and validates a run config. Throws a one-line UserError for a missing file,
 * a TOML syntax error, an unknown key (with the closest valid one), a missing key, a value
 * of the wrong type or range, or inconsistent fields (d_model / n_head ...).
 */
export function loadConfig(opts: LoadConfigOptions = {}): RunConfig {
  const layers = collectLayers(opts);
  const merged: Record<string, Table> = {};
  const origin = new Map<string, number>();
  for (const [i, l] of layers.entries()) {
    for (const [sec, body] of Object.entries(l.data)) {
      const target = (merged[sec] ??= {});
      for (const [k, v] of Object.entries(body as Table)) {
        target[k] = v;
        origin.set(`${sec}.${k}`, i);
      }
    }
  }
  const parsed = runConfigSchema.safeParse(merged);
  if (parsed.success) return parsed.data;
  // An error is reported against the layer that last set any of the keys involved:
  // that is the assignment that made the config wrong.
  const where = (...keys: string[]) => layers[Math.max(0, ...keys.map((k) => origin.get(k) ?? 0))].label;
  throw new UserError(issueMessage(parsed.error.issues[0], merged, where));
}

/** Validates an already-parsed config object (e.g. a run folder's saved config). */
export function validateConfig(data: unknown, label: string): RunConfig {
  const layer: Layer = { label, data: (data ?? {}) as Table };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UserError(`config in ${label} must be a table`);
  checkKeys(layer, false);
  const parsed = runConfigSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  throw new UserError(issueMessage(parsed.error.issues[0], data as Record<string, Table>, () => label));
}

/** The config as TOML text, sections in order (for saving beside a run). */
export function stringifyConfig(cfg: RunConfig): string {
  return stringifyToml({ model: cfg.model, train: cfg.train, optim: cfg.optim, data: cfg.data });
}

// ---------------------------------------------------------------- messages

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const type = Array.isArray(v) ? 'array' : v === null ? 'null' : v instanceof Date ? 'date' : typeof v;
  let shown: string;
  try {
    shown = JSON.stringify(v) ?? String(v);
  } catch {
    shown = String(v);
  }
  if (typeof v === 'number' && !Number.isFinite(v)) shown = String(v);
  if (shown.length > 60) shown = `${shown.slice(0, 57)}...`;
  return `${shown} (${type})`;
}

function issueMessage(issue: z.core.$ZodIssue, merged: Record<string, Table>, where: (...keys: string[]) => string): string {
  const [sec, key] = issue.path as (string | number)[];
  if (typeof sec !== 'string') return `invalid config in ${where('')}: ${issue.message}`;
  if (key === undefined || typeof key !== 'string') {
    if (issue.code === 'invalid_type' && merged[sec] === undefined) return `missing section [${sec}] in ${where('')}`;
    return `[${sec}] in ${where(sec)}: ${issue.message}`;
  }
  const full = `${sec}.${key}`;
  if (issue.code === 'custom') {
    const keys = (issue.params as { keys?: string[] } | undefined)?.keys ?? [full];
    return `${issue.message} (in ${where(...keys)})`;
  }
  const value = merged[sec]?.[key];
  if (value === undefined) {
    return `missing key "${full}" in ${where(full)} (every key without a default is required, unless the file starts with extends = "PRESET")`;
  }
  const field = (FIELDS[sec as SectionName] as Record<string, Field> | undefined)?.[key];
  const expect = field?.expect ?? issue.message;
  return `${full} must be ${expect}, got ${describe(value)} in ${where(full)}`;
}
