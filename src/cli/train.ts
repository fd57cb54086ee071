import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { BACKENDS } from '../train/config.js';
import { train, type TrainEvent, type TrainResult } from '../train/trainer.js';
import { configName, resolveRunDir, runConfigFor, tomlString } from '../train/request.js';
import { choiceFlag, intFlag, MAX_THREADS } from './flags.js';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { validationChartLines } from '../plot/terminal.js';

/**
 * A live status line on a terminal (rewritten in place), or plain lines when the output is
 * a pipe or a file: `update` only draws on a TTY, `line` always prints a full line.
 */
class StatusLine {
  readonly isTTY: boolean;
  private shown = false;
  private lastDraw = 0;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.isTTY = !!out.isTTY;
  }

  /** Redraws the line, at most ~10 times a second (tiny models take thousands of steps a second). */
  update(text: string): void {
    if (!this.isTTY) return;
    const now = Date.now();
    if (this.shown && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = Math.max(20, (this.out.columns || 100) - 1);
    this.out.write(`\r\x1b[2K${text.length > width ? text.slice(0, width) : text}`);
    this.shown = true;
  }

  /** Prints a line above the status line (which the next update redraws). */
  line(text: string): void {
    this.clear();
    this.out.write(text + '\n');
  }

  clear(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

/** 1234 -> "1,234"; 1234567 -> "1.23M". */
function formatCount(n: number): string {
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  return Math.round(n).toLocaleString('en-US');
}

interface TrainFlags {
  preset?: string;
  config?: string;
  set: string[];
  dataset?: string;
  data?: string[];
  val?: string[];
  out?: string;
  time?: string;
  steps?: string;
  resume?: boolean;
  backend?: string;
  threads?: string;
  /** true (the default port) or the port given. */
  dashboard?: boolean | string;
}

const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** The flags that become config overrides (checked here: one line naming the flag). */
function flagOverrides(f: TrainFlags): string[] {
  const set: string[] = [];
  if (f.steps !== undefined) set.push(`train.steps=${intFlag('--steps', f.steps, 0)}`);
  if (f.time !== undefined) set.push(`train.time_seconds=${intFlag('--time', f.time, 0)}`);
  if (f.backend !== undefined) set.push(`train.backend=${tomlString(choiceFlag('--backend', f.backend, BACKENDS))}`);
  if (f.threads !== undefined) set.push(`train.threads=${intFlag('--threads', f.threads, 0, MAX_THREADS)}`);
  return set;
}

/** Downloads in MB with rate and ETA; other phases as a percentage or a count. */
function prepareAmount(p: { phase: string; done: number; total: number }, seconds: number): string {
  if (p.phase.startsWith('download')) {
    const rate = seconds > 0 ? p.done / seconds : 0;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const eta = rate > 0 && p.total > 0 ? ` ETA ${formatDuration((p.total - p.done) / rate)}` : '';
    return `${mb(p.done)}${p.total > 0 ? `/${mb(p.total)}` : ''} MB ${mb(rate)} MB/s${eta}`;
  }
  return p.total > 0 ? `${Math.floor((100 * p.done) / p.total)}%` : formatCount(p.done);
}

function describeStart(ev: Extract<TrainEvent, { type: 'start' }>): string[] {
  const b = ev.backend;
  return [
    `run folder: ${ev.runDir}`,
    `backend: ${b.name} (${b.threads} thread${b.threads === 1 ? '' : 's'}): ${b.reason}`,
    `model: ${formatCount(ev.params)} parameters${ev.mixer === 'attention' ? '' : ` (${ev.mixer} time mixing)`}; ${formatCount(ev.tokensPerStep)} tokens per step`,
    `data: ${ev.datasetDir}${ev.datasetReused ? ' (reused)' : ''}: ${formatCount(ev.trainTokens)} train / ${formatCount(ev.valTokens)} val tokens`,
    ev.importedFrom !== null
      ? `starting from the weights imported from ${ev.importedFrom}, with fresh optimizer state (fine-tuning)`
      : ev.resumedFromStep === null ? 'starting from scratch' : `resuming from the checkpoint at step ${ev.resumedFromStep}`,
  ];
}

/** One line for a rollback after a divergence. */
function describeRollback(ev: Extract<TrainEvent, { type: 'rollback' }>): string {
  const r = ev.rollback;
  return `step ${r.step}: ${r.reason}; rolled back to step ${r.to_step}, learning rate x${r.lr_scale} from now on (rollback ${r.rollbacks} of at most ${ev.maxRollbacks})`;
}

function describeBudget(b: { time_seconds: number; steps: number; seconds_per_step: number; step: number }): string {
  return `time budget of ${b.time_seconds} s became ${formatCount(b.steps)} steps (${b.seconds_per_step.toFixed(3)} s per step measured up to step ${b.step}); the schedule and the stop follow the steps from now on`;
}

function report(r: TrainResult): string[] {
  const why = r.stopReason === 'signal' ? 'interrupted' : r.stopReason === 'time' ? 'time budget used' : 'step count reached';
  const lines = [`stopped after step ${r.step} (${why}), ${formatCount(r.tokens)} tokens in ${formatDuration(r.elapsedSeconds)}`];
  if (r.stepBudget) lines.push(`time budget of ${r.stepBudget.time_seconds} s became ${formatCount(r.stepBudget.steps)} steps (measured at step ${r.stepBudget.at_step})`);
  if (r.rollbacks > 0) lines.push(`${r.rollbacks} rollback${r.rollbacks === 1 ? '' : 's'} after a divergence; learning rate x${r.lrScale}`);
  if (r.stopReason === 'signal') {
    lines.push(`checkpoint saved in ${r.runDir}; continue with: pocketlm train --out ${JSON.stringify(r.runDir)} --resume`);
    return lines;
  }
  lines.push('', `${'validation (same split)'.padEnd(38)} nats/token   bits/byte`);
  const row = (name: string, nats: number, bpb: number) => `  ${name.padEnd(36)} ${nats.toFixed(4).padStart(10)}  ${bpb.toFixed(4).padStart(10)}`;
  if (r.best) lines.push(row(`this model, best (step ${r.best.step})`, r.best.valLoss, r.best.valBpb));
  lines.push(row(`this model, last (step ${r.step})`, r.valLoss!, r.valBpb!));
  if (r.baselines) {
    for (const k of ['trigram', 'bigram', 'unigram', 'uniform'] as const) {
      const e = r.baselines[k];
      lines.push(row(`${k}${e.smoothing ? ` (${e.smoothing})` : ''}`, e.nats, e.bpb));
    }
  }
  lines.push('');
  if (r.best) lines.push(`best weights: ${path.join(r.runDir, 'best')} (step ${r.best.step}); last: ${path.join(r.runDir, 'checkpoint.json')} (step ${r.step})`);
  else lines.push(`weights: ${path.join(r.runDir, 'checkpoint.json')}`);
  lines.push(`try: pocketlm sample --run ${JSON.stringify(r.runDir)}${r.best ? ' (the best checkpoint; --checkpoint last for the last)' : ''}`);
  return lines;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a model (prepares the data first if needed)')
    .option('--preset <name>', 'preset from presets/ (tiny, seed-small, default, phone)')
    .option('--config <file>', 'TOML config file (complete, or extends = "PRESET")')
    .option('--set <key=value>', 'override a config key, e.g. --set optim.lr=1e-3 (repeatable)', collect, [])
    .option('--dataset <name>', 'tinystories (downloads; without network the bundled sample), tinystories-sample or moby-dick (offline)')
    .option('--data <paths...>', 'train on these text files / folders instead')
    .option('--val <paths...>', 'validation files')
    .option('--out <dir>', 'run folder (default runs/<preset>-<timestamp>)')
    .option('--time <seconds>', 'wall-clock budget in seconds (0 = none)')
    .option('--steps <n>', 'optimizer steps (0 = none)')
    .option('--resume', 'continue the run in --out (or the latest run of the preset) from its checkpoint')
    .option('--backend <name>', 'auto | wasm | native | js')
    .option('--threads <n>', 'kernel threads (0 = one per core)')
    .option('--dashboard [port]', 'also serve the dashboard on 127.0.0.1 (port 8484 unless given) while the run trains')
    .action(async (f: TrainFlags) => {
      const name = configName(f);
      const runDir = resolveRunDir({ out: f.out, resume: !!f.resume, name });
      // The run folder itself is checked and locked by the trainer (train/run.ts claimRunFolder).
      const config = runConfigFor(f, runDir, !!f.resume, flagOverrides(f));

      const status = new StatusLine(process.stdout);
      // The dashboard lists the folder holding the run and opens on the run; it stops with the run.
      let dashboard: Dashboard | null = null;
      if (f.dashboard !== undefined) {
        const port = f.dashboard === true ? 8484 : intFlag('--dashboard', String(f.dashboard), 0, 65535);
        const root = path.dirname(path.resolve(runDir));
        dashboard = await startDashboard({ roots: [root], port });
        status.line(`dashboard: ${dashboard.url}#runs=${encodeURIComponent(`${path.basename(root)}/${path.basename(runDir)}`)} (stops when the run ends; pocketlm dashboard --runs ${JSON.stringify(root)} shows it afterwards)`);
      }
      // The first signal received; the exit code says which (128 + its number: 130 SIGINT, 143 SIGTERM).
      let stopSignal: NodeJS.Signals | null = null;
      let started = false;
      const signalExitCode = (sig: NodeJS.Signals) => 128 + (os.constants.signals[sig] ?? 2);
      // process.exit runs the run lock's exit hook, so the folder is released on these paths too.
      const onSignal = (sig: NodeJS.Signals) => {
        if (!started) {
          // Still preparing data: every file it writes is atomic, so there is nothing to save.
          status.line(`${sig}: stopped before training started`);
          process.exit(signalExitCode(sig));
        }
        if (stopSignal) {
          status.line(`${sig} again: exiting without saving (the last checkpoint is kept)`);
          process.exit(signalExitCode(stopSignal));
        }
        stopSignal = sig;
        status.line(`${sig}: finishing this step, then saving a checkpoint (press again to quit at once)`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);

      let budgetSteps = 0;
      let lastPhase = '';
      let phaseStart = Date.now();
      const onEvent = (ev: TrainEvent): void => {
        switch (ev.type) {
          case 'prepare': {
            const p = ev.progress;
            if (p.notice) { status.line(`note: ${p.notice}`); break; }
            if (p.phase !== lastPhase) phaseStart = Date.now();
            if (status.isTTY) status.update(`prepare: ${p.phase} ${prepareAmount(p, (Date.now() - phaseStart) / 1000)}`);
            else if (p.phase !== lastPhase) status.line(`prepare: ${p.phase}`);
            lastPhase = p.phase;
            break;
          }
          case 'start':
            started = true;
            for (const l of describeStart(ev)) status.line(l);
            break;
          case 'step': {
            const r = ev.record;
            const text =
              `step ${r.step}${budgetSteps > 0 ? `/${budgetSteps}` : config.train.steps > 0 ? `/${config.train.steps}` : ''} | loss ${r.loss.toFixed(4)} | lr ${r.lr.toExponential(2)} | ` +
              `gnorm ${r.grad_norm.toFixed(2)} | ${formatCount(Math.round(r.tokens_per_second))} tok/s | ${formatDuration(r.elapsed)}` +
              (ev.etaSeconds === null ? '' : ` | ETA ${formatDuration(ev.etaSeconds)}`);
            if (status.isTTY) status.update(text);
            else if (r.step % config.train.log_every === 0) status.line(text);
            break;
          }
          case 'eval':
            status.line(`step ${ev.record.step}: val loss ${ev.record.val_loss!.toFixed(4)} nats/token, ${ev.record.val_bpb!.toFixed(4)} bits/byte${ev.best ? ' (best so far, saved)' : ''}`);
            break;
          case 'rollback':
            status.line(describeRollback(ev));
            break;
          case 'budget':
            budgetSteps = config.train.steps > 0 ? Math.min(config.train.steps, ev.budget.steps) : ev.budget.steps;
            status.line(describeBudget(ev.budget));
            break;
          case 'samples':
            // one line per sample: newlines shown as " / ", other control characters dropped
            for (const s of ev.samples) status.line(`  > ${s.replace(/\s*\n\s*/g, ' / ').replace(/\p{Cc}/gu, '').trim()}`);
            break;
          case 'checkpoint':
            if (!status.isTTY) status.line(`checkpoint at step ${ev.step}`);
            break;
        }
      };

      try {
        const result = await train({ config, runDir, resume: !!f.resume }, onEvent, () => stopSignal !== null);
        status.clear();
        for (const l of report(result)) console.log(l);
        const chart = result.stopReason === 'signal' ? [] : validationChartLines(result.runDir);
        if (chart.length) console.log(['', ...chart].join('\n'));
        // Stopped by a signal (checkpoint saved): scripts can tell it from a finished run.
        if (result.stopReason === 'signal') process.exitCode = signalExitCode(stopSignal ?? 'SIGINT');
      } finally {
        status.clear();
        await dashboard?.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
