import fs from 'node:fs';
import path from 'node:path';
import { now } from './journal.js';
import {
  foldJournal, isCandidate, memoryCheck, nextAction, noiseEvent, openStudy, parseConfigText, pruneReason, trialOf, trialStartEvent, trialTimeoutSeconds,
  writeDerivedFiles, type StudyEvent, type StudyOptions, type StudyOutcome,
} from './study.js';
import { trialConfig } from './trial.js';
import { connectRedis, datasetHashes, sha256, StudyStore, type RedisTarget, type StudyMeta, type WorkerMessage } from './redis-store.js';
import { TRIAL_STATUSES, type JournalEvent, type RungPoint, type TrialResult } from './types.js';
import { UserError } from '../util/errors.js';

/**
 * The study process of a study shared through Redis (the proposer). It decides everything, as a
 * local study does, from its own journal (`nextAction` with the set of trials in flight), and
 * keeps as many trials in flight as there are live workers (at least one). Redis only carries
 * trials to workers and their rungs and results back:
 *
 * - a result is journaled once: a message for a trial that already ended, or from another
 *   attempt of it (the trial was given again after its worker vanished, or the proposer
 *   restarted it), is dropped; a rung already journaled for this attempt too;
 * - killed and resumed, the proposer adopts the trials Redis still holds for their current
 *   attempt and starts again (a new attempt) those it does not, then reads every message not
 *   yet deleted (it deletes a message only after journaling it);
 * - a Redis that lost its data (no meta key) is given the study again from the journal, and the
 *   trials in flight, gone with it, are started again as new attempts.
 */

export interface RedisStudyOptions {
  target: RedisTarget;
  /** A worker that has not renewed its lease for this long loses its trial to another. */
  leaseSeconds: number;
  /** One line for the user (connection trouble, repairs). */
  say: (line: string) => void;
}

/** A worker counts as live while its last heartbeat is this recent. */
export const WORKER_TTL_MS = 10_000;

function checkPoint(p: unknown): RungPoint | null {
  const o = p as RungPoint;
  if (typeof o !== 'object' || o === null) return null;
  if (![o.rung, o.step, o.tokens].every((n) => Number.isInteger(n) && n >= 0) || typeof o.val_bpb !== 'number' || !Number.isFinite(o.val_bpb)) return null;
  return { rung: o.rung, step: o.step, tokens: o.tokens, val_bpb: o.val_bpb };
}

/** A worker's result as the journal may hold it, or null (then it is not recorded). */
function checkResult(r: unknown): TrialResult | null {
  const o = r as TrialResult;
  if (typeof o !== 'object' || o === null || !(TRIAL_STATUSES as readonly string[]).includes(o.status)) return null;
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (![o.steps, o.tokens, o.seconds, o.tokens_per_second, o.peak_rss_mb].every(num) || typeof o.reason !== 'string') return null;
  const ok = o.status === 'ok';
  // a trial never scores unless it ended ok; an ok one always does
  if (ok ? !(num(o.val_bpb) && num(o.val_loss) && o.val_bpb! > 0) : o.val_bpb !== null || o.val_loss !== null) return null;
  return { status: o.status, val_loss: o.val_loss, val_bpb: o.val_bpb, steps: o.steps, tokens: o.tokens, seconds: o.seconds,
    tokens_per_second: o.tokens_per_second, peak_rss_mb: o.peak_rss_mb, reason: o.reason.split('\n')[0]!.slice(0, 500) };
}

export async function runRedisStudy(o: StudyOptions, r: RedisStudyOptions, onEvent: (ev: StudyEvent) => void, shouldStop: () => boolean): Promise<StudyOutcome> {
  const { journal, events, lock } = await openStudy(o, onEvent);
  const redis = connectRedis(r.target.url, r.say);
  const store = new StudyStore(redis, r.target.study);
  try {
    const header = events[0] as Extract<JournalEvent, { type: 'study' }>;
    const score = fs.readFileSync(path.join(o.dir, header.score.file), 'utf8');
    const base = parseConfigText(header.base_config, 'the study base config');
    const meta: StudyMeta = { header, score, scoreSha256: sha256(score), data: await datasetHashes(base), leaseMs: Math.round(r.leaseSeconds * 1000) };
    const existing = await redis.hget(store.keys.meta, 'header');
    if (existing !== null) {
      let other: { time?: string } = {};
      try { other = JSON.parse(existing) as { time?: string }; } catch { /* unreadable: not ours either */ }
      if (other.time !== header.time) {
        throw new UserError(`Redis already holds another study named "${r.target.study}" (started ${other.time ?? 'at an unknown time'}); choose another --study`);
      }
    }
    await store.publish(meta, events);
    const append = async (ev: JournalEvent): Promise<void> => {
      journal.append(ev); // on disk first: the journal is the truth, Redis its mirror
      events.push(ev);
      await store.mirror(ev);
    };
    // trials Redis still holds for their current attempt are still running (or queued) somewhere
    const inFlight = new Set<number>();
    for (const t of foldJournal(events).trials) if (t.end === null && (await store.attemptOf(t.id)) === t.attempt) inFlight.add(t.id);

    const handle = async (raw: string): Promise<void> => {
      let msg: WorkerMessage;
      try {
        msg = JSON.parse(raw) as WorkerMessage;
      } catch {
        return;
      }
      if (typeof msg !== 'object' || msg === null || !Number.isInteger(msg.id) || !Number.isInteger(msg.attempt)) return;
      const st = foldJournal(events);
      const t = st.trials.find((x) => x.id === msg.id);
      // not a trial of this study, another attempt, or one already recorded: nothing to record
      if (!t || t.attempt !== msg.attempt || t.end !== null) return;
      if (msg.type === 'rung') {
        const point = checkPoint(msg.point);
        if (!point || t.rungs.some((p) => p.rung === point.rung)) return;
        await append({ type: 'rung', time: now(), id: t.id, point });
        onEvent({ type: 'rung', id: t.id, point });
        if (st.header.pruning && isCandidate(t.start.kind)) {
          const earlier = st.trials.filter((x) => x.end && x.id !== t.id).map((x) => x.rungs.map((p) => p.val_bpb));
          const why = pruneReason(point, earlier);
          if (why) await store.stopTrial(t.id, why);
        }
      } else if (msg.type === 'result') {
        const result = checkResult(msg.result);
        if (!result) {
          r.say(`trial ${t.id}: a worker sent a result that is not one (${raw.slice(0, 80)}); ignored`);
          return;
        }
        await append({ type: 'trial_end', time: now(), id: t.id, result });
        inFlight.delete(t.id);
        await store.forget(t.id);
        onEvent({ type: 'trial_end', id: t.id, kind: t.start.kind, result });
        writeDerivedFiles(o.dir, events);
      }
    };

    for (;;) {
      if (!(await store.hasMeta())) {
        r.say(`redis: the study "${r.target.study}" is gone from Redis (restarted without its data?); publishing it again from the journal`);
        await store.publish(meta, events);
        // its trials went with it: those in flight start again as new attempts
        for (const id of [...inFlight]) if ((await store.attemptOf(id)) === null) inFlight.delete(id);
      }
      await store.reap();
      if (shouldStop() && foldJournal(events).ended === null) {
        // not an end: trials in flight stay with their workers; --resume adopts them
        writeDerivedFiles(o.dir, events);
        return { dir: o.dir, events, reason: 'stopped by a signal' };
      }
      const slots = Math.max(1, (await store.liveWorkers(WORKER_TTL_MS)).length);
      while (inFlight.size < slots) {
        const st = foldJournal(events);
        const action = nextAction(st, 0, inFlight);
        if (action.do === 'wait') break;
        if (action.do === 'end') {
          if (st.ended === null) await append({ type: 'end', time: now(), reason: action.reason });
          writeDerivedFiles(o.dir, events);
          onEvent({ type: 'end', reason: action.reason });
          return { dir: o.dir, events, reason: action.reason };
        }
        if (action.do === 'noise') {
          const ev = noiseEvent(st, o.dir) as Extract<JournalEvent, { type: 'noise' }>;
          await append(ev);
          onEvent({ type: 'noise', noise: ev.noise });
          continue;
        }
        if (action.do === 'decide') {
          const ev = { type: 'decision' as const, time: now(), ...action.decision };
          await append(ev);
          onEvent({ type: 'decision', decision: ev });
          writeDerivedFiles(o.dir, events);
          continue;
        }
        const trial = trialOf(action, st, o.dir);
        if (!('do' in trial)) {
          await append(trial);
          continue;
        }
        const start = trialStartEvent(trial);
        const cfg = parseConfigText(trial.config, `trial ${trial.id} config`);
        const { rejected } = memoryCheck(trial, st);
        if (rejected) {
          await append(start);
          await append({ type: 'trial_end', time: now(), id: trial.id, result: rejected });
          onEvent({ type: 'trial_end', id: trial.id, kind: trial.kind, result: rejected });
          continue;
        }
        await append(start);
        const attempt = foldJournal(events).trials.find((t) => t.id === trial.id)!.attempt;
        const finished = st.trials.filter((t) => t.end?.status === 'ok').map((t) => ({ config: parseConfigText(t.start.config, `trial ${t.id} config`), result: t.end! }));
        const timeoutSeconds = trialTimeoutSeconds(trialConfig(cfg, st.header.budget, st.header.rungs), st.header.budget, finished);
        await store.enqueue({ id: trial.id, attempt, config: trial.config, description: trial.description, timeoutSeconds });
        inFlight.add(trial.id);
        const proposedSoFar = foldJournal(events).trials.filter((t) => isCandidate(t.start.kind)).length;
        onEvent({ type: 'trial_start', id: trial.id, kind: trial.kind, description: trial.description, index: proposedSoFar,
          of: st.header.plan ? st.header.plan.length : st.header.max_trials, best: st.best.bpb, margin: st.noise?.margin ?? null });
      }
      for (const m of await store.readMessages(1000)) {
        await handle(m.raw);
        await store.deleteMessage(m.streamId);
      }
    }
  } finally {
    journal.close();
    lock.release();
    redis.disconnect();
  }
}

