/**
 * The study journal folded into what results.tsv, the report, progress.svg and the live line
 * show: one row per trial, the running best, the noise estimate, the pauses and the kept
 * changes. A pure function of the events, so a resumed or finished study, or one read while it
 * runs, gives the same summary for the same journal prefix.
 */
import type { Budget, Changes, JournalEvent, NoiseEstimate, TrialKind, TrialStatus } from './types.js';

/** A trial's status in the summary: how it ended, or `running` when the journal has its start but no end (running now, or interrupted). */
export type RowStatus = TrialStatus | 'running';

/** One trial, as results.tsv and the report show it. */
export interface TrialRow {
  id: number;
  kind: TrialKind;
  /** The trial's description from its start event, or its changes as `key=value, ...` when that is empty. */
  description: string;
  changes: Changes;
  seed: number;
  /** Trial id this one confirms (kind confirm) or null. */
  confirms: number | null;
  status: RowStatus;
  /** ISO times of the trial's start and end events (end null while running/interrupted). */
  started: string;
  ended: string | null;
  val_loss: number | null;
  val_bpb: number | null;
  tokens_per_second: number | null;
  peak_rss_mb: number | null;
  steps: number | null;
  seconds: number | null;
  /** Why it crashed/diverged/was pruned/rejected ('' when ok or running). */
  reason: string;
  /** The keep decision naming this trial: kept or discarded; null when no decision names it (noise, confirm, failed trials, or not decided yet). */
  kept: boolean | null;
  /** The decision's reason ('' without a decision). */
  decision_reason: string;
  /**
   * The study's best bits per byte once this trial and what followed it before the next trial
   * started (its decision, the noise estimate) were known; null before the noise estimate.
   * A candidate kept after confirmation runs moves the best at the last of its confirmations,
   * because that is when the study adopted it.
   */
  best_bpb: number | null;
}

/** One kept change, in the order the study adopted them. */
export interface KeptChange {
  /** 1-based position in the chain of kept changes. */
  step: number;
  id: number;
  description: string;
  changes: Changes;
  /** The best before and the candidate's score (the decision's best_bpb and candidate_bpb). */
  bpb_before: number;
  bpb_after: number;
  /** bpb_before - bpb_after (positive = better). */
  gain: number;
  /** The margin the candidate had to beat. */
  margin: number;
  time: string;
}

export interface PauseRecord {
  time: string;
  reason: string;
  seconds: number;
}

export interface StudySummary {
  /** From the study event (null when the journal has none, e.g. an empty file). */
  base_name: string | null;
  budget: Budget | null;
  started: string | null;
  /** The time of the last event in the journal. */
  last_time: string | null;
  /** The end event's reason, null while the study runs or when it was interrupted. */
  ended: string | null;
  rows: TrialRow[];
  noise: NoiseEstimate | null;
  /** The base config's score: the noise mean (null before the noise estimate). */
  base_bpb: number | null;
  /** The current best: the base's noise mean, then each kept decision's candidate_bpb. */
  best_bpb: number | null;
  kept: KeptChange[];
  pauses: PauseRecord[];
  /** Trials per status (running = started, not ended). */
  counts: Record<RowStatus, number>;
}

/** `key=value, key=value` in the order the changes were written. */
export function formatChanges(changes: Changes): string {
  return Object.entries(changes)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

function emptyCounts(): Record<RowStatus, number> {
  return { ok: 0, pruned: 0, crash: 0, diverged: 0, timeout: 0, rejected: 0, running: 0 };
}

/** Folds the journal (in file order) into a summary. Events naming an unknown trial are ignored rather than thrown: the journal reader validates. */
export function summarize(events: JournalEvent[]): StudySummary {
  const s: StudySummary = {
    base_name: null,
    budget: null,
    started: null,
    last_time: null,
    ended: null,
    rows: [],
    noise: null,
    base_bpb: null,
    best_bpb: null,
    kept: [],
    pauses: [],
    counts: emptyCounts(),
  };
  const byId = new Map<number, TrialRow>();
  // The most recently started trial: decisions and noise estimates that arrive before the next
  // trial starts update its best_bpb.
  let last: TrialRow | null = null;

  for (const e of events) {
    s.last_time = e.time;
    switch (e.type) {
      case 'study':
        s.base_name = e.base_name;
        s.budget = e.budget;
        s.started = e.time;
        break;
      case 'trial_start': {
        const row: TrialRow = {
          id: e.id,
          kind: e.kind,
          description: e.description.trim() !== '' ? e.description : formatChanges(e.changes),
          changes: e.changes,
          seed: e.seed,
          confirms: e.confirms,
          status: 'running',
          started: e.time,
          ended: null,
          val_loss: null,
          val_bpb: null,
          tokens_per_second: null,
          peak_rss_mb: null,
          steps: null,
          seconds: null,
          reason: '',
          kept: null,
          decision_reason: '',
          best_bpb: s.best_bpb,
        };
        const old = byId.get(e.id);
        // A trial restarted after an interruption (--resume) starts again under its id: the new attempt replaces the old row.
        if (old) s.rows.splice(s.rows.indexOf(old), 1);
        byId.set(e.id, row);
        s.rows.push(row);
        last = row;
        break;
      }
      case 'trial_end': {
        const row = byId.get(e.id);
        if (!row) break;
        const r = e.result;
        row.status = r.status;
        row.ended = e.time;
        row.val_loss = r.val_loss;
        row.val_bpb = r.val_bpb;
        row.tokens_per_second = r.tokens_per_second;
        row.peak_rss_mb = r.peak_rss_mb;
        row.steps = r.steps;
        row.seconds = r.seconds;
        row.reason = r.reason;
        row.best_bpb = s.best_bpb;
        break;
      }
      case 'noise':
        s.noise = e.noise;
        s.base_bpb = e.noise.mean;
        s.best_bpb = e.noise.mean;
        if (last) last.best_bpb = s.best_bpb;
        break;
      case 'decision': {
        const row = byId.get(e.id);
        if (row) {
          row.kept = e.kept;
          row.decision_reason = e.reason;
        }
        if (s.best_bpb === null) s.best_bpb = e.best_bpb;
        if (e.kept) {
          s.kept.push({
            step: s.kept.length + 1,
            id: e.id,
            description: row ? row.description : `trial ${e.id}`,
            changes: row ? row.changes : {},
            bpb_before: e.best_bpb,
            bpb_after: e.candidate_bpb,
            gain: e.best_bpb - e.candidate_bpb,
            margin: e.margin,
            time: e.time,
          });
          s.best_bpb = e.candidate_bpb;
        }
        if (last) last.best_bpb = s.best_bpb;
        break;
      }
      case 'pause':
        s.pauses.push({ time: e.time, reason: e.reason, seconds: e.seconds });
        break;
      case 'end':
        s.ended = e.reason;
        break;
      case 'limits': // extended on --resume: the study goes on
        s.ended = null;
        break;
      case 'rung':
        break;
    }
  }
  for (const row of s.rows) s.counts[row.status]++;
  return s;
}

/** Wall-clock hours from the study's start to its last event (0 without both). */
export function elapsedHours(s: StudySummary): number {
  if (!s.started || !s.last_time) return 0;
  const ms = Date.parse(s.last_time) - Date.parse(s.started);
  return Number.isFinite(ms) && ms > 0 ? ms / 3_600_000 : 0;
}
