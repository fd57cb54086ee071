import fs from 'node:fs';
import { writeFileAtomicSync, describeWriteError } from '../util/atomic.js';

/** One line of log.jsonl: the state after optimizer step `step` (val_* only on evaluation steps). */
export interface LogRecord {
  step: number;
  /** Mean training loss over this step's micro-batches, nats/token. */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  /** Tokens processed so far (all micro-batches of all steps). */
  tokens: number;
  tokens_per_second: number;
  /** Wall-clock seconds of training so far, across resumes. */
  elapsed: number;
  val_loss?: number;
  val_bpb?: number;
}

/**
 * What the trainer decided, logged between the step records: a rollback (the steps after
 * `to_step` logged so far are discarded and redone) or the time budget turned into steps.
 */
export interface RollbackEvent {
  event: 'rollback';
  /** The step that diverged (it was not taken). */
  step: number;
  /** The step of the good state the run went back to. */
  to_step: number;
  /** What was wrong, one clause ("the loss (NaN) is not finite"). */
  reason: string;
  /** Learning-rate multiplier from now on (the product of every rollback's factor). */
  lr_scale: number;
  /** Rollbacks so far in this run, this one included. */
  rollbacks: number;
}

export interface BudgetEvent {
  event: 'budget';
  /** The step after which the time was turned into steps. */
  step: number;
  time_seconds: number;
  /** The run stops after this many steps (it schedules its learning rate by them). */
  steps: number;
  seconds_per_step: number;
}

export type LogEvent = RollbackEvent | BudgetEvent;
export type LogEntry = LogRecord | LogEvent;

const isEvent = (e: LogEntry): e is LogEvent => typeof (e as LogEvent).event === 'string';

/** A run file's text, or null when it does not exist yet (any other read error is thrown). */
export function readTextIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Every entry of log.jsonl in order. A process killed mid-append can leave a torn last line:
 * it is skipped, as is anything that is not an entry (the log is advisory; the checkpoint is the truth).
 */
export function readLogEntries(file: string): LogEntry[] {
  const text = readTextIfExists(file);
  if (text === null) return [];
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as LogEntry;
      if (typeof r === 'object' && r !== null && typeof r.step === 'number') out.push(r);
    } catch {
      // torn line from a kill: ignore
    }
  }
  return out;
}

/**
 * The step records of the run as it stands: one per logged step, in order. Records that a
 * later rollback discarded (steps after its to_step, logged before it) are left out.
 */
export function readLog(file: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const e of readLogEntries(file)) {
    if (!isEvent(e)) out.push(e);
    else if (e.event === 'rollback') while (out.length && out[out.length - 1]!.step > e.to_step) out.pop();
  }
  return out;
}

/** The rollback and budget events, in order. */
export function readLogEvents(file: string): LogEvent[] {
  return readLogEntries(file).filter(isEvent);
}

/**
 * Keeps the entries up to the last one at a step <= `lastStep` (rewritten atomically): what
 * was logged before the checkpoint at `lastStep` was taken. On resume the steps after the
 * checkpoint are redone, so their old entries would otherwise appear twice. Entries are in
 * time order and a checkpoint refreshes the rollback point, so nothing logged after the
 * checkpoint has a step <= lastStep; records of steps > lastStep logged before it (then
 * discarded by a rollback) are kept with their rollback.
 */
export function truncateLog(file: string, lastStep: number): void {
  const all = readLogEntries(file);
  let end = 0;
  for (let i = 0; i < all.length; i++) if (all[i]!.step <= lastStep) end = i + 1;
  writeFileAtomicSync(file, all.slice(0, end).map((r) => JSON.stringify(r) + '\n').join(''));
}

/** Appends entries to log.jsonl, one line each, flushed to the OS at every write. */
export class LogWriter {
  private fd: number;
  constructor(private readonly file: string) {
    try {
      this.fd = fs.openSync(file, 'a');
    } catch (e) {
      throw describeWriteError(e, file);
    }
  }

  append(rec: LogEntry): void {
    const buf = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
    try {
      fs.writeSync(this.fd, buf);
    } catch (e) {
      throw describeWriteError(e, this.file);
    }
  }

  close(): void {
    try {
      fs.fsyncSync(this.fd);
    } catch {
      // nothing useful to do: the records already reached the OS
    }
    fs.closeSync(this.fd);
  }
}
