import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PrepareProgress } from '../data/prepare.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { parseConfigText } from './study.js';
import { runTrial, trialConfig } from './trial.js';
import { connectRedis, dataMismatch, datasetHashes, sha256, WorkerStore, type DataHashes, type RedisTarget, type TakenTrial, type WorkerInfo } from './redis-store.js';
import { TRIAL_STATUSES, type Budget, type JournalEvent, type TrialResult } from './types.js';
import { guardVerdict, readDeviceHealth, type DeviceHealth } from './guard.js';

/**
 * A research worker (`pocketlm research worker --storage redis://... --study NAME`): it joins a
 * study shared through Redis, proves it prepared the same data, then takes trials one at a time,
 * trains each in its own process (runTrial, as a local study does) and sends back its rungs and
 * its result. It holds a lease on its trial and renews it while the trial runs; the study's
 * pruning decision reaches it with a renewal and stops the trial there.
 *
 * Nothing read from Redis is trusted: the study header and every trial config are validated as
 * config files are; a trial config must read the study's own data (its data section equals the
 * base's); a trial's folder is named by the worker from the trial id (digits only), inside its
 * own folder. A trial that fails these checks is refused with one line and reported as
 * `rejected`; the worker goes on.
 */

export interface WorkerOptions {
  target: RedisTarget;
  /** Kernel threads per trial (0 = the kernels' default). */
  threads: number;
  /** The worker's folder: the score text and one folder per trial. */
  dir: string;
  say: (line: string) => void;
  shouldStop: () => boolean;
  /** Stop after this many trials (tests and benchmarks; null = until stopped). */
  maxTrials?: number | null;
  onPrepare?: (p: PrepareProgress) => void;
  /**
   * This device's guard, read before taking each trial: an old phone in a drawer waits for a
   * charger or cools down rather than drain or throttle (0 = never). Memory is the study's
   * concern (its estimate); a trial that runs out of memory here is recorded as a crash.
   */
  guard?: { minBatteryPercent: number; maxTemperatureC: number };
  /** The device reading (tests pass fakes); default readDeviceHealth(). */
  readHealth?: () => Promise<DeviceHealth>;
  /** Seconds between readings while the guard holds the worker back (default: the guard's own). */
  guardWaitSeconds?: number;
}

/** The study as a worker needs it, checked. */
interface WorkerStudy {
  time: string;
  budget: Budget;
  rungs: number;
  backend: string;
  baseData: string;
  data: DataHashes;
  scorePath: string;
  leaseMs: number;
  fingerprint: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The study meta from Redis, checked; the data prepared and compared; the score text written. */
async function joinStudy(meta: Record<string, string>, o: WorkerOptions): Promise<WorkerStudy> {
  const bad = (what: string) => new UserError(`the study "${o.target.study}" in Redis is not a valid study: ${what}`);
  let header: Extract<JournalEvent, { type: 'study' }>;
  let data: DataHashes;
  try {
    header = JSON.parse(meta.header ?? '') as typeof header;
    data = JSON.parse(meta.data ?? '') as DataHashes;
  } catch {
    throw bad('its header or data hashes are not JSON');
  }
  if (header?.type !== 'study' || typeof header.base_config !== 'string') throw bad('no study header');
  const b = header.budget;
  if (!b || !['tokens', 'steps', 'seconds'].includes(b.kind) || !Number.isInteger(b.value) || b.value < 1) throw bad('its budget is not tokens, steps or seconds > 0');
  if (!Number.isInteger(header.rungs) || header.rungs < 0 || header.rungs > 20) throw bad('rungs must be an integer in [0, 20]');
  if (!['train', 'val', 'tokenizer'].every((k) => /^[0-9a-f]{64}$/.test((data as unknown as Record<string, string>)?.[k] ?? ''))) throw bad('its data hashes are not sha256');
  const leaseMs = Number(meta.lease_ms);
  if (!Number.isInteger(leaseMs) || leaseMs < 500) throw bad('lease_ms must be an integer >= 500');
  const score = meta.score ?? '';
  if (sha256(score) !== meta.score_sha256) throw bad(`its score text has sha256 ${sha256(score)}, not the ${meta.score_sha256} it claims`);
  const base = parseConfigText(header.base_config, `the base config of the study "${o.target.study}"`);
  const mine = await datasetHashes(base, o.onPrepare);
  const diff = dataMismatch(mine, data);
  if (diff) throw new UserError(`refused to join the study "${o.target.study}": ${diff}`);
  fs.mkdirSync(o.dir, { recursive: true });
  const scorePath = path.join(o.dir, 'score.txt');
  writeFileAtomicSync(scorePath, score);
  return {
    time: header.time, budget: { kind: b.kind, value: b.value }, rungs: header.rungs, backend: String(header.backend ?? 'auto'), baseData: JSON.stringify(base.data),
    data, scorePath, leaseMs, fingerprint: `${header.time}|${meta.data}|${meta.score_sha256}`,
  };
}

/** The trial as the worker will run it, or the one line why it refuses it. */
function checkTrial(t: TakenTrial, study: WorkerStudy): { id: number; attempt: number; config: ReturnType<typeof trialConfig>; timeoutSeconds: number } | { refused: string } {
  if (!/^[1-9][0-9]{0,8}$/.test(t.id ?? '')) return { refused: `its id ${JSON.stringify(String(t.id).slice(0, 40))} is not a trial number` };
  if (!/^[1-9][0-9]{0,8}$/.test(t.attempt ?? '')) return { refused: `its attempt ${JSON.stringify(String(t.attempt).slice(0, 40))} is not a number` };
  const timeoutSeconds = Number(t.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 7 * 24 * 3600) return { refused: `its timeout ${JSON.stringify(String(t.timeout).slice(0, 40))} is not 1 s to 7 days` };
  let cfg;
  try {
    cfg = parseConfigText(t.config ?? '', `trial ${t.id} config`);
  } catch (e) {
    return { refused: (e as Error).message.split('\n')[0]! };
  }
  // the only files a trial reads are the study's data; it writes only in its own folder (named here)
  if (JSON.stringify(cfg.data) !== study.baseData) return { refused: `trial ${t.id} config: its [data] section is not the study's` };
  return { id: Number(t.id), attempt: Number(t.attempt), config: trialConfig(cfg, study.budget, study.rungs), timeoutSeconds };
}

const rejected = (reason: string): TrialResult => ({ status: 'rejected', val_loss: null, val_bpb: null, steps: 0, tokens: 0, seconds: 0, tokens_per_second: 0, peak_rss_mb: 0, reason });

/** Runs a worker until it is stopped (or has done `maxTrials`). A UserError if it may not join the study. */
export async function runWorker(o: WorkerOptions): Promise<{ done: number }> {
  const redis = connectRedis(o.target.url, o.say);
  const id = `${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  const store = new WorkerStore(redis, o.target.study, id);
  const info: WorkerInfo = { id, host: os.hostname(), pid: process.pid, threads: o.threads, trial: null, heartbeat: Date.now(), done: 0 };
  let stopped = false;
  let leaseMs = 10_000;
  // heartbeats on their own loop, so a long trial or a slow prepare does not make the worker look gone
  const beating = (async () => {
    while (!stopped) {
      info.heartbeat = Date.now();
      await store.heartbeat(info, 10_000).catch(() => {});
      await sleep(1000);
    }
  })();
  try {
    let study: WorkerStudy | null = null;
    let waiting = false;
    while (!o.shouldStop() && (o.maxTrials == null || info.done < o.maxTrials)) {
      // the study must be there (Redis may have lost it) and be the one this worker checked
      const meta = await store.meta();
      if (!meta) {
        if (!waiting) o.say(`waiting for the study "${o.target.study}" to be published in Redis`);
        waiting = true;
        study = null;
        await sleep(500);
        continue;
      }
      waiting = false;
      if (!study || study.fingerprint !== `${JSON.parse(meta.header ?? '{}').time}|${meta.data}|${meta.score_sha256}`) {
        study = await joinStudy(meta, o);
        leaseMs = study.leaseMs;
        o.say(`joined the study "${o.target.study}" as ${id} (data sha256 train ${study.data.train.slice(0, 12)}..., ${o.threads || 'default'} threads)`);
      }
      // the device first: a trial is taken only when this device is fit to run it
      if (o.guard && (o.guard.minBatteryPercent > 0 || o.guard.maxTemperatureC > 0)) {
        const health = await (o.readHealth ?? readDeviceHealth)();
        const v = guardVerdict(health, { minFreeMemoryMb: 0, minBatteryPercent: o.guard.minBatteryPercent, maxTemperatureC: o.guard.maxTemperatureC });
        if (!v.ok) {
          info.paused = v.reason;
          o.say(`paused: ${v.reason}`);
          const until = Date.now() + 1000 * (o.guardWaitSeconds ?? v.waitSeconds);
          while (Date.now() < until && !o.shouldStop()) await sleep(200);
          continue;
        }
        info.paused = null;
      }
      const taken = await store.take(leaseMs);
      if (!taken) {
        await sleep(300);
        continue;
      }
      const checked = checkTrial(taken, study);
      if ('refused' in checked) {
        o.say(`refused a trial from the queue: ${checked.refused}`);
        const tid = /^[0-9]{1,9}$/.test(taken.id ?? '') ? Number(taken.id) : -1;
        await store.complete(String(taken.id), String(taken.attempt), { type: 'result', id: tid, attempt: Number(taken.attempt) || 0, worker: id, result: rejected(checked.refused) });
        continue;
      }
      info.trial = checked.id;
      o.say(`trial ${checked.id}: ${String(taken.description ?? '').slice(0, 200)}`);
      const runDir = path.join(o.dir, 'trials', String(checked.id).padStart(4, '0'));
      fs.rmSync(runDir, { recursive: true, force: true });
      const abort = new AbortController();
      let lost = false;
      let running = true;
      const renewing = (async () => {
        while (running) {
          // often: a renewal is also how the study's pruning decision reaches this trial
          await sleep(Math.min(250, Math.floor(leaseMs / 4)));
          if (!running) break;
          const r = await store.renew(String(checked.id), String(checked.attempt), leaseMs);
          if (r.state === 'lost') {
            lost = true;
            abort.abort('lease lost');
          } else if (r.state === 'stop') {
            abort.abort(r.reason);
          }
          if (r.state !== 'ok') break;
        }
      })();
      const result = await runTrial({
        config: checked.config, runDir, scorePath: study.scorePath, backend: study.backend, threads: o.threads > 0 ? o.threads : undefined,
        timeoutSeconds: checked.timeoutSeconds, signal: abort.signal,
        onRung: (point) => {
          void store.rung({ type: 'rung', id: checked.id, attempt: checked.attempt, worker: id, point }).catch(() => {});
          return null;
        },
      });
      running = false;
      await renewing;
      info.trial = null;
      if (lost) {
        o.say(`trial ${checked.id}: no longer this worker's (its lease ended or the study gave it again); stopped`);
        continue;
      }
      if (!(TRIAL_STATUSES as readonly string[]).includes(result.status)) continue;
      await store.complete(String(checked.id), String(checked.attempt), { type: 'result', id: checked.id, attempt: checked.attempt, worker: id, result });
      info.done++;
      o.say(`trial ${checked.id}: ${result.status}${result.val_bpb !== null ? ` ${result.val_bpb.toFixed(4)} bits/byte` : `: ${result.reason}`} (${result.seconds.toFixed(1)} s)`);
    }
    return { done: info.done };
  } finally {
    stopped = true;
    // a Redis that is down would hold these forever: a leaving worker waits 2 s at most
    await Promise.race([beating.then(() => store.leave()).catch(() => {}), sleep(2000)]);
    redis.disconnect();
  }
}
