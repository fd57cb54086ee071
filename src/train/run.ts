import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { acquireRunLock, type RunLock } from './lock.js';

/**
 * The run directory, everything a run needs to be resumed, sampled or evaluated on its own:
 *
 *   <run>/config.toml          the resolved RunConfig the run was started with (complete, loadable with --config)
 *   <run>/tokenizer.json       a copy of the dataset's tokenizer (so `sample` works without the dataset)
 *   <run>/log.jsonl            one JSON record per optimizer step (see log.ts)
 *   <run>/samples.jsonl        the samples written at each evaluation (see samples.ts)
 *   <run>/baselines.json       the n-gram baselines of the run's validation split, written at the start (for the report and the dashboard)
 *   <run>/checkpoint.json      the manifest of the latest good checkpoint: the commit point
 *   <run>/ckpt-000120/model.safetensors   weights, named as the model's tensors (eval weights for Schedule-Free)
 *   <run>/ckpt-000120/optim.safetensors   optimizer state (and the training weights when they differ)
 *
 * A checkpoint is written into a fresh ckpt-<step> folder first; only then is checkpoint.json
 * replaced (atomically) to point at it, and older folders are removed. A crash at any moment
 * leaves checkpoint.json naming a complete folder.
 *
 * While a trainer runs, <run>/lock names it (lock.ts): one process per run folder. A trainer
 * claims the folder before anything else (claimRunFolder): a new run refuses a folder holding
 * run files, a resumed run refuses one without checkpoint.json, so no run is ever started over
 * another's weights or log.
 */
export interface RunPaths {
  dir: string;
  config: string;
  tokenizer: string;
  log: string;
  samples: string;
  baselines: string;
  manifest: string;
}

export function runPaths(dir: string): RunPaths {
  return {
    dir,
    config: path.join(dir, 'config.toml'),
    tokenizer: path.join(dir, 'tokenizer.json'),
    log: path.join(dir, 'log.jsonl'),
    samples: path.join(dir, 'samples.jsonl'),
    baselines: path.join(dir, 'baselines.json'),
    manifest: path.join(dir, 'checkpoint.json'),
  };
}

/** Folder name of the checkpoint taken after `step` optimizer steps (zero-padded so they sort). */
export function checkpointFolderName(step: number): string {
  return `ckpt-${String(step).padStart(6, '0')}`;
}

export function isCheckpointFolderName(name: string): boolean {
  return /^ckpt-\d{6,}$/.test(name);
}

/** `runs/<preset>-YYYYMMDD-HHMMSS` under `base` (the current folder by default), in UTC. */
export function defaultRunDir(preset: string, now: Date, base = 'runs'): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  const safe = preset.replace(/[^A-Za-z0-9._-]+/g, '_') || 'run';
  return path.join(base, `${safe}-${stamp}`);
}

/** The most recently modified run folder under `base` whose name starts with `<prefix>-`, or null. */
export function latestRunDir(base: string, prefix: string): string | null {
  let best: { dir: string; mtime: number } | null = null;
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch {
    return null;
  }
  for (const name of names) {
    if (!name.startsWith(`${prefix}-`)) continue;
    const dir = path.join(base, name);
    const manifest = path.join(dir, 'checkpoint.json');
    if (!fs.existsSync(manifest)) continue;
    const mtime = fs.statSync(manifest).mtimeMs;
    if (!best || mtime > best.mtime) best = { dir, mtime };
  }
  return best?.dir ?? null;
}

/** Names of the temp files of atomic writes (util/atomic.ts tempPathFor): `.<name>.tmp-<pid>-<time>`. */
const TEMP_NAME = /^\..+\.tmp-\d+-[0-9a-z]+$/;

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The run files `dir` holds, in a fixed order for messages: checkpoint.json, the ckpt-* folders,
 * best/, a non-empty log.jsonl, config.toml, tokenizer.json. The lock, temp files of killed
 * writes and files that are not pocketlm's do not count.
 */
export function runFilesIn(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const names = new Set(entries.map((e) => e.name));
  const p = runPaths(dir);
  const found: string[] = [];
  if (names.has(path.basename(p.manifest))) found.push(path.basename(p.manifest));
  for (const e of entries.filter((e) => e.isDirectory() && isCheckpointFolderName(e.name)).sort((a, b) => (a.name < b.name ? -1 : 1))) found.push(`${e.name}/`);
  if (entries.some((e) => e.name === 'best' && e.isDirectory())) found.push('best/');
  if (names.has(path.basename(p.log)) && fs.statSync(p.log).size > 0) found.push(path.basename(p.log));
  for (const f of [p.config, p.tokenizer]) if (names.has(path.basename(f))) found.push(path.basename(f));
  return found;
}

/** Refuses (UserError) a folder that a new run (resume=false) or a resumed one must not start in. */
function checkRunFolder(dir: string, resume: boolean): void {
  const found = runFilesIn(dir);
  const hasManifest = exists(runPaths(dir).manifest);
  if (!resume) {
    if (hasManifest) throw new UserError(`${dir} already holds a run with a checkpoint; add --resume to continue it, or choose another --out`);
    if (found.length) {
      throw new UserError(`${dir} already holds run files (${found.join(', ')}); choose another --out, or move them away to start a new run there`);
    }
    return;
  }
  if (hasManifest) return;
  if (found.length) {
    throw new UserError(
      `--resume: ${dir} holds ${found.join(', ')} but no checkpoint.json, so there is no checkpoint to continue from; ` +
        'nothing was changed: restore checkpoint.json, or start a new run with another --out',
    );
  }
  throw new UserError(`--resume: ${dir} holds no run to resume (no checkpoint.json); drop --resume to start a new run there`);
}

/**
 * Removes what killed writes leave behind: temp files of atomic writes (and temp folders named
 * like them) in `dir` and its direct subfolders. Only for a folder this process has locked:
 * then no other writer can be mid-write. Returns the removed paths, relative to `dir`.
 */
export function removeWriteLeftovers(dir: string): string[] {
  const removed: string[] = [];
  const sweep = (folder: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(folder, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(folder, e.name);
      if (TEMP_NAME.test(e.name)) {
        fs.rmSync(p, { recursive: true, force: true });
        removed.push(path.relative(dir, p));
      } else if (e.isDirectory() && depth === 0) {
        sweep(p, 1);
      }
    }
  };
  sweep(dir, 0);
  return removed;
}

/**
 * Removes the ckpt-* folders other than `keep` (the one checkpoint.json names): leftovers of a
 * save killed before its commit (a newer folder) or before removing the older one. Call it only
 * once the kept checkpoint has been verified, so a run whose manifest turns out bad keeps them.
 */
export function removeOrphanCheckpoints(dir: string, keep: string): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (name === keep || !isCheckpointFolderName(name)) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The lock on a claimed run folder, and whether claiming it created the folder. */
export interface RunClaim extends RunLock {
  created: boolean;
}

/**
 * Takes a run folder for a trainer: refuses --resume of a folder that does not exist, creates
 * the folder of a new run, takes its lock (refused while another process holds it), refuses a
 * folder the run must not start in (checkRunFolder), and removes the temp files of killed writes.
 * The caller releases the returned lock when the run ends (it is also released at process exit).
 */
export function claimRunFolder(dir: string, resume: boolean): RunClaim {
  let stat: fs.Stats | null = null;
  try {
    stat = fs.statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read run folder ${dir}: ${(e as Error).message}`);
  }
  if (stat && !stat.isDirectory()) throw new UserError(`run folder ${dir} is not a folder`);
  const created = !stat;
  if (!stat) {
    if (resume) throw new UserError(`--resume: run folder ${dir} does not exist; check --out, or drop --resume to start a new run`);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create run folder ${dir}: ${(e as Error).message}`);
    }
  }
  const lock = acquireRunLock(dir);
  try {
    checkRunFolder(dir, resume);
    removeWriteLeftovers(dir);
  } catch (e) {
    lock.release();
    throw e;
  }
  return { ...lock, created };
}
