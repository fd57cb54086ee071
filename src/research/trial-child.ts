/**
 * The process one research trial runs in (spawned by trial.ts with an IPC channel). It trains
 * the config it is sent, reports each rung evaluation, scores the last weights on the study's
 * score text and reports the result. Running each trial in its own process means a crash, an
 * out-of-memory kill or a hang of one trial cannot take the study with it, and the study can
 * stop a pruned or overdue trial at once (SIGKILL).
 */
import { validateConfig } from '../train/config.js';
import { DivergedError, train } from '../train/trainer.js';
import { evaluateRun, openRun } from '../train/inference.js';
import { isUserError } from '../util/errors.js';
import type { BackendChoice } from '../kernels/index.js';
import type { ChildMessage, ParentMessage } from './trial.js';

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(msg, undefined, undefined, () => resolve());
  });
}

function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024; // KiB on Linux and macOS (Node normalises it)
}

async function runTrial(msg: Extract<ParentMessage, { type: 'run' }>): Promise<void> {
  const config = validateConfig(msg.config, `trial config for ${msg.runDir}`);
  const started = Date.now();
  let rung = 0;
  const final = config.train.steps > 0 ? config.train.steps : Number.POSITIVE_INFINITY;
  const result = await train(
    { config, runDir: msg.runDir, resume: false, backend: msg.backend as BackendChoice | undefined, threads: msg.threads },
    (ev) => {
      // the trainer evaluates every eval_every steps and once at the end: the ones before the end are the rungs
      if (ev.type === 'eval' && ev.record.step < final && ev.record.val_bpb !== undefined) {
        void send({ type: 'rung', point: { rung: rung++, step: ev.record.step, tokens: ev.record.tokens, val_bpb: ev.record.val_bpb } });
      }
    },
    () => false,
  );
  const trainSeconds = (Date.now() - started) / 1000;
  // The score: the last weights (the state at the budget) on the study's fixed score text, in
  // bits per byte of that text, so trials with other vocabularies and contexts compare fairly.
  // One row at a time: the training arena is only freed when V8 collects it, so scoring in a
  // second full-batch arena would double the trial's peak memory (estimateTrialMemoryMb counts this one).
  const run = await openRun(msg.runDir, { checkpoint: 'last', backend: msg.backend as BackendChoice | undefined, threads: msg.threads, batchSize: 1 });
  let score;
  try {
    score = evaluateRun(run, { data: [msg.scorePath], batches: Number.MAX_SAFE_INTEGER });
  } finally {
    await run.close();
  }
  await send({
    type: 'done',
    val_loss: score.loss, val_bpb: score.bpb, steps: result.step, tokens: result.tokens, seconds: trainSeconds,
    tokens_per_second: result.tokens / Math.max(1e-9, result.elapsedSeconds), peak_rss_mb: peakRssMb(),
  });
}

// The study went away (killed): nothing left to report to, so stop at once.
process.on('disconnect', () => process.exit(70));
process.once('message', (msg: ParentMessage) => {
  if (msg.type !== 'run') return;
  runTrial(msg).then(
    () => process.exit(0),
    async (e: unknown) => {
      const status = e instanceof DivergedError ? 'diverged' : 'crash';
      const text = isUserError(e) || e instanceof Error ? e.message : String(e);
      await send({ type: 'failed', status, reason: text.split('\n')[0]!, peak_rss_mb: peakRssMb(), stack: isUserError(e) ? null : (e as Error)?.stack ?? null });
      process.exit(1);
    },
  );
});
