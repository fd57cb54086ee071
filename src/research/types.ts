/**
 * The vocabulary of a research study (`pocketlm research`): what a trial changes, how it ended,
 * and the events of the study journal. Shared by the strategies, the keep rule, the journal,
 * the trial runner, the study loop and the report.
 */

/** A searchable config value. */
export type ParamValue = number | string;

/**
 * What a trial changes relative to the study's current best config, as dotted config keys
 * ("model.d_model", "optim.lr", "train.batch_size", ...) to their new values.
 */
export type Changes = Record<string, ParamValue>;

/** The mutation strategies of the original's experiment loop. `plan` = an entry of a --plan file; `seed` = the noise runs and confirmations. */
export const STRATEGIES = ['random', 'scale_up', 'scale_down', 'lr_search', 'seq_len', 'efficient'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export type TrialKind = Strategy | 'plan' | 'noise' | 'confirm' | 'final';

/** How a trial ended. `ok`: trained to its budget and scored; the rest never score. */
export const TRIAL_STATUSES = ['ok', 'pruned', 'crash', 'diverged', 'timeout', 'rejected'] as const;
export type TrialStatus = (typeof TRIAL_STATUSES)[number];

/** One rung evaluation of a trial's learning curve (validation bits per byte at a share of its budget). */
export interface RungPoint {
  /** Rung index (0-based): rung r is at (r + 1) / (rungs + 1) of the budget. */
  rung: number;
  step: number;
  tokens: number;
  val_bpb: number;
}

/** The outcome of one trial. */
export interface TrialResult {
  status: TrialStatus;
  /** Full-validation score: nats/token and bits per byte (null unless status is ok). */
  val_loss: number | null;
  val_bpb: number | null;
  steps: number;
  tokens: number;
  seconds: number;
  tokens_per_second: number;
  peak_rss_mb: number;
  /** One line: why it crashed / diverged / was pruned / was rejected; '' when ok. */
  reason: string;
}

/** The noise of the base configuration at the trial budget, measured at the start of a study. */
export interface NoiseEstimate {
  /** The base config's full-validation bits per byte on each seed. */
  bpb: number[];
  seeds: number[];
  mean: number;
  /** Sample standard deviation over the seeds. */
  sd: number;
  /** A candidate must beat the best by more than this (see keep.ts). */
  margin: number;
}

/**
 * The study journal: one JSON object per line, appended and fsynced event by event
 * (journal.ts). Everything the study knows is derived from it: its state on --resume,
 * results.tsv, best.toml and the report.
 */
export type JournalEvent =
  | { type: 'study'; time: string; version: 1; base_config: string; base_name: string; budget: Budget; seed: number;
      pruning: boolean; strategies: 'weighted' | 'random'; plan: PlanEntry[] | null; max_trials: number | null; hours: number | null;
      max_memory_mb: number; threads: number;
      /** Seeds of the base config run to measure the noise; fresh seeds the best config is retrained on at the end (0 = none). */
      noise_seeds: number; final_seeds: number;
      /** Rung evaluations per trial (pruning looks at them). */
      rungs: number;
      backend: string;
      guard: StudyGuard;
      /** The fixed text every trial is scored on (a file in the study folder), its size and where it came from. */
      score: { file: string; bytes: number; docs: number; source: string } }
  | { type: 'trial_start'; time: string; id: number; kind: TrialKind; changes: Changes; description: string; config: string; seed: number;
      /** Trial id this one confirms (kind confirm) or null. */
      confirms: number | null; rng: number[] }
  | { type: 'rung'; time: string; id: number; point: RungPoint }
  | { type: 'trial_end'; time: string; id: number; result: TrialResult }
  | { type: 'noise'; time: string; noise: NoiseEstimate }
  | { type: 'decision'; time: string; id: number; kept: boolean; candidate_bpb: number; best_bpb: number; margin: number; reason: string }
  | { type: 'pause'; time: string; reason: string; seconds: number }
  | { type: 'end'; time: string; reason: string }
  /** New search limits given on --resume (a finished study then goes on). */
  | { type: 'limits'; time: string; max_trials: number | null; hours: number | null };

/** How long each trial trains: by tokens (the default: a busy machine cannot change it), steps or seconds. */
export interface Budget {
  kind: 'tokens' | 'steps' | 'seconds';
  value: number;
}

/** One entry of a --plan file. */
export interface PlanEntry {
  name: string;
  changes: Changes;
  hypothesis: string;
}

/** When the resource guard pauses the study before a trial (the original's phone-friendly checks). */
export interface StudyGuard {
  /** Pause below this battery level unless charging (0 = never). */
  min_battery_percent: number;
  /** Cool down while the hottest thermal zone is above this (degrees C; 0 = never). */
  max_temperature_c: number;
}
