import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { describeWriteError } from '../util/atomic.js';
import type { JournalEvent } from './types.js';

/**
 * The study journal: `<study>/journal.jsonl`, one JSON event per line, appended and fsynced one
 * event at a time. It is the study's only state: everything else (the next trial, the best
 * config, results.tsv, the report) is derived from it, so a study killed at any moment resumes
 * from what the journal says and nothing it recorded is lost.
 *
 * A kill in the middle of an append leaves a last line without its newline: that event never
 * completed (the study had not acted on it), so it is dropped when the journal is opened for
 * appending. Any other unreadable line is corruption the study cannot reason past: it is refused
 * with its line number and nothing is changed.
 */

export const JOURNAL_FILE = 'journal.jsonl';

const EVENT_TYPES = new Set<JournalEvent['type']>(['study', 'trial_start', 'rung', 'trial_end', 'noise', 'decision', 'pause', 'end', 'limits']);

export function journalPath(dir: string): string {
  return path.join(dir, JOURNAL_FILE);
}

function parseLine(line: string, file: string, n: number): JournalEvent {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new UserError(`${file} line ${n}: not valid JSON (${JSON.stringify(line.slice(0, 40))}${line.length > 40 ? '...' : ''}); fix or remove that line to go on`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !EVENT_TYPES.has((v as { type: JournalEvent['type'] }).type)) {
    throw new UserError(`${file} line ${n}: not a study event (no known "type"); fix or remove that line to go on`);
  }
  const ev = v as JournalEvent;
  const needsId = ev.type === 'trial_start' || ev.type === 'rung' || ev.type === 'trial_end' || ev.type === 'decision';
  if (needsId && !Number.isInteger((ev as { id: unknown }).id)) throw new UserError(`${file} line ${n}: a ${ev.type} event without an integer "id"`);
  return ev;
}

/**
 * Reads every complete event. A last line without its newline (a kill mid-append) is left out;
 * `torn` says so. A corrupt complete line is a UserError naming it.
 */
export function readJournal(dir: string): { events: JournalEvent[]; torn: boolean } {
  const file = journalPath(dir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${dir} holds no study (no ${JOURNAL_FILE})`);
    throw e;
  }
  const lines = text.split('\n');
  const last = lines.pop()!; // '' when the file ends with a newline
  const events = lines.map((l, i) => parseLine(l, file, i + 1));
  if (events.length > 0 && events[0]!.type !== 'study') throw new UserError(`${file} line 1: the journal must start with the study event`);
  return { events, torn: last.length > 0 };
}

/** An open journal: appends fsynced events. */
export class Journal {
  private constructor(readonly dir: string, private fd: number) {}

  /**
   * Opens the journal of `dir` for appending, first cutting a torn last line (see above).
   * Creates it when `create` (the folder must exist).
   */
  static open(dir: string, create: boolean): Journal {
    const file = journalPath(dir);
    if (!create) {
      const { torn } = readJournal(dir);
      if (torn) {
        const buf = fs.readFileSync(file);
        const end = buf.lastIndexOf(0x0a) + 1;
        fs.truncateSync(file, end);
      }
    }
    try {
      return new Journal(dir, fs.openSync(file, create ? 'wx' : 'a'));
    } catch (e) {
      throw describeWriteError(e, file);
    }
  }

  /** Appends one event and waits until it is on disk: once this returns, the event survives a kill. */
  append(ev: JournalEvent): void {
    const line = Buffer.from(JSON.stringify(ev) + '\n', 'utf8');
    try {
      let off = 0;
      while (off < line.length) off += fs.writeSync(this.fd, line, off, line.length - off);
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw describeWriteError(e, journalPath(this.dir));
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** The time stamp every event carries. */
export function now(): string {
  return new Date().toISOString();
}
