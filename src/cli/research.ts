import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseToml } from 'smol-toml';
import { BACKENDS, type RunConfig } from '../train/config.js';
import { configName, loadConfigFrom } from '../train/request.js';
import { UserError } from '../util/errors.js';
import { readJournal } from '../research/journal.js';
import { connectRedis, isRedisUrl, redactUrl, redisTarget, StudyStore } from '../research/redis-store.js';
import { runRedisStudy, WORKER_TTL_MS } from '../research/redis-study.js';
import { runWorker } from '../research/worker.js';
import { cacheDir } from '../util/paths.js';
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
  storage?: string;
  study?: string;
  leaseSeconds?: string;
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

/** --min-battery and --max-temperature, read the same way for a study and for a worker (0 = never). */
function guardFlags(minBattery: string, maxTemperature: string): { minBatteryPercent: number; maxTemperatureC: number } {
  return {
    minBatteryPercent: intFlag('--min-battery', minBattery, 0, 100),
    maxTemperatureC: numberFlag('--max-temperature', maxTemperature, (n) => n >= 0 && n < 150, 'degrees C in [0, 150)'),
  };
}

export function registerResearch(program: Command): void {
  const cmd = program
    .command('research')
    // its options belong before its subcommands (worker, status and report have their own --storage)
    .enablePositionalOptions()
    .description('search for better settings: mutate, train a short trial, score, keep only what beats the noise (report DIR: the table and progress.svg)')
    .option('--preset <name>', 'base preset (tiny, seed-small, default, phone)')
    .option('--config <file>', 'base TOML config')
    .option('--set <key=value>', 'override a base config key (repeatable)', collect, [])
    .option('--dataset <name>', 'tinystories, tinystories-sample or moby-dick')
    .option('--data <paths...>', 'train on these text files')
    .option('--val <paths...>', 'validation files (trials are scored on their first --score-kb)')
    .option('--out <dir>', 'study folder (default research/<preset>-<timestamp>)')
    .option('--resume', 'continue the study in --out')
    .option('--hours <h>', 'stop proposing after this many hours (wall time while trials run, however many workers) (default 8 unless --trials)')
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
    .option('--storage <dir|url>', 'the study folder (as --out), or redis://[user:password@]host:port/db to share the study with workers (the journal stays in --out)')
    .option('--study <name>', 'the study\'s name in Redis (with --storage redis://...)')
    .option('--lease-seconds <s>', 'with Redis: a worker silent this long loses its trial to another', '30')
    .action(async (f: ResearchFlags) => {
      if (f.hours !== undefined && f.trials !== undefined) throw new UserError('give --hours or --trials, not both');
      const redis = f.storage !== undefined && isRedisUrl(f.storage) ? redisTarget(f.storage, f.study) : null;
      if (f.storage !== undefined && !redis) {
        if (f.out !== undefined && path.resolve(f.out) !== path.resolve(f.storage)) throw new UserError('--storage DIR and --out name different folders; give one');
        f.out = f.storage;
      }
      if (redis && !f.out) throw new UserError('--storage redis://... needs --out DIR too: the study\'s journal stays on this machine');
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
          const guard = guardFlags(f.minBattery ?? '20', f.maxTemperature ?? '45');
          const studyOptions: Parameters<typeof runStudy>[0] = {
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
            guard: { min_battery_percent: guard.minBatteryPercent, max_temperature_c: guard.maxTemperatureC },
            scoreBytes: intFlag('--score-kb', f.scoreKb ?? '200', 1, 1 << 20) * 1000,
          };
          const print = (ev: StudyEvent) => { const line = describe(ev); if (line) console.log(line); };
          if (redis) {
            const leaseSeconds = numberFlag('--lease-seconds', f.leaseSeconds ?? '30', (n) => n >= 1 && n <= 3600, 'seconds in [1, 3600]');
            console.log(`sharing the study as "${redis.study}" on ${redactUrl(redis.url)}: start workers with pocketlm research worker --storage URL --study ${redis.study}`);
            return await runRedisStudy(studyOptions, { target: redis, leaseSeconds, say: (l) => console.log(l) }, print, () => stop);
          }
          return await runStudy(studyOptions, print, () => stop);
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
    .command('report [dir]')
    .description('print the study table and write results.tsv, best.toml and progress.svg from its journal (or, with --storage redis://... --study NAME, print it from the Redis mirror)')
    .option('--storage <url>', 'redis://... : read the journal Redis mirrors')
    .option('--study <name>', 'the study\'s name in Redis')
    .action(async (dir: string | undefined, rf: { storage?: string; study?: string }) => {
      if (rf.storage !== undefined && isRedisUrl(rf.storage)) {
        const target = redisTarget(rf.storage, rf.study);
        const events = await withStore(target, (store) => store.mirroredJournal());
        if (events.length === 0) throw new UserError(`Redis holds no study "${target.study}" on ${redactUrl(target.url)}`);
        for (const l of studyReportLines(summarize(events))) console.log(l);
        return;
      }
      const folder = dir ?? rf.storage;
      if (!folder) throw new UserError('research report: give the study folder (or --storage redis://... --study NAME)');
      const abs = path.resolve(folder);
      const { events } = readJournal(abs);
      writeDerivedFiles(abs, events);
      for (const l of studyReportLines(summarize(events))) console.log(l);
      const p = studyPaths(abs);
      console.log(`results: ${p.results}\nchart: ${p.progress}`);
    });

  cmd
    .command('worker')
    .description('work on a study shared through Redis: prepare its data, then take trials, train them and send back their results')
    .requiredOption('--storage <url>', 'redis://[user:password@]host:port/db')
    .requiredOption('--study <name>', 'the study\'s name in Redis')
    .option('--threads <n>', 'kernel threads per trial (0 = one per core)', '0')
    .option('--out <dir>', 'the worker\'s folder (score text, trial folders; default in the cache)')
    .option('--trials <n>', 'stop after this many trials')
    .option('--min-battery <percent>', 'pause below this battery level unless charging (0 = never)', '20')
    .option('--max-temperature <c>', 'cool down above this temperature in degrees C (0 = never)', '45')
    .action(async (wf: { storage: string; study: string; threads: string; out?: string; trials?: string; minBattery: string; maxTemperature: string }) => {
      if (!isRedisUrl(wf.storage)) throw new UserError(`--storage: a worker needs a redis:// URL (got ${JSON.stringify(wf.storage.slice(0, 40))})`);
      const target = redisTarget(wf.storage, wf.study);
      const threads = intFlag('--threads', wf.threads, 0, MAX_THREADS);
      const guard = guardFlags(wf.minBattery, wf.maxTemperature);
      const dir = path.resolve(wf.out ?? path.join(cacheDir(), 'research-workers', `${target.study}-${os.hostname()}-${process.pid}`));
      let stop = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (stop) process.exit(128 + (os.constants.signals[sig] ?? 2));
        stop = true;
        console.log(`${sig}: finishing the trial in progress, then leaving the study (press again to quit at once)`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        console.log(`worker for the study "${target.study}" on ${redactUrl(target.url)} (folder ${dir})`);
        const r = await runWorker({ target, threads, dir, say: (l) => console.log(l), shouldStop: () => stop,
          maxTrials: wf.trials !== undefined ? intFlag('--trials', wf.trials, 1) : null,
          guard });
        console.log(`worker done: ${r.done} trials`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  cmd
    .command('status')
    .description('the workers of a study shared through Redis (host, threads, current trial, last heartbeat) and its progress')
    .requiredOption('--storage <url>', 'redis://[user:password@]host:port/db')
    .requiredOption('--study <name>', 'the study\'s name in Redis')
    .action(async (sf: { storage: string; study: string }) => {
      const target = redisTarget(sf.storage, sf.study);
      const lines = await withStore(target, async (store) => {
        const events = await store.mirroredJournal();
        const workers = await store.liveWorkers(WORKER_TTL_MS);
        const queued = await store.queueLength();
        const listed = workers.sort((a, b) => a.id.localeCompare(b.id)).map((w) =>
          `  ${w.id}  host ${w.host}  threads ${w.threads || 'default'}  ${w.trial !== null ? `trial ${w.trial}` : w.paused ? `paused (${w.paused})` : 'idle'}  ${w.done} done  heartbeat ${((Date.now() - w.heartbeat) / 1000).toFixed(1)} s ago`);
        const count = `${workers.length} live worker${workers.length === 1 ? '' : 's'}`;
        // workers may wait for a study that is being prepared (or that Redis lost): still list them
        if (events.length === 0) return [`study "${target.study}": not in Redis (not published yet, or lost and not yet published again)`, count, ...listed];
        const summary = summarize(events);
        const ended = events.filter((e) => e.type === 'trial_end').length;
        const started = new Set(events.filter((e) => e.type === 'trial_start').map((e) => (e as { id: number }).id)).size;
        const end = events.find((e) => e.type === 'end') as { reason: string } | undefined;
        const out = [`study "${target.study}": ${started} trials started, ${ended} ended, ${queued} queued${end ? `; ended: ${end.reason}` : ''}`];
        return [...out, count, ...listed, ...studyReportLines(summary)];
      });
      for (const l of lines) console.log(l);
    });
}

/** Runs `fn` on a connection to the study's keys, then closes it. */
async function withStore<T>(target: { url: string; study: string }, fn: (store: StudyStore) => Promise<T>): Promise<T> {
  const redis = connectRedis(target.url, (l) => console.log(l));
  try {
    return await fn(new StudyStore(redis, target.study));
  } finally {
    redis.disconnect();
  }
}
