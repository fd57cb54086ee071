/**
 * The runs and research studies the dashboard and `pocketlm status` show: the run folders and
 * study folders directly inside the given roots (or a root that is itself one). Each gets an id
 * `<root name>/<folder name>`; the server resolves ids only through this listing, never by
 * joining a requested name to a path, so a URL cannot reach any other folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LogRecord } from '../train/log.js';
import { lockHolder } from '../train/lock.js';
import { runPaths } from '../train/run.js';
import { journalPath } from '../research/journal.js';
import { isRunFolder } from '../plot/run-data.js';

export interface Listed {
  id: string;
  kind: 'run' | 'study';
  name: string;
  dir: string;
  /** A live process holds the folder's lock (a trainer or a study). */
  running: boolean;
  pid: number | null;
  /** Last modification of its log or journal (ms since the epoch; 0 when there is none yet). */
  updated: number;
  /** The last step record of a run's log (null for studies and runs without one). */
  last: LogRecord | null;
}

const mtime = (file: string): number => {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
};

/** The last step record of a log.jsonl, reading only its tail (logs of long runs are large). */
export function lastLogRecord(file: string): LogRecord | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 16 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    lines.pop(); // a torn or empty last piece
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const r = JSON.parse(lines[i]!) as LogRecord & { event?: string };
        if (typeof r.step === 'number' && r.event === undefined && typeof r.loss === 'number') return r;
      } catch {
        // the first piece may be a partial line: go on
      }
    }
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function describe(id: string, dir: string): Listed | null {
  const study = fs.existsSync(journalPath(dir));
  if (!study && !isRunFolder(dir)) return null;
  const holder = lockHolder(dir);
  const file = study ? journalPath(dir) : runPaths(dir).log;
  return {
    id, kind: study ? 'study' : 'run', name: path.basename(dir), dir, running: holder !== null, pid: holder?.pid ?? null,
    updated: mtime(file), last: study ? null : lastLogRecord(file),
  };
}

/** Everything listed under `roots`, most recently updated first. A root that does not exist lists nothing. */
export function listRuns(roots: readonly string[]): Listed[] {
  const out: Listed[] = [];
  const labels = new Set<string>();
  for (const root of roots) {
    const abs = path.resolve(root);
    let label = path.basename(abs) || 'root';
    for (let k = 2; labels.has(label); k++) label = `${path.basename(abs)}-${k}`;
    labels.add(label);
    const self = describe(label, abs);
    if (self) {
      out.push(self);
      continue;
    }
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(abs, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const item = describe(`${label}/${e.name}`, path.join(abs, e.name));
      if (item) out.push(item);
    }
  }
  return out.sort((a, b) => b.updated - a.updated || (a.id < b.id ? -1 : 1));
}
