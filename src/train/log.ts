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
 * Reads log.jsonl. A process killed mid-append can leave a torn last line: it is skipped,
 * as is anything that is not a record (the log is advisory; the checkpoint is the truth).
 */
export function readLog(file: string): LogRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: LogRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as LogRecord;
      if (typeof r === 'object' && r !== null && typeof r.step === 'number') out.push(r);
    } catch {
      // torn line from a kill: ignore
    }
  }
  return out;
}

/**
 * Keeps only the records of steps <= `lastStep` (rewritten atomically). On resume, the steps
 * after the checkpoint are redone, so their old records would otherwise appear twice.
 */
export function truncateLog(file: string, lastStep: number): void {
  const keep = readLog(file).filter((r) => r.step <= lastStep);
  writeFileAtomicSync(file, keep.map((r) => JSON.stringify(r) + '\n').join(''));
}

/** Appends records to log.jsonl, one line each, flushed to the OS at every write. */
export class LogWriter {
  private fd: number;
  constructor(private readonly file: string) {
    try {
      this.fd = fs.openSync(file, 'a');
    } catch (e) {
      throw describeWriteError(e, file);
    }
  }

  append(rec: LogRecord): void {
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
