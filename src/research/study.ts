import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { prepareDataset, type PrepareProgress } from '../data/prepare.js';
import { flopsPerToken } from '../model/flops.js';
import { fileSource } from '../data/sources.js';
import { readNpyTokens } from '../data/npy.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { stringifyConfig, validateConfig, type RunConfig } from '../train/config.js';
import { prepareOptionsFor } from '../train/session.js';
import { acquireRunLock, type RunLock } from '../train/lock.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { guardVerdict, readDeviceHealth } from './guard.js';
import { Journal, now, readJournal, journalPath } from './journal.js';
import { estimateNoise, firstRunVerdict, keepDecision } from './keep.js';
import { progressSvg } from './progress-svg.js';
import { shouldPrune } from './prune.js';
import { resultsTsv } from './results-tsv.js';
import { Rng } from './rng.js';
import { applyChanges, checkCandidate, completeChanges, describeChanges, spaceViolation } from './space.js';
import { NoCandidateError, proposeTrial, type TrialRecord } from './strategies.js';
import { summarize } from './summary.js';
import { estimateTrialMemoryMb } from './memory.js';
import { runTrial, trialConfig } from './trial.js';
import type { Budget, Changes, StudyGuard, JournalEvent, NoiseEstimate, PlanEntry, RungPoint, TrialKind, TrialResult } from './types.js';
import { STRATEGIES } from './types.js';

/**
 * The research loop: measure the noise of the base config, then propose a change, train it,
 * score it, keep it only when it beats the best by more than the noise on two seeds, repeat.
 *
 * Every decision is a pure function of the journal (`nextAction`): the loop reads what the
 * journal says, does the one thing that comes next, appends its outcome, and reads again. A
 * study killed at any moment and resumed does exactly what it would have done: a trial that
 * had started but not ended is run again from scratch (same config, same seed), a finished one
 * never is, and the mutation generator continues from the state saved with the last trial.
 */

export interface StudyOptions {
  dir: string;
  /** Continue the study in `dir` (its journal decides everything; the other options are ignored but `limits`). */
  resume: boolean;
  /** On resume: new search limits (--trials / --hours), journaled; a finished study then goes on. */
  limits?: { maxTrials: number | null; hours: number | null } | null;
  base: RunConfig;
  baseName: string;
  budget: Budget;
  /** Stop after this many proposed trials (noise, confirmation and final runs do not count), or after `hours`. */
  maxTrials: number | null;
  hours: number | null;
  seed: number;
  pruning: boolean;
  strategies: 'weighted' | 'random';
  plan: PlanEntry[] | null;
  maxMemoryMb: number;
  threads: number;
  backend: string;
  noiseSeeds: number;
  finalSeeds: number;
  rungs: number;
  guard: StudyGuard;
  /** Bytes of whole validation documents every trial is scored on. */
  scoreBytes: number;
}

export type StudyEvent =
  | { type: 'prepare'; progress: PrepareProgress }
  | { type: 'created' | 'resumed'; dir: string; study: Extract<JournalEvent, { type: 'study' }> }
  | { type: 'trial_start'; id: number; kind: TrialKind; description: string; index: number; of: number | null; best: number | null; margin: number | null }
  | { type: 'rung'; id: number; point: RungPoint }
  | { type: 'trial_end'; id: number; kind: TrialKind; result: TrialResult }
  | { type: 'noise'; noise: NoiseEstimate }
  | { type: 'decision'; decision: Extract<JournalEvent, { type: 'decision' }> }
  | { type: 'pause'; reason: string; seconds: number }
  | { type: 'end'; reason: string };

export interface StudyOutcome {
  dir: string;
  events: JournalEvent[];
  reason: string;
}

type StudyHeader = Extract<JournalEvent, { type: 'study' }>;

export interface TrialState {
  id: number;
  /** How many times this trial has started (1 = once): a result from an older attempt is not this one's. */
  attempt: number;
  start: Extract<JournalEvent, { type: 'trial_start' }>;
  rungs: RungPoint[];
  end: TrialResult | null;
}

/** What the journal says so far. */
export interface StudyState {
  header: StudyHeader;
  trials: TrialState[];
  noise: NoiseEstimate | null;
  decisions: Map<number, Extract<JournalEvent, { type: 'decision' }>>;
  /** The current best config (TOML text) and its bits per byte (null before the noise is known). */
  best: { config: string; bpb: number | null; id: number | null };
  rng: number[] | null;
  ended: string | null;
  /**
   * Wall-clock seconds during which at least one trial of the study was running (the --hours
   * budget counts them): the union of the finished trials' [start, end] intervals. With one trial
   * at a time this is their summed duration; with N workers in parallel it is the elapsed time,
   * not N times it; time when nothing ran (the study stopped, then resumed) does not count.
   */
  seconds: number;
}

/** Length of the union of [start, end] intervals, in the intervals' unit. */
export function unionLength(intervals: readonly (readonly [number, number])[]): number {
  const sorted = intervals.filter(([a, b]) => b > a).slice().sort((x, y) => x[0] - y[0]);
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [a, b] of sorted) {
    if (a > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = a;
      curEnd = b;
    } else if (b > curEnd) curEnd = b;
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total;
}

export function foldJournal(events: JournalEvent[]): StudyState {
  const header = events[0];
  if (!header || header.type !== 'study') throw new UserError('the journal does not start with its study event');
  const st: StudyState = {
    header, trials: [], noise: null, decisions: new Map(), best: { config: header.base_config, bpb: null, id: null }, rng: null, ended: null, seconds: 0,
  };
  const byId = new Map<number, TrialState>();
  const busy: [number, number][] = [];
  for (const ev of events.slice(1)) {
    switch (ev.type) {
      case 'trial_start': {
        // a trial started again after a kill replaces its interrupted attempt
        const old = byId.get(ev.id);
        const t: TrialState = { id: ev.id, attempt: (old?.attempt ?? 0) + 1, start: ev, rungs: [], end: null };
        if (old) st.trials[st.trials.indexOf(old)] = t;
        else st.trials.push(t);
        byId.set(ev.id, t);
        st.rng = ev.rng;
        break;
      }
      case 'rung': byId.get(ev.id)?.rungs.push(ev.point); break;
      case 'trial_end': {
        const t = byId.get(ev.id);
        if (t) {
          t.end = ev.result;
          const start = Date.parse(t.start.time);
          const end = Date.parse(ev.time);
          // a journal edited by hand may lack sane times: the trial's own measured seconds then
          if (Number.isFinite(start) && Number.isFinite(end) && end >= start) busy.push([start / 1000, end / 1000]);
          else st.seconds += ev.result.seconds;
        }
        break;
      }
      case 'noise':
        st.noise = ev.noise;
        st.best = { config: header.base_config, bpb: ev.noise.mean, id: null };
        break;
      case 'decision':
        st.decisions.set(ev.id, ev);
        if (ev.kept) st.best = { config: byId.get(ev.id)!.start.config, bpb: ev.candidate_bpb, id: ev.id };
        break;
      case 'end': st.ended = ev.reason; break;
      case 'limits':
        st.header = { ...st.header, max_trials: ev.max_trials, hours: ev.hours };
        st.ended = null;
        break;
      default: break;
    }
  }
  st.seconds += unionLength(busy);
  return st;
}

/** A TOML config text of the journal as a validated config. */
export function parseConfigText(text: string, label: string): RunConfig {
  let data: unknown;
  try {
    data = parseToml(text);
  } catch (e) {
    throw new UserError(`${label}: not valid TOML (${(e as Error).message.split('\n')[0]})`);
  }
  return validateConfig(data, label);
}

export const isCandidate = (k: TrialKind): boolean => (STRATEGIES as readonly string[]).includes(k) || k === 'plan';

/** The seed of a trial: fresh for each, so that no candidate can win by sharing a lucky seed. */
function trialSeed(header: StudyHeader, kind: TrialKind, id: number, index: number): number {
  const s = header.seed >>> 0;
  if (kind === 'noise') return (s + index) >>> 0;
  if (kind === 'final') return (s + 100_000 + index) >>> 0;
  return (s + 1_000 + id) >>> 0;
}

export type Action =
  | { do: 'trial'; id: number; kind: TrialKind; changes: Changes; description: string; config: string; seed: number; confirms: number | null; rng: number[]; index: number }
  | { do: 'noise' }
  | { do: 'decide'; decision: Omit<Extract<JournalEvent, { type: 'decision' }>, 'time' | 'type'> }
  | { do: 'propose' }
  | { do: 'end'; reason: string }
  /** Nothing can start until a trial in flight ends. */
  | { do: 'wait' };

/**
 * The one thing to do next, from the journal alone and the trials in flight (started, not ended,
 * still running somewhere: a study with several workers). With nothing in flight (a local
 * study) it never waits, and an unended trial is one that was interrupted. With trials in
 * flight, noise seeds and new candidates start beside them; a candidate is confirmed and decided
 * as soon as its own runs end (against the best at that moment); the final seeds wait until
 * every candidate is decided, and the end until nothing is in flight.
 */
export function nextAction(st: StudyState, elapsedOffset: number, inFlight: ReadonlySet<number> = new Set()): Action {
  const h = st.header;
  const nextId = st.trials.reduce((m, t) => Math.max(m, t.id), 0) + 1;
  const rng = st.rng ?? new Rng(h.seed).state();
  // 1. an interrupted trial runs again first, as it was
  const open = st.trials.find((t) => t.end === null && !inFlight.has(t.id));
  if (open) {
    const s = open.start;
    return { do: 'trial', id: s.id, kind: s.kind, changes: s.changes, description: s.description, config: s.config, seed: s.seed, confirms: s.confirms, rng: s.rng, index: 0 };
  }
  if (st.ended !== null) return inFlight.size > 0 ? { do: 'wait' } : { do: 'end', reason: st.ended };
  // 2. the noise of the base config
  const noiseTrials = st.trials.filter((t) => t.start.kind === 'noise');
  if (!st.noise) {
    if (noiseTrials.length < h.noise_seeds) {
      const i = noiseTrials.length;
      const seed = trialSeed(h, 'noise', nextId, i);
      const base = parseConfigText(h.base_config, 'the study base config');
      const cfg = { ...base, train: { ...base.train, seed } };
      return { do: 'trial', id: nextId, kind: 'noise', changes: { 'train.seed': seed }, description: `base config, seed ${seed}`, config: stringifyConfig(cfg), seed, confirms: null, rng, index: i };
    }
    return noiseTrials.some((t) => t.end === null) ? { do: 'wait' } : { do: 'noise' };
  }
  const best = st.best.bpb!;
  // 3. a candidate that ended: confirm it, decide on it (one at a time in a local study: the last)
  const candidates = st.trials.filter((t) => isCandidate(t.start.kind));
  for (const last of candidates) {
    if (last.end?.status !== 'ok' || st.decisions.has(last.id)) continue;
    const confirm = st.trials.find((t) => t.start.kind === 'confirm' && t.start.confirms === last.id);
    if (confirm && confirm.end === null) continue; // its confirmation is in flight
    if (!confirm) {
      if (firstRunVerdict(last.end.val_bpb!, best, st.noise) === 'discard') {
        return { do: 'decide', decision: { id: last.id, kept: false, candidate_bpb: last.end.val_bpb!, best_bpb: best, margin: st.noise.margin,
          reason: `${last.end.val_bpb!.toFixed(4)} is not below best ${best.toFixed(4)} - margin ${st.noise.margin.toFixed(4)}: discarded without a second run` } };
      }
      const seed = trialSeed(h, 'confirm', nextId, 0);
      const cfg = parseConfigText(last.start.config, `trial ${last.id} config`);
      return { do: 'trial', id: nextId, kind: 'confirm', changes: { ...last.start.changes, 'train.seed': seed }, description: `confirm trial ${last.id} on seed ${seed}`,
        config: stringifyConfig({ ...cfg, train: { ...cfg.train, seed } }), seed, confirms: last.id, rng, index: 0 };
    }
    if (confirm.end!.status !== 'ok') {
      return { do: 'decide', decision: { id: last.id, kept: false, candidate_bpb: last.end.val_bpb!, best_bpb: best, margin: st.noise.margin,
        reason: `its confirmation run (trial ${confirm.id}) ended ${confirm.end!.status}: ${confirm.end!.reason}` } };
    }
    const d = keepDecision([last.end.val_bpb!, confirm.end!.val_bpb!], best, st.noise);
    return { do: 'decide', decision: { id: last.id, kept: d.kept, candidate_bpb: d.candidateBpb, best_bpb: best, margin: st.noise.margin, reason: d.reason } };
  }
  // 4. the end of the search: by count, time, plan, or a stop asked for
  const proposed = candidates.length;
  const elapsed = st.seconds + elapsedOffset;
  let stop: string | null = null;
  if (h.plan && proposed >= h.plan.length) stop = `all ${h.plan.length} planned experiments ran`;
  else if (h.max_trials !== null && proposed >= h.max_trials) stop = `${h.max_trials} trials ran`;
  else if (h.hours !== null && elapsed >= h.hours * 3600) stop = `${h.hours} h of trials ran`;
  if (stop === null) return { do: 'propose' };
  // every candidate must be decided before the best is final
  if (st.trials.some((t) => t.end === null && t.start.kind !== 'final')) return { do: 'wait' };
  // 5. then the best config on fresh seeds (when it is not the base)
  const finals = st.trials.filter((t) => t.start.kind === 'final' && t.start.confirms === st.best.id);
  if (st.best.id !== null && finals.length < h.final_seeds) {
    const i = finals.length;
    const seed = trialSeed(h, 'final', nextId, i);
    const cfg = parseConfigText(st.best.config, 'the best config');
    return { do: 'trial', id: nextId, kind: 'final', changes: { 'train.seed': seed }, description: `best config (trial ${st.best.id}) on fresh seed ${seed}`,
      config: stringifyConfig({ ...cfg, train: { ...cfg.train, seed } }), seed, confirms: st.best.id, rng, index: i };
  }
  if (inFlight.size > 0) return { do: 'wait' };
  return { do: 'end', reason: stop };
}

/** The study folder's files. */
export function studyPaths(dir: string) {
  return {
    journal: journalPath(dir),
    score: path.join(dir, 'score.txt'),
    trials: path.join(dir, 'trials'),
    results: path.join(dir, 'results.tsv'),
    best: path.join(dir, 'best.toml'),
    progress: path.join(dir, 'progress.svg'),
  };
}

export const trialDir = (dir: string, id: number): string => path.join(dir, 'trials', String(id).padStart(4, '0'));

/**
 * The fixed text every trial is scored on: whole documents of the base dataset's validation
 * text, up to `maxBytes`. From the validation files when the config names them, else decoded
 * from the prepared validation split (the byte-level tokenizer gives back the exact text).
 */
async function scoreDocuments(base: RunConfig, datasetDir: string, valFile: string, maxBytes: number): Promise<{ docs: string[]; source: string }> {
  const docs: string[] = [];
  let bytes = 0;
  const take = (d: string): boolean => {
    const n = Buffer.byteLength(d, 'utf8');
    if (docs.length > 0 && bytes + n > maxBytes) return false;
    docs.push(d);
    bytes += n;
    return true;
  };
  if (base.data.val_paths.length) {
    outer: for (const f of base.data.val_paths) for (const d of fileSource(f).docs()) if (!take(d)) break outer;
    return { docs, source: base.data.val_paths.join(', ') };
  }
  const tok = await loadTokenizer(path.join(datasetDir, 'tokenizer.json'));
  const ids = readNpyTokens(path.join(datasetDir, valFile));
  let startAt = 0;
  for (let i = 0; i <= ids.length; i++) {
    if (i === ids.length || ids[i] === tok.eotId) {
      if (i > startAt) {
        const d = tok.decode(ids.subarray(startAt, i));
        if (d.trim() && !take(d)) break;
      }
      startAt = i + 1;
    }
  }
  return { docs, source: `${datasetDir} (validation split)` };
}

const SEPARATOR = '\n<|endoftext|>\n';

/** Creates the study folder: checks, data, score text, the journal's first event. */
export async function createStudy(o: StudyOptions, onEvent: (ev: StudyEvent) => void): Promise<StudyHeader> {
  const p = studyPaths(o.dir);
  const base = o.base;
  if (!o.plan) {
    const why = spaceViolation(base) ?? checkCandidate(base, { maxMemoryMb: o.maxMemoryMb, threads: Math.max(1, o.threads) });
    if (why) throw new UserError(`the base config cannot start a search: ${why} (change it, or give a --plan)`);
  }
  const dataset = await prepareDataset(prepareOptionsFor(base), (progress) => onEvent({ type: 'prepare', progress }));
  const { docs, source } = await scoreDocuments(base, dataset.dir, dataset.meta.splits.val.file, o.scoreBytes);
  if (docs.length === 0) throw new UserError(`no validation text to score trials on in ${source}`);
  const text = docs.join(SEPARATOR) + SEPARATOR;
  writeFileAtomicSync(p.score, text);
  // a fallback to the bundled sample is written into the base, so every trial reads the same data
  const used = dataset.datasetUsed && !base.data.paths.length && dataset.datasetUsed !== base.data.dataset ? dataset.datasetUsed : null;
  const baseCfg = used ? { ...base, data: { ...base.data, dataset: used } } : base;
  return {
    type: 'study', time: now(), version: 1, base_config: stringifyConfig(baseCfg), base_name: o.baseName, budget: o.budget, seed: o.seed,
    pruning: o.pruning, strategies: o.strategies, plan: o.plan, max_trials: o.maxTrials, hours: o.hours, max_memory_mb: o.maxMemoryMb,
    threads: o.threads, noise_seeds: o.noiseSeeds, final_seeds: o.finalSeeds, rungs: o.rungs, backend: o.backend, guard: o.guard,
    score: { file: path.basename(p.score), bytes: Buffer.byteLength(text, 'utf8'), docs: docs.length, source },
  };
}

/** Rewrites results.tsv, best.toml and progress.svg from the journal (each atomically). */
export function writeDerivedFiles(dir: string, events: JournalEvent[]): void {
  const p = studyPaths(dir);
  const summary = summarize(events);
  writeFileAtomicSync(p.results, resultsTsv(summary));
  writeFileAtomicSync(p.progress, progressSvg(summary));
  const st = foldJournal(events);
  if (st.best.bpb !== null) {
    const cfg = parseConfigText(st.best.config, 'the best config');
    const header = `# best config of the study in ${dir}: ${st.best.id === null ? 'the base config' : `trial ${st.best.id}`}, ` +
      `${st.best.bpb.toFixed(4)} bits/byte at its budget.\n# train it: pocketlm train --config best.toml\n`;
    writeFileAtomicSync(p.best, header + stringifyConfig({ ...cfg, train: { ...cfg.train, seed: parseConfigText(st.header.base_config, 'base').train.seed } }));
  }
}

function sleep(seconds: number, shouldStop: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const until = Date.now() + seconds * 1000;
    const tick = () => (shouldStop() || Date.now() >= until ? resolve() : setTimeout(tick, Math.min(500, until - Date.now())));
    tick();
  });
}

/** Files a study writes before its journal exists (the score text, its lock, temp files of atomic writes). */
function isStudyLeftover(name: string): boolean {
  return name === 'score.txt' || name === 'lock' || name === 'lock.takeover' || (name.startsWith('.') && name.includes('.tmp-'));
}

/** Removes what an interrupted attempt of a trial left, so it starts again from scratch. */
function clearTrialDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Runs (or resumes) a study to its end. `shouldStop` is polled between trials and while
 * pausing; a trial in flight is finished first (a second signal is the caller's business).
 */
/** An open study: its journal (appending), the events so far, the folder lock. */
export interface OpenStudy {
  journal: Journal;
  events: JournalEvent[];
  lock: RunLock;
}

/**
 * Creates the study folder (or, with `resume`, opens the one there), takes its lock and opens its
 * journal: the start every study has, local or with workers elsewhere.
 */
export async function openStudy(o: StudyOptions, onEvent: (ev: StudyEvent) => void): Promise<OpenStudy> {
  const p = studyPaths(o.dir);
  const exists = fs.existsSync(p.journal);
  if (!o.resume && exists) throw new UserError(`${o.dir} already holds a study; continue it with --resume, or choose another --out`);
  const created = !fs.existsSync(o.dir);
  if (!exists) {
    // A new study. A --resume of one killed before its journal was written has nothing recorded
    // to lose: it starts, as it would have, from the options given.
    if (o.resume && created) throw new UserError(`--resume: ${o.dir} does not exist; drop --resume to start a study there`);
    const other = created ? [] : fs.readdirSync(o.dir).filter((n) => !isStudyLeftover(n));
    if (other.length > 0) {
      throw new UserError(o.resume ? `--resume: ${o.dir} holds no study (no journal.jsonl) but other files (${other.slice(0, 3).join(', ')}); nothing was changed`
        : `${o.dir} is not empty (${other.slice(0, 3).join(', ')}); a new study needs an empty or new folder`);
    }
    try {
      fs.mkdirSync(o.dir, { recursive: true });
      fs.accessSync(o.dir, fs.constants.W_OK);
    } catch (e) {
      throw new UserError(`cannot write the study folder ${o.dir}: ${(e as Error).message}`);
    }
  }
  const lock: RunLock = acquireRunLock(o.dir);
  // (under the lock) what a study killed before its journal existed left behind
  if (!exists) for (const n of fs.readdirSync(o.dir)) if (isStudyLeftover(n) && !n.startsWith('lock')) fs.rmSync(path.join(o.dir, n), { recursive: true, force: true });
  let journal: Journal | null = null;
  let released = false;
  try {
    let events: JournalEvent[];
    if (exists) {
      journal = Journal.open(o.dir, false);
      events = readJournal(o.dir).events;
      onEvent({ type: 'resumed', dir: o.dir, study: events[0] as StudyHeader });
      const h = foldJournal(events).header;
      if (o.limits && (o.limits.maxTrials !== h.max_trials || o.limits.hours !== h.hours)) {
        const ev: JournalEvent = { type: 'limits', time: now(), max_trials: o.limits.maxTrials, hours: o.limits.hours };
        journal.append(ev);
        events.push(ev);
      }
    } else {
      let header: StudyHeader;
      try {
        header = await createStudy(o, onEvent);
      } catch (e) {
        // refused before its journal existed: leave no folder behind
        lock.release();
        released = true;
        if (created) fs.rmSync(o.dir, { recursive: true, force: true });
        throw e;
      }
      journal = Journal.open(o.dir, true);
      journal.append(header);
      events = [header];
      onEvent({ type: 'created', dir: o.dir, study: header });
    }
    return { journal, events, lock };
  } catch (e) {
    journal?.close();
    if (!released) lock.release();
    throw e;
  }
}

/**
 * The noise event once the base's noise runs have ended: their spread, or a UserError when
 * fewer than 2 of them trained (the base config itself is broken).
 */
export function noiseEvent(st: StudyState, dir: string): JournalEvent {
  const runs = st.trials.filter((t) => t.start.kind === 'noise' && t.end?.status === 'ok');
  if (runs.length < 2) {
    const failed = st.trials.filter((t) => t.start.kind === 'noise' && t.end?.status !== 'ok');
    throw new UserError(`the base config did not train on ${failed.length} of its ${st.header.noise_seeds} seeds (${failed[0]?.end?.reason ?? 'unknown'}); fix the base config (see ${trialDir(dir, failed[0]?.id ?? 1)})`);
  }
  return { type: 'noise', time: now(), noise: estimateNoise(runs.map((t) => t.end!.val_bpb!), runs.map((t) => t.start.seed)) };
}

/** The trial a 'trial' or 'propose' action starts, or the end event when the search has no room left. */
export function trialOf(action: Extract<Action, { do: 'trial' | 'propose' }>, st: StudyState, dir: string): Extract<Action, { do: 'trial' }> | JournalEvent {
  if (action.do === 'trial') return action;
  try {
    return proposeNext(st, dir);
  } catch (e) {
    if (!(e instanceof NoCandidateError)) throw e;
    return { type: 'end', time: now(), reason: `the search ran out of room: ${e.message}` };
  }
}

export function trialStartEvent(trial: Extract<Action, { do: 'trial' }>): Extract<JournalEvent, { type: 'trial_start' }> {
  return { type: 'trial_start', time: now(), id: trial.id, kind: trial.kind, changes: trial.changes, description: trial.description, config: trial.config,
    seed: trial.seed, confirms: trial.confirms, rng: trial.rng };
}

/**
 * The memory a trial needs (MB), and its 'rejected' result when that is over --max-memory-mb:
 * the strategies never propose such a config, but a plan entry or a --resume on a smaller machine can.
 */
export function memoryCheck(trial: Extract<Action, { do: 'trial' }>, st: StudyState): { need: number; rejected: TrialResult | null } {
  const need = estimateTrialMemoryMb(parseConfigText(trial.config, `trial ${trial.id} config`), st.header.threads, st.header.backend);
  if (need <= st.header.max_memory_mb) return { need, rejected: null };
  return {
    need,
    rejected: { status: 'rejected', val_loss: null, val_bpb: null, steps: 0, tokens: 0, seconds: 0, tokens_per_second: 0, peak_rss_mb: 0,
      reason: `needs about ${Math.ceil(need)} MB, over the limit of ${st.header.max_memory_mb} MB (--max-memory-mb)` },
  };
}

export async function runStudy(o: StudyOptions, onEvent: (ev: StudyEvent) => void, shouldStop: () => boolean): Promise<StudyOutcome> {
  const { journal, events, lock } = await openStudy(o, onEvent);
  try {
    const append = (ev: JournalEvent): void => {
      journal!.append(ev);
      events.push(ev);
    };
    const state = () => foldJournal(events);
    let memoryPauses = 0;
    for (;;) {
      const st = state();
      if (shouldStop() && st.ended === null) {
        // not an end: the journal stays open-ended, and --resume carries on from here
        writeDerivedFiles(o.dir, events);
        return { dir: o.dir, events, reason: 'stopped by a signal' };
      }
      const action = nextAction(st, 0);
      if (action.do === 'end') {
        if (st.ended === null) append({ type: 'end', time: now(), reason: action.reason });
        writeDerivedFiles(o.dir, events);
        onEvent({ type: 'end', reason: action.reason });
        return { dir: o.dir, events, reason: action.reason };
      }
      if (action.do === 'noise') {
        const ev = noiseEvent(st, o.dir) as Extract<JournalEvent, { type: 'noise' }>;
        append(ev);
        onEvent({ type: 'noise', noise: ev.noise });
        writeDerivedFiles(o.dir, events);
        continue;
      }
      if (action.do === 'decide') {
        const ev = { type: 'decision' as const, time: now(), ...action.decision };
        append(ev);
        onEvent({ type: 'decision', decision: ev });
        writeDerivedFiles(o.dir, events);
        continue;
      }
      if (action.do === 'wait') throw new Error('a local study never waits: nothing else is in flight'); // nextAction without in-flight trials
      const trial = trialOf(action, st, o.dir);
      if (!('do' in trial)) {
        append(trial);
        continue;
      }
      const { need, rejected } = memoryCheck(trial, st);
      if (rejected) {
        append(trialStartEvent(trial));
        append({ type: 'trial_end', time: now(), id: trial.id, result: rejected });
        onEvent({ type: 'trial_end', id: trial.id, kind: trial.kind, result: rejected });
        writeDerivedFiles(o.dir, events);
        continue;
      }
      // the resource guard: pause (journaled) until the device is fit for a trial. Waiting for
      // memory gives up after 3 pauses (the trial then runs, and is recorded if it fails).
      for (;;) {
        if (shouldStop()) break;
        const health = await readDeviceHealth();
        const v = guardVerdict(health, { minFreeMemoryMb: memoryPauses < 3 ? need : 0, minBatteryPercent: st.header.guard.min_battery_percent, maxTemperatureC: st.header.guard.max_temperature_c });
        if (v.ok) break;
        if (/memory/i.test(v.reason)) memoryPauses++;
        append({ type: 'pause', time: now(), reason: v.reason, seconds: v.waitSeconds });
        onEvent({ type: 'pause', reason: v.reason, seconds: v.waitSeconds });
        await sleep(v.waitSeconds, shouldStop);
      }
      if (shouldStop()) continue;
      memoryPauses = 0;
      append(trialStartEvent(trial));
      const proposedSoFar = st.trials.filter((t) => isCandidate(t.start.kind)).length + (isCandidate(trial.kind) && action.do === 'propose' ? 1 : 0);
      onEvent({ type: 'trial_start', id: trial.id, kind: trial.kind, description: trial.description, index: proposedSoFar,
        of: st.header.plan ? st.header.plan.length : st.header.max_trials, best: st.best.bpb, margin: st.noise?.margin ?? null });
      const result = await executeTrial(o.dir, events, trial, append, onEvent);
      append({ type: 'trial_end', time: now(), id: trial.id, result });
      onEvent({ type: 'trial_end', id: trial.id, kind: trial.kind, result });
      writeDerivedFiles(o.dir, events);
    }
  } finally {
    journal?.close();
    lock.release();
  }
}

/** Draws the next candidate (plan entry or strategy) and the generator state after it. */
export function proposeNext(st: StudyState, dir: string): Extract<Action, { do: 'trial' }> {
  const h = st.header;
  const best = parseConfigText(st.best.config, 'the best config');
  const nextId = st.trials.reduce((m, t) => Math.max(m, t.id), 0) + 1;
  const rng = Rng.from(st.rng ?? new Rng(h.seed).state());
  const candidates = st.trials.filter((t) => isCandidate(t.start.kind));
  let kind: TrialKind;
  let changes: Changes;
  let description: string;
  if (h.plan) {
    const entry = h.plan[candidates.length]!;
    kind = 'plan';
    // the keys that follow others (ffn_hidden with d_model, min_lr with lr...) follow here too
    changes = completeChanges(best, entry.changes);
    description = `${entry.name}: ${describeChanges(best, changes)}${entry.hypothesis ? ` (${entry.hypothesis})` : ''}`;
  } else {
    // every config tried (noise runs included, so the walk never proposes the base again); a
    // confirmation run belongs to its candidate
    const history: TrialRecord[] = st.trials.filter((t) => t.start.kind !== 'confirm' && t.end !== null).map((t) => ({
      strategy: t.start.kind, kept: st.decisions.get(t.id)?.kept ?? false, config: parseConfigText(t.start.config, `trial ${t.id} config`),
    }));
    const p = proposeTrial(best, history, rng, { mode: h.strategies, limits: { maxMemoryMb: h.max_memory_mb, threads: h.threads } });
    kind = p.strategy;
    changes = p.changes;
    description = p.description;
  }
  const cfg = applyChanges(best, changes);
  const seed = 'train.seed' in changes ? Number(changes['train.seed']) : trialSeed(h, kind, nextId, 0);
  void dir;
  return { do: 'trial', id: nextId, kind, changes, description, config: stringifyConfig({ ...cfg, train: { ...cfg.train, seed } }), seed, confirms: null, rng: rng.state(), index: 0 };
}

/**
 * When a trial counts as hung: 6x the time its work should take, its FLOPs (per token x tokens)
 * at the median speed in seconds per FLOP of the trials that finished, so a bigger model gets
 * longer; at least 5 minutes; 4 hours before any trial has finished. A seconds budget: 3x it.
 */
export function trialTimeoutSeconds(cfg: RunConfig, budget: Budget, finished: { config: RunConfig; result: TrialResult }[]): number {
  if (budget.kind === 'seconds') return Math.max(300, 3 * budget.value + 120);
  const work = (c: RunConfig, tokens: number): number => flopsPerToken(c.model) * tokens;
  const rates = finished.filter((f) => f.result.tokens > 0).map((f) => f.result.seconds / work(f.config, f.result.tokens)).sort((a, b) => a - b);
  if (rates.length === 0) return 4 * 3600;
  const rate = rates[Math.floor(rates.length / 2)]!;
  const tokens = cfg.train.steps * cfg.train.batch_size * cfg.model.seq_len * cfg.train.grad_accum;
  return Math.round(Math.max(300, 6 * rate * work(cfg, tokens)));
}

/** Runs one trial (pruning at its rungs when the study prunes and the trial is a candidate). */
async function executeTrial(dir: string, events: JournalEvent[], trial: Extract<Action, { do: 'trial' }>,
  append: (ev: JournalEvent) => void, onEvent: (ev: StudyEvent) => void): Promise<TrialResult> {
  const st = foldJournal(events);
  const h = st.header;
  const tdir = trialDir(dir, trial.id);
  clearTrialDir(tdir);
  let cfg: RunConfig;
  try {
    cfg = trialConfig(parseConfigText(trial.config, `trial ${trial.id} config`), h.budget, h.rungs);
  } catch (e) {
    return { status: 'rejected', val_loss: null, val_bpb: null, steps: 0, tokens: 0, seconds: 0, tokens_per_second: 0, peak_rss_mb: 0, reason: (e as Error).message };
  }
  // earlier learning curves, for median pruning (every finished trial's rung values)
  const earlier = st.trials.filter((t) => t.end && t.id !== trial.id).map((t) => t.rungs.map((r) => r.val_bpb));
  const prune = h.pruning && isCandidate(trial.kind);
  const finished = st.trials.filter((t) => t.end?.status === 'ok').map((t) => ({ config: parseConfigText(t.start.config, `trial ${t.id} config`), result: t.end! }));
  const timeoutSeconds = trialTimeoutSeconds(cfg, h.budget, finished);
  return runTrial({
    config: cfg, runDir: tdir, scorePath: path.join(dir, h.score.file), backend: h.backend, threads: h.threads > 0 ? h.threads : undefined, timeoutSeconds,
    onRung: (point) => {
      append({ type: 'rung', time: now(), id: trial.id, point });
      onEvent({ type: 'rung', id: trial.id, point });
      return prune ? pruneReason(point, earlier) : null;
    },
  });
}

/** Why a trial at this rung is stopped (worse than the median of the earlier curves there), or null. */
export function pruneReason(point: RungPoint, earlier: number[][]): string | null {
  if (!shouldPrune(point.val_bpb, point.rung, earlier)) return null;
  const at = earlier.map((c) => c[point.rung]).filter((v): v is number => v !== undefined).sort((a, b) => a - b);
  const median = at.length % 2 ? at[(at.length - 1) / 2]! : (at[at.length / 2 - 1]! + at[at.length / 2]!) / 2;
  return `rung ${point.rung + 1} (step ${point.step}): ${point.val_bpb.toFixed(4)} bits/byte, worse than the median ${median.toFixed(4)} of ${at.length} earlier trials`;
}
