import { fork } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RunConfig } from '../train/config.js';
import type { Budget, RungPoint, TrialResult } from './types.js';

/**
 * One trial in its own child process (trial-child.ts): trains a config from scratch to the
 * study's budget, reports its rung evaluations as they come (the study may stop it there:
 * pruning), and its score on the study's fixed score text. Whatever happens to the child (an
 * exception, a NaN that would not recover, an out-of-memory kill, a hang past the timeout) ends
 * as a TrialResult with a status and a one-line reason; a failed trial never has a score.
 */

/** Parent -> child. */
export type ParentMessage = {
  type: 'run'; config: RunConfig; runDir: string; scorePath: string; backend?: string; threads?: number;
};

/** Child -> parent. */
export type ChildMessage =
  | { type: 'rung'; point: RungPoint }
  | { type: 'done'; val_loss: number; val_bpb: number; steps: number; tokens: number; seconds: number; tokens_per_second: number; peak_rss_mb: number }
  | { type: 'failed'; status: 'crash' | 'diverged'; reason: string; peak_rss_mb: number; stack: string | null };

/**
 * The config a trial trains: `cfg` with its length set by the budget (tokens become steps of
 * batch_size x seq_len x grad_accum tokens, so every trial sees about the same number of tokens
 * whatever its shape), evaluations at `rungs` evenly spaced points (the learning curve pruning
 * looks at), one checkpoint at the end, no samples.
 */
export function trialConfig(cfg: RunConfig, budget: Budget, rungs: number): RunConfig {
  const t = cfg.train;
  const tokensPerStep = t.batch_size * cfg.model.seq_len * t.grad_accum;
  const steps = budget.kind === 'tokens' ? Math.max(1, Math.round(budget.value / tokensPerStep)) : budget.kind === 'steps' ? budget.value : 0;
  // with a time budget the step count is only known once the trainer has measured its speed:
  // the rungs then follow a guess of 1 step per 0.05 s, refined by nothing (they only feed pruning)
  const plannedSteps = steps > 0 ? steps : Math.max(rungs + 1, Math.round(budget.value / 0.05));
  // ceil: evaluations at k * evalEvery for k = 1..rungs stay before the end (the final one is the score's)
  const evalEvery = rungs > 0 ? Math.max(1, Math.ceil(plannedSteps / (rungs + 1))) : 0;
  return {
    ...cfg,
    train: {
      ...t,
      steps,
      time_seconds: budget.kind === 'seconds' ? budget.value : 0,
      eval_every: evalEvery,
      checkpoint_minutes: 0,
      checkpoint_every: 0,
      sample_tokens: 0,
      sample_every: 0,
    },
  };
}

export interface TrialRequest {
  config: RunConfig;
  runDir: string;
  scorePath: string;
  backend?: string;
  threads?: number;
  /** Kill the trial after this many seconds (status timeout). */
  timeoutSeconds: number;
  /** Called at each rung; returning a reason stops the trial there (status pruned, with that reason). */
  onRung: (point: RungPoint) => string | null;
  /** Aborting stops the trial at once (status pruned, the signal's reason as its reason): a study's decision that reached a worker from elsewhere. */
  signal?: AbortSignal;
  /** For tests: the script to run instead of trial-child.js. */
  childScript?: string;
}

const CHILD = fileURLToPath(new URL('./trial-child.js', import.meta.url));

/** Runs one trial to its end; never throws for anything the trial itself does. */
export function runTrial(req: TrialRequest): Promise<TrialResult> {
  fs.mkdirSync(req.runDir, { recursive: true });
  const started = Date.now();
  return new Promise((resolve) => {
    const child = fork(req.childScript ?? CHILD, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-4000); });
    let final: TrialResult | null = null;
    let lastRung: RungPoint | null = null;
    const fail = (status: TrialResult['status'], reason: string, peak = 0): TrialResult => ({
      status, val_loss: null, val_bpb: null, steps: lastRung?.step ?? 0, tokens: lastRung?.tokens ?? 0,
      seconds: (Date.now() - started) / 1000, tokens_per_second: 0, peak_rss_mb: peak, reason,
    });
    const timer = setTimeout(() => {
      final ??= fail('timeout', `no result after ${Math.round(req.timeoutSeconds)} s; stopped`);
      child.kill('SIGKILL');
    }, req.timeoutSeconds * 1000);
    child.on('message', (msg: ChildMessage) => {
      if (final) return;
      if (msg.type === 'rung') {
        lastRung = msg.point;
        const why = req.onRung(msg.point);
        if (why !== null) {
          final = fail('pruned', why);
          child.kill('SIGKILL');
        }
      } else if (msg.type === 'done') {
        final = { status: 'ok', val_loss: msg.val_loss, val_bpb: msg.val_bpb, steps: msg.steps, tokens: msg.tokens, seconds: (Date.now() - started) / 1000,
          tokens_per_second: msg.tokens_per_second, peak_rss_mb: msg.peak_rss_mb, reason: '' };
      } else if (msg.type === 'failed') {
        final = fail(msg.status, msg.reason, msg.peak_rss_mb);
      }
    });
    const onAbort = () => {
      final ??= fail('pruned', String(req.signal!.reason ?? 'stopped by the study'));
      child.kill('SIGKILL');
    };
    if (req.signal?.aborted) onAbort();
    else req.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      final ??= fail('crash', `could not run the trial process: ${e.message}`);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      if (!final) {
        // died without a word: killed from outside (the OOM killer sends SIGKILL) or a fatal V8 error
        const last = stderr.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
        const how = signal ? `killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exited with code ${code}`;
        final = fail('crash', `the trial process ${how}${last ? `: ${last.trim().slice(0, 200)}` : ''}`);
      }
      resolve(final);
    });
    const msg: ParentMessage = { type: 'run', config: req.config, runDir: req.runDir, scorePath: req.scorePath, backend: req.backend, threads: req.threads };
    child.send(msg);
  });
}
