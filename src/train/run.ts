import fs from 'node:fs';
import path from 'node:path';

/**
 * The run directory, everything a run needs to be resumed, sampled or evaluated on its own:
 *
 *   <run>/config.toml          the resolved RunConfig the run was started with (complete, loadable with --config)
 *   <run>/tokenizer.json       a copy of the dataset's tokenizer (so `sample` works without the dataset)
 *   <run>/log.jsonl            one JSON record per optimizer step (see log.ts)
 *   <run>/checkpoint.json      the manifest of the latest good checkpoint: the commit point
 *   <run>/ckpt-000120/model.safetensors   weights, named as the model's tensors (eval weights for Schedule-Free)
 *   <run>/ckpt-000120/optim.safetensors   optimizer state (and the training weights when they differ)
 *
 * A checkpoint is written into a fresh ckpt-<step> folder first; only then is checkpoint.json
 * replaced (atomically) to point at it, and older folders are removed. A crash at any moment
 * leaves checkpoint.json naming a complete folder.
 */
export interface RunPaths {
  dir: string;
  config: string;
  tokenizer: string;
  log: string;
  manifest: string;
}

export function runPaths(dir: string): RunPaths {
  return {
    dir,
    config: path.join(dir, 'config.toml'),
    tokenizer: path.join(dir, 'tokenizer.json'),
    log: path.join(dir, 'log.jsonl'),
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
