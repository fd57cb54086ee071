/**
 * What the charts read from a run folder, for a finished run or one still training in another
 * process: the step records of log.jsonl (rollbacks applied), the samples, and the n-gram
 * baselines the run is compared with (baselines.json, written by the trainer before its first
 * step; for runs from before that file existed, the prepared dataset's cached copy, found
 * through the checkpoint manifest).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Baselines } from '../data/baselines.js';
import { readLog, type LogRecord } from '../train/log.js';
import { runPaths } from '../train/run.js';
import { readSamples, type SampleRecord } from '../train/samples.js';

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null; // absent, or mid-replacement on a platform without atomic rename: try again later
  }
}

const isBaselines = (v: unknown): v is Baselines =>
  typeof v === 'object' && v !== null && ['uniform', 'unigram', 'bigram', 'trigram'].every((k) => typeof (v as Record<string, { nats?: unknown }>)[k]?.nats === 'number');

/** The run's baselines, or null when neither the run nor its dataset has them. */
export function readRunBaselines(dir: string): Baselines | null {
  const own = readJson(runPaths(dir).baselines);
  if (isBaselines(own)) return own;
  const manifest = readJson(runPaths(dir).manifest) as { dataset?: { dir?: unknown } } | null;
  const datasetDir = manifest?.dataset?.dir;
  if (typeof datasetDir !== 'string') return null;
  const cached = readJson(path.join(datasetDir, 'baselines.json'));
  return isBaselines(cached) ? cached : null;
}

export interface RunData {
  name: string;
  dir: string;
  records: LogRecord[];
  samples: SampleRecord[];
  baselines: Baselines | null;
}

export function readRunData(dir: string, name = path.basename(path.resolve(dir))): RunData {
  const p = runPaths(dir);
  return { name, dir, records: readLog(p.log), samples: readSamples(p.samples), baselines: readRunBaselines(dir) };
}

/** True when `dir` looks like a run folder (it has a log or a config written by the trainer). */
export function isRunFolder(dir: string): boolean {
  const p = runPaths(dir);
  return fs.existsSync(p.log) || fs.existsSync(p.config);
}
