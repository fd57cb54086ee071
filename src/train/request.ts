import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { loadConfig, type RunConfig } from './config.js';
import { defaultRunDir, latestRunDir, runPaths } from './run.js';

/**
 * The policy that turns what a user asked for (a preset or config file, overrides, data
 * files, a run folder, --resume) into a run config and a run folder. The train command and the
 * research loop both use it, so a run started either way reads its config the same way.
 */

/** Where a run's config comes from, in layers: preset or file, then `set`, then the data options. */
export interface ConfigSources {
  preset?: string;
  /** A TOML config file (complete, or `extends = "PRESET"`). */
  config?: string;
  /** `key=value` overrides (TOML values), applied in order. */
  set?: string[];
  /** A named dataset (replaces data.paths). */
  dataset?: string;
  /** Text files to train on (resolved to absolute paths). */
  data?: string[];
  /** Validation files. */
  val?: string[];
}

/** A TOML value for an override: JSON strings are TOML basic strings. */
export const tomlString = (s: string): string => JSON.stringify(s);

/** The overrides the data options stand for, after `set`. */
export function dataOverrides(src: ConfigSources): string[] {
  if (src.dataset && src.data?.length) throw new UserError('give --dataset or --data, not both');
  const set: string[] = [];
  if (src.dataset) set.push(`data.dataset=${tomlString(src.dataset)}`, 'data.paths=[]');
  if (src.data?.length) set.push(`data.paths=[${src.data.map((p) => tomlString(path.resolve(p))).join(', ')}]`);
  if (src.val?.length) set.push(`data.val_paths=[${src.val.map((p) => tomlString(path.resolve(p))).join(', ')}]`);
  return set;
}

/** The name a run or study is filed under: the preset, the config file's name, or "default". */
export function configName(src: ConfigSources, fallback = 'default'): string {
  if (src.preset && src.config) throw new UserError('give --preset or --config, not both (a config file can say extends = "PRESET")');
  return src.preset ?? (src.config ? path.basename(src.config).replace(/\.toml$/i, '') : fallback);
}

/** Loads the layered config (preset or file, `set`, data options; `extra` last). */
export function loadConfigFrom(src: ConfigSources, extra: string[] = []): RunConfig {
  return loadConfig({ preset: src.config ? undefined : src.preset, file: src.config, set: [...(src.set ?? []), ...dataOverrides(src), ...extra] });
}

/** The run folder: `out`, else with `resume` the latest run of `name` under runs/, else a new timestamped one. */
export function resolveRunDir(opts: { out?: string; resume: boolean; name: string; base?: string; now?: Date }): string {
  const base = opts.base ?? 'runs';
  if (opts.out) return path.resolve(opts.out);
  if (opts.resume) {
    const latest = latestRunDir(base, opts.name);
    if (!latest) throw new UserError(`--resume: no run of "${opts.name}" with a checkpoint under ${base}/; name one with --out DIR`);
    return path.resolve(latest);
  }
  return path.resolve(defaultRunDir(opts.name, opts.now ?? new Date(), base));
}

/**
 * The config of a run about to start or resume. Resuming a run that saved its config.toml
 * starts from that file instead (the preset or file then only named the run to find), so a
 * resumed run keeps its data, schedule and model unless an override changes them.
 */
export function runConfigFor(src: ConfigSources, runDir: string, resume: boolean, extra: string[] = []): RunConfig {
  const saved = runPaths(runDir).config;
  if (resume && fs.existsSync(saved)) return loadConfig({ file: saved, set: [...(src.set ?? []), ...dataOverrides(src), ...extra] });
  return loadConfigFrom(src, extra);
}
