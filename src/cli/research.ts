import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseToml } from 'smol-toml';
import { BACKENDS, type RunConfig } from '../train/config.js';
import { configName, loadConfigFrom } from '../train/request.js';
import { UserError } from '../util/errors.js';
import { readJournal } from '../research/journal.js';
import { runStudy, writeDerivedFiles, studyPaths, type StudyEvent } from '../research/study.js';
import { applyChanges } from '../research/space.js';
import { summarize } from '../research/summary.js';
import { studyReportLines } from '../research/report.js';
import type { Budget, PlanEntry, TrialResult } from '../research/types.js';
import { choiceFlag, intFlag, MAX_THREADS, numberFlag } from './flags.js';

interface ResearchFlags {
  preset?: string;
  config?: string;
  set: string[];
  dataset?: string;
  data?: string[];
  val?: string[];
  out?: string;
  resume?: boolean;
  hours?: string;
  trials?: string;
  budgetTokens?: string;
  budgetSteps?: string;
  budgetSeconds?: string;
  seed?: string;
  plan?: string;
  prune: boolean;
  strategies?: string;
  maxMemoryMb?: string;
  threads?: string;
  backend?: string;
  noiseSeeds?: string;
  finalSeeds?: string;
  rungs?: string;
  minBattery?: string;
  maxTemperature?: string;
  scoreKb?: string;
}

const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** The default trial budget: long enough to rank settings, short enough for ~30 trials an hour on a laptop core. */
const DEFAULT_BUDGET_TOKENS = 300_000;

/**
 * A --plan file (TOML): [[experiment]] tables with name, hypothesis and a `changes` table of
 * dotted config keys. Every entry is checked against the base config now, so a typo stops the
 * study before its first trial.
 */
function readPlan(file: string, base: RunConfig): PlanEntry[] {
  let data: Record<string, unknown>;
  try {
    data = parseToml(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`--plan: ${file} does not exist`);
    throw new UserError(`--plan ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  for (const k of Object.keys(data)) if (k !== 'experiment') throw new UserError(`--plan ${file}: unknown key "${k}" (a plan holds [[experiment]] tables)`);
  const list = data.experiment;
  if (!Array.isArray(list) || list.length === 0) throw new UserError(`--plan ${file}: no [[experiment]] tables`);
  return list.map((raw, i) => {
    const where = `--plan ${file}, experiment ${i + 1}`;
    const e = raw as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!['name', 'hypothesis', 'changes'].includes(k)) throw new UserError(`${where}: unknown key "${k}" (name, hypothesis, changes)`);
    if (typeof e.name !== 'string' || !e.name.trim()) throw new UserError(`${where}: needs a name`);
    const changes = e.changes;
    if (typeof changes !== 'object' || changes === null || Array.isArray(changes) || Object.keys(changes).length === 0) {
      throw new UserError(`${where} ("${e.name}"): needs a changes table, e.g. changes = { "optim.lr" = 1e-3 }`);
    }
    for (const [k, v] of Object.entries(changes)) if (typeof v !== 'number' && typeof v !== 'string') throw new UserError(`${where} ("${e.name}"): ${k} must be a number or a string`);
    try {
      applyChanges(base, changes as Record<string, number | string>);
    } catch (err) {
      throw new UserError(`${where} ("${e.name}"): ${(err as Error).message}`);
    }
    return { name: e.name, hypothesis: typeof e.hypothesis === 'string' ? e.hypothesis : '', changes: changes as Record<string, number | string> };
  });
}

function budgetFrom(f: ResearchFlags): Budget {
  const given = [f.budgetTokens !== undefined, f.budgetSteps !== undefined, f.budgetSeconds !== undefined].filter(Boolean).length;
  if (given > 1) throw new UserError('give one of --budget-tokens, --budget-steps, --budget-seconds');
  if (f.budgetSteps !== undefined) return { kind: 'steps', value: intFlag('--budget-steps', f.budgetSteps, 1) };
  if (f.budgetSeconds !== undefined) return { kind: 'seconds', value: intFlag('--budget-seconds', f.budgetSeconds, 1) };
  return { kind: 'tokens', value: f.budgetTokens !== undefined ? intFlag('--budget-tokens', f.budgetTokens, 1) : DEFAULT_BUDGET_TOKENS };
}

function fmtResult(r: TrialResult): string {
  if (r.status === 'ok') return `${r.val_bpb!.toFixed(4)} bits/byte, ${Math.round(r.tokens_per_second).toLocaleString('en-US')} tok/s, ${r.seconds.toFixed(0)} s, ${r.peak_rss_mb.toFixed(0)} MB`;
  return `${r.status}: ${r.reason}`;
}

function describe(ev: StudyEvent): string | null {
  switch (ev.type) {
    case 'prepare': return ev.progress.notice ? `note: ${ev.progress.notice}` : null;
    case 'created': return `study folder: ${ev.dir} (budget ${ev.study.budget.value.toLocaleString('en-US')} ${ev.study.budget.kind} per trial; scored on ${ev.study.score.docs} validation stories, ${(ev.study.score.bytes / 1e3).toFixed(0)} KB)`;
    case 'resumed': return `resuming the study in ${ev.dir}`;
    case 'trial_start': {
      const of = ev.of !== null ? ` of ${ev.of}` : '';
      const where = ev.kind === 'noise' || ev.kind === 'final' || ev.kind === 'confirm' ? ev.kind : `trial ${ev.index}${of} [${ev.kind}]`;
      const best = ev.best !== null ? ` | best ${ev.best.toFixed(4)} (margin ${ev.margin!.toFixed(4)})` : '';
      return `#${ev.id} ${where}: ${ev.description}${best}`;
    }
    case 'rung': return `   rung ${ev.point.rung + 1}: step ${ev.point.step}, ${ev.point.val_bpb.toFixed(4)} bits/byte`;
    case 'trial_end': return `   #${ev.id} ${fmtResult(ev.result)}`;
    case 'noise': return `noise of the base config over ${ev.noise.bpb.length} seeds: mean ${ev.noise.mean.toFixed(4)}, sd ${ev.noise.sd.toFixed(4)} bits/byte; ` +
      `keep rule: a change is kept when its mean over 2 seeds is below the best by more than ${ev.noise.margin.toFixed(4)}`;
    case 'decision': return `   ${ev.decision.kept ? 'KEPT' : 'not kept'}: ${ev.decision.reason}`;
    case 'pause': return `pause ${ev.seconds} s: ${ev.reason}`;
    case 'end': return `study ended: ${ev.reason}`;
  }
}

export function registerResearch(program: Command): void {
  const cmd = program
    .command('research')
    .description('search for better settings: mutate, train a short trial, score, keep only what beats the noise (report DIR: the table and progress.svg)')
    .option('--preset <name>', 'base preset (tiny, seed-small, default, phone)')
    .option('--config <file>', 'base TOML config')
    .option('--set <key=value>', 'override a base config key (repeatable)', collect, [])
    .option('--dataset <name>', 'tinystories, tinystories-sample or moby-dick')
    .option('--data <paths...>', 'train on these text files')
    .option('--val <paths...>', 'validation files (trials are scored on their first --score-kb)')
    .option('--out <dir>', 'study folder (default research/<preset>-<timestamp>)')
    .option('--resume', 'continue the study in --out')
    .option('--hours <h>', 'stop proposing after this many hours of trials (default 8 unless --trials)')
    .option('--trials <n>', 'stop after this many proposed trials')
    .option('--budget-tokens <n>', `tokens each trial trains on (default ${DEFAULT_BUDGET_TOKENS.toLocaleString('en-US')})`)
    .option('--budget-steps <n>', 'optimizer steps per trial instead')
    .option('--budget-seconds <s>', 'seconds per trial instead (a busy machine then changes results)')
    .option('--seed <s>', 'the study seed (mutations and trial seeds)', '1')
    .option('--plan <file>', 'run the experiments of this TOML file ([[experiment]] name, hypothesis, changes) instead of mutations')
    .option('--no-prune', 'never stop a trial early (default: median pruning at the rungs)')
    .option('--strategies <mode>', 'weighted (the six strategies, re-weighted by win rate) | random (random mutations only)', 'weighted')
    .option('--max-memory-mb <n>', 'reject configs whose estimated memory exceeds this (default 80% of available memory)')
    .option('--threads <n>', 'kernel threads per trial (0 = one per core)', '0')
    .option('--backend <name>', 'auto | wasm | native | js', 'auto')
    .option('--noise-seeds <n>', 'seeds of the base config to measure the noise on (>= 2; 4 keeps ~4% of pure seed changes, 2 ~11%)', '4')
    .option('--final-seeds <n>', 'fresh seeds the best config is retrained on at the end (0 = none)', '3')
    .option('--rungs <n>', 'evaluations per trial for pruning', '3')
    .option('--min-battery <percent>', 'pause below this battery level unless charging (0 = never)', '20')
    .option('--max-temperature <c>', 'cool down above this temperature in degrees C (0 = never)', '45')
    .option('--score-kb <n>', 'KB of validation text every trial is scored on', '200')
    .action(async (f: ResearchFlags) => {
      if (f.hours !== undefined && f.trials !== undefined) throw new UserError('give --hours or --trials, not both');
      if (f.resume && !f.out) throw new UserError('--resume needs --out DIR (the study folder)');
      const name = configName(f, 'seed-small');
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
      const dir = path.resolve(f.out ?? path.join('research', `${name}-${stamp}`));
      const base = loadConfigFrom({ ...f, preset: f.config ? undefined : name });
      const seed = intFlag('--seed', f.seed ?? '1', 0, 2 ** 32 - 1);
      const threads = intFlag('--threads', f.threads ?? '0', 0, MAX_THREADS);
      const available = Math.floor((os.freemem() / 2 ** 20) * 0.8);
      const noiseSeeds = intFlag('--noise-seeds', f.noiseSeeds ?? '4', 2, 20);
      const outcome = await (async () => {
        let stop = false;
        const onSignal = (sig: NodeJS.Signals) => {
          if (stop) process.exit(128 + (os.constants.signals[sig] ?? 2));
          stop = true;
          console.log(`${sig}: finishing the trial in progress, then stopping (resume with --resume --out ${JSON.stringify(dir)}; press again to quit at once)`);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          return await runStudy({
            dir, resume: !!f.resume, base, baseName: name, budget: budgetFrom(f),
            // --resume with --hours or --trials: the study goes on under the new limit
            limits: f.resume && (f.hours !== undefined || f.trials !== undefined)
              ? { maxTrials: f.trials !== undefined ? intFlag('--trials', f.trials, 1) : null, hours: f.hours !== undefined ? numberFlag('--hours', f.hours, (n) => n > 0, 'a positive number') : null }
              : null,
            maxTrials: f.trials !== undefined ? intFlag('--trials', f.trials, 1) : null,
            hours: f.trials !== undefined ? null : f.hours !== undefined ? numberFlag('--hours', f.hours, (n) => n > 0, 'a positive number') : 8,
            seed, pruning: f.prune, strategies: choiceFlag('--strategies', f.strategies ?? 'weighted', ['weighted', 'random'] as const),
            plan: f.plan ? readPlan(f.plan, base) : null,
            maxMemoryMb: f.maxMemoryMb !== undefined ? intFlag('--max-memory-mb', f.maxMemoryMb, 64) : available,
            threads, backend: choiceFlag('--backend', f.backend ?? 'auto', BACKENDS),
            noiseSeeds, finalSeeds: intFlag('--final-seeds', f.finalSeeds ?? '3', 0, 20), rungs: intFlag('--rungs', f.rungs ?? '3', 0, 20),
            guard: {
              min_battery_percent: intFlag('--min-battery', f.minBattery ?? '20', 0, 100),
              max_temperature_c: numberFlag('--max-temperature', f.maxTemperature ?? '45', (n) => n >= 0 && n < 150, 'degrees C in [0, 150)'),
            },
            scoreBytes: intFlag('--score-kb', f.scoreKb ?? '200', 1, 1 << 20) * 1000,
          }, (ev) => { const line = describe(ev); if (line) console.log(line); }, () => stop);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      })();
      for (const l of studyReportLines(summarize(outcome.events))) console.log(l);
      const p = studyPaths(dir);
      console.log(`journal: ${p.journal}\nresults: ${p.results}\nchart: ${p.progress}${fs.existsSync(p.best) ? `\nbest config: ${p.best} (pocketlm train --config ${JSON.stringify(p.best)})` : ''}`);
      if (outcome.reason === 'stopped by a signal') process.exitCode = 130;
    });

  cmd
    .command('report <dir>')
    .description('print the study table and write results.tsv, best.toml and progress.svg from its journal')
    .action((dir: string) => {
      const abs = path.resolve(dir);
      const { events } = readJournal(abs);
      writeDerivedFiles(abs, events);
      for (const l of studyReportLines(summarize(events))) console.log(l);
      const p = studyPaths(abs);
      console.log(`results: ${p.results}\nchart: ${p.progress}`);
    });
}
