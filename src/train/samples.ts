import fs from 'node:fs';
import { describeWriteError, writeFileAtomicSync } from '../util/atomic.js';
import { readTextIfExists } from './log.js';

/**
 * `<run>/samples.jsonl`: the samples the trainer writes at each evaluation, one JSON line per
 * evaluation, so another process (the dashboard) can show them while the run goes on and after
 * it ended. Each line is appended with one write() on a file opened O_APPEND: a reader sees
 * either the whole line or, after a kill mid-write, a torn last line without its newline,
 * which readSamples skips (like log.jsonl, the file is advisory: the checkpoint is the truth).
 */
export interface SampleRecord {
  step: number;
  /** Wall-clock seconds of training so far, across resumes. */
  elapsed: number;
  samples: string[];
}

export const SAMPLES_FILE = 'samples.jsonl';

/** Appends one record as one line, in a single write (the file is opened and closed each time: evaluations are rare). */
export function appendSamples(file: string, rec: SampleRecord): void {
  const line = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
  let fd: number;
  try {
    fd = fs.openSync(file, 'a');
  } catch (e) {
    throw describeWriteError(e, file);
  }
  try {
    // One write() call: O_APPEND moves to the end and writes the line without another writer's bytes in between.
    const n = fs.writeSync(fd, line);
    if (n !== line.length) throw new Error(`short write to ${file} (${n} of ${line.length} bytes)`);
  } catch (e) {
    throw describeWriteError(e, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** A parsed line, or null when it is torn or not a sample record. */
export function parseSampleLine(line: string): SampleRecord | null {
  try {
    const r = JSON.parse(line) as SampleRecord;
    if (typeof r !== 'object' || r === null || typeof r.step !== 'number' || !Array.isArray(r.samples)) return null;
    if (!r.samples.every((s) => typeof s === 'string')) return null;
    return { step: r.step, elapsed: typeof r.elapsed === 'number' ? r.elapsed : 0, samples: r.samples };
  } catch {
    return null;
  }
}

/** Every complete record in order ([] when the file does not exist). */
export function readSamples(file: string): SampleRecord[] {
  const text = readTextIfExists(file);
  if (text === null) return [];
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or a torn line without one
  const out: SampleRecord[] = [];
  for (const l of lines) {
    const r = parseSampleLine(l);
    if (r) out.push(r);
  }
  return out;
}

/**
 * Keeps the records of steps <= `lastStep` (rewritten atomically; nothing when the file does not
 * exist): on resume the steps after the checkpoint are redone and sampled again.
 */
export function truncateSamples(file: string, lastStep: number): void {
  if (!fs.existsSync(file)) return;
  const kept = readSamples(file).filter((r) => r.step <= lastStep);
  writeFileAtomicSync(file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
}
