import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { prepareDataset, type PrepareProgress } from '../data/prepare.js';
import type { RunConfig } from '../train/config.js';
import { prepareOptionsFor } from '../train/session.js';
import { UserError } from '../util/errors.js';
import type { JournalEvent, RungPoint, TrialResult } from './types.js';

/**
 * A research study shared through Redis (`--storage redis://...`): the transport between the
 * study process (the proposer, whose local journal stays the source of truth) and any number of
 * workers on other machines, and a mirror of that journal for `research status` and `report`.
 *
 * Keys, all under `pocketlm:research:<study>:`
 *   meta          hash: the study header (JSON), the score text and its sha256, the token files'
 *                 sha256 (the proof a worker prepared the same data), the lease length. Its absence
 *                 means Redis lost its data: the proposer publishes everything again.
 *   queue         list of trial ids waiting for a worker (taken from the left).
 *   trial:<id>    hash: id, attempt, config (TOML), description, timeout, worker (who holds it;
 *                 '' = queued; 'done:<w>' = result sent), stop (a pruning reason for its worker).
 *   leases        sorted set: trial id -> when its lease ends (ms, Redis's clock). An expired
 *                 lease puts the trial back at the front of the queue.
 *   events        stream of worker messages {msg: JSON}: rungs and results. The proposer reads
 *                 from the start and deletes what it has journaled, so after its own restart it
 *                 reads again what it had not recorded (recording is idempotent: see redis-study).
 *   workers       sorted set: worker id -> last heartbeat (ms); worker:<id> its details (JSON,
 *                 expires with its heartbeat).
 *   journal       list: the proposer's journal events (JSON), the mirror.
 *
 * Everything that has to be atomic (taking a trial and its lease, renewing a lease, a result and
 * its lease) is one Lua script, with Redis's own clock, so workers' clocks do not matter.
 */

export interface RedisTarget {
  url: string;
  study: string;
}

/** The URL with its password replaced, for every line and error that names it. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable url)';
  }
}

const STUDY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks a --storage redis URL and --study name (a UserError naming what is wrong). */
export function redisTarget(url: string, study: string | undefined): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(`--storage ${redactUrl(url)}: not a URL (redis://[user:password@]host:port/db)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UserError(`--storage: ${u.protocol} is not redis: or rediss:`);
  if (!study) throw new UserError('--storage redis://... needs --study NAME');
  if (!STUDY_NAME.test(study)) throw new UserError(`--study "${study}": use letters, digits, ".", "_" or "-" (at most 64, not starting with "." "_" or "-")`);
  return { url, study };
}

export const isRedisUrl = (s: string): boolean => /^rediss?:\/\//i.test(s);

/** The key names of one study. */
export function studyKeys(study: string) {
  const p = `pocketlm:research:${study}:`;
  return {
    meta: p + 'meta', queue: p + 'queue', leases: p + 'leases', events: p + 'events', workers: p + 'workers', journal: p + 'journal',
    trialPrefix: p + 'trial:', trial: (id: number | string) => `${p}trial:${id}`,
    workerPrefix: p + 'worker:', worker: (id: string) => `${p}worker:${id}`,
  };
}
export type StudyKeys = ReturnType<typeof studyKeys>;

/**
 * A connection that retries forever with backoff (0.5 s doubling to 30 s) and says so on one line
 * each time; commands wait for it instead of failing.
 */
export function connectRedis(url: string, say: (line: string) => void): Redis {
  const shown = redactUrl(url);
  let lastError = '';
  const r = new Redis(url, {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    lazyConnect: false,
    retryStrategy: (times: number) => {
      const ms = Math.min(30_000, 500 * 2 ** Math.min(6, times - 1));
      say(`redis: cannot reach ${shown}${lastError ? ` (${lastError})` : ''}; retrying in ${(ms / 1000).toFixed(1)} s`);
      return ms;
    },
  });
  // without a listener ioredis prints every connection error with its stack
  r.on('error', (e: Error & { code?: string }) => { lastError = (e.code ?? e.message).replace(url, shown); });
  return r;
}

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS: queue, leases. ARGV: trial key prefix, worker id ('' = only put expired leases back), lease ms. Returns the trial's hash (flat) or nil. */
const TAKE = `${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  local k = ARGV[1] .. id
  if redis.call('EXISTS', k) == 1 and string.sub(redis.call('HGET', k, 'worker') or '', 1, 5) ~= 'done:' then
    redis.call('HSET', k, 'worker', '')
    redis.call('LPUSH', KEYS[1], id)
  end
end
if ARGV[2] == '' then return #expired end
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return nil end
  local k = ARGV[1] .. id
  if redis.call('EXISTS', k) == 1 and (redis.call('HGET', k, 'worker') or '') == '' then
    redis.call('HSET', k, 'worker', ARGV[2])
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
    return redis.call('HGETALL', k)
  end
end`;

/** KEYS: leases. ARGV: trial key, id, worker, attempt, lease ms. Returns {'lost'} | {'ok'} | {'stop', reason}. */
const RENEW = `${NOW_MS}
if redis.call('HGET', ARGV[1], 'worker') ~= ARGV[3] or redis.call('HGET', ARGV[1], 'attempt') ~= ARGV[4] then return {'lost'} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2])
local stop = redis.call('HGET', ARGV[1], 'stop')
if stop and stop ~= '' then return {'stop', stop} end
return {'ok'}`;

/** KEYS: leases, events. ARGV: trial key, id, worker, attempt, message JSON. The result goes on the stream whoever holds the lease now. */
const COMPLETE = `redis.call('XADD', KEYS[2], '*', 'msg', ARGV[5])
if redis.call('HGET', ARGV[1], 'worker') == ARGV[3] and redis.call('HGET', ARGV[1], 'attempt') == ARGV[4] then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HSET', ARGV[1], 'worker', 'done:' .. ARGV[3])
end
return 1`;

/** KEYS: workers, worker key. ARGV: worker id, details JSON, ttl ms. */
const HEARTBEAT = `${NOW_MS}
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(ARGV[3]))
return now`;

/** KEYS: workers. ARGV: ttl ms. Live worker ids (heartbeat within ttl); older ones are dropped. */
const LIVE_WORKERS = `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

/** A worker's message on the events stream. */
export type WorkerMessage =
  | { type: 'rung'; id: number; attempt: number; worker: string; point: RungPoint }
  | { type: 'result'; id: number; attempt: number; worker: string; result: TrialResult };

/** What the proposer publishes about the study for its workers. */
export interface StudyMeta {
  header: Extract<JournalEvent, { type: 'study' }>;
  score: string;
  scoreSha256: string;
  data: DataHashes;
  leaseMs: number;
}

/** sha256 of the prepared token files: what proves two machines train on the same data. */
export interface DataHashes {
  train: string;
  val: string;
  tokenizer: string;
}

export const sha256 = (b: Buffer | string): string => crypto.createHash('sha256').update(b).digest('hex');

const fileSha256 = (file: string): string => sha256(fs.readFileSync(file));

/** Prepares (or finds in the cache) the base config's dataset and hashes its token files. */
export async function datasetHashes(base: RunConfig, onProgress: (p: PrepareProgress) => void = () => {}): Promise<DataHashes> {
  const ds = await prepareDataset(prepareOptionsFor(base), onProgress);
  return {
    train: fileSha256(path.join(ds.dir, ds.meta.splits.train.file)),
    val: fileSha256(path.join(ds.dir, ds.meta.splits.val.file)),
    tokenizer: fileSha256(path.join(ds.dir, 'tokenizer.json')),
  };
}

/** The first difference between two sets of data hashes, as one line naming both, or null. */
export function dataMismatch(mine: DataHashes, study: DataHashes): string | null {
  for (const k of ['train', 'val', 'tokenizer'] as const) {
    if (mine[k] !== study[k]) return `${k} token file differs: the study has sha256 ${study[k]}, this worker prepared ${mine[k]}`;
  }
  return null;
}

/** The study's side of the store. */
export class StudyStore {
  readonly keys: StudyKeys;
  constructor(readonly redis: Redis, readonly study: string) {
    this.keys = studyKeys(study);
  }

  async hasMeta(): Promise<boolean> {
    return (await this.redis.exists(this.keys.meta)) === 1;
  }

  /** Publishes the study (meta and the whole journal mirror), as after a start or a Redis that lost its data. */
  async publish(meta: StudyMeta, events: JournalEvent[]): Promise<void> {
    const m = this.redis.multi();
    m.del(this.keys.journal);
    for (let i = 0; i < events.length; i += 500) m.rpush(this.keys.journal, ...events.slice(i, i + 500).map((e) => JSON.stringify(e)));
    // meta last: a worker that sees it sees the rest
    m.hset(this.keys.meta, { header: JSON.stringify(meta.header), score: meta.score, score_sha256: meta.scoreSha256, data: JSON.stringify(meta.data), lease_ms: String(meta.leaseMs) });
    await m.exec();
  }

  async mirror(ev: JournalEvent): Promise<void> {
    await this.redis.rpush(this.keys.journal, JSON.stringify(ev));
  }

  /** Queues a trial (replacing whatever Redis held under its id). */
  async enqueue(t: { id: number; attempt: number; config: string; description: string; timeoutSeconds: number }): Promise<void> {
    const k = this.keys.trial(t.id);
    await this.redis.multi()
      .del(k)
      .hset(k, { id: String(t.id), attempt: String(t.attempt), config: t.config, description: t.description, timeout: String(t.timeoutSeconds), worker: '', stop: '' })
      .lrem(this.keys.queue, 0, String(t.id))
      .zrem(this.keys.leases, String(t.id))
      .rpush(this.keys.queue, String(t.id))
      .exec();
  }

  /** The attempt Redis holds for a trial (null: it holds none). */
  async attemptOf(id: number): Promise<number | null> {
    const a = await this.redis.hget(this.keys.trial(id), 'attempt');
    return a === null ? null : Number(a);
  }

  async stopTrial(id: number, reason: string): Promise<void> {
    await this.redis.hset(this.keys.trial(id), 'stop', reason);
  }

  /** Forgets a trial whose result is journaled (and the stream message that carried it). */
  async forget(id: number | string): Promise<void> {
    await this.redis.multi().del(this.keys.trial(id)).zrem(this.keys.leases, String(id)).lrem(this.keys.queue, 0, String(id)).exec();
  }

  /** Puts trials whose lease expired back in the queue. */
  async reap(): Promise<number> {
    return Number(await this.redis.eval(TAKE, 2, this.keys.queue, this.keys.leases, this.keys.trialPrefix, '', '0'));
  }

  /** Worker messages not yet deleted, oldest first; waits up to `blockMs` for one. */
  async readMessages(blockMs: number): Promise<{ streamId: string; raw: string }[]> {
    const res = (await this.redis.xread('COUNT', 100, 'BLOCK', blockMs, 'STREAMS', this.keys.events, '0')) as [string, [string, string[]][]][] | null;
    if (!res) return [];
    return res[0]![1].map(([streamId, fields]) => ({ streamId, raw: fields[fields.indexOf('msg') + 1] ?? '' }));
  }

  async deleteMessage(streamId: string): Promise<void> {
    await this.redis.xdel(this.keys.events, streamId);
  }

  async liveWorkers(ttlMs: number): Promise<WorkerInfo[]> {
    const ids = (await this.redis.eval(LIVE_WORKERS, 1, this.keys.workers, String(ttlMs))) as string[];
    const out: WorkerInfo[] = [];
    for (const id of ids) {
      const raw = await this.redis.get(this.keys.worker(id));
      if (!raw) continue;
      const info = parseWorkerInfo(raw);
      // a worker key that is not ours (or not one a worker wrote): not a worker
      if (info) out.push(info);
    }
    return out;
  }

  async queueLength(): Promise<number> {
    return this.redis.llen(this.keys.queue);
  }

  async mirroredJournal(): Promise<JournalEvent[]> {
    return (await this.redis.lrange(this.keys.journal, 0, -1)).map((l) => JSON.parse(l) as JournalEvent);
  }
}

/** What a worker says about itself with each heartbeat. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  threads: number;
  trial: number | null;
  /** ms since the epoch (the worker's clock) of this heartbeat. */
  heartbeat: number;
  done: number;
  /** Why the worker's device guard holds it back (battery, heat), or null. */
  paused?: string | null;
}

/** A worker's heartbeat record read back from Redis, checked field by field (null if it is not one). */
export function parseWorkerInfo(raw: string): WorkerInfo | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const str = (v: unknown) => (typeof v === 'string' ? v.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) : null);
  const int = (v: unknown) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : null);
  const id = str(o.id);
  const host = str(o.host);
  const pid = int(o.pid);
  const threads = int(o.threads);
  const heartbeat = int(o.heartbeat);
  const done = int(o.done);
  const trial = o.trial === null ? null : int(o.trial);
  if (id === null || host === null || pid === null || threads === null || heartbeat === null || done === null || (o.trial !== null && trial === null)) return null;
  return { id, host, pid, threads, trial, heartbeat, done, paused: str(o.paused) };
}

/** A trial as a worker took it from the queue (strings: nothing in it is trusted yet). */
export type TakenTrial = Record<string, string>;

/** The worker's side of the store. */
export class WorkerStore {
  readonly keys: StudyKeys;
  constructor(readonly redis: Redis, readonly study: string, readonly worker: string) {
    this.keys = studyKeys(study);
  }

  async meta(): Promise<Record<string, string> | null> {
    const m = await this.redis.hgetall(this.keys.meta);
    return Object.keys(m).length ? m : null;
  }

  async heartbeat(info: WorkerInfo, ttlMs: number): Promise<void> {
    await this.redis.eval(HEARTBEAT, 2, this.keys.workers, this.keys.worker(this.worker), this.worker, JSON.stringify(info), String(ttlMs));
  }

  async leave(): Promise<void> {
    await this.redis.multi().zrem(this.keys.workers, this.worker).del(this.keys.worker(this.worker)).exec();
  }

  async take(leaseMs: number): Promise<TakenTrial | null> {
    const flat = (await this.redis.eval(TAKE, 2, this.keys.queue, this.keys.leases, this.keys.trialPrefix, this.worker, String(leaseMs))) as string[] | null;
    if (!flat) return null;
    const t: TakenTrial = {};
    for (let i = 0; i + 1 < flat.length; i += 2) t[flat[i]!] = flat[i + 1]!;
    return t;
  }

  /** Renews the lease: 'lost' (the trial is no longer this worker's), 'ok', or the reason the study stops it. */
  async renew(id: string, attempt: string, leaseMs: number): Promise<{ state: 'lost' | 'ok' } | { state: 'stop'; reason: string }> {
    const r = (await this.redis.eval(RENEW, 1, this.keys.leases, this.keys.trial(id), id, this.worker, attempt, String(leaseMs))) as string[];
    if (r[0] === 'stop') return { state: 'stop', reason: r[1] ?? 'stopped by the study' };
    return { state: r[0] === 'ok' ? 'ok' : 'lost' };
  }

  async rung(msg: Extract<WorkerMessage, { type: 'rung' }>): Promise<void> {
    await this.redis.xadd(this.keys.events, '*', 'msg', JSON.stringify(msg));
  }

  async complete(id: string, attempt: string, msg: WorkerMessage): Promise<void> {
    await this.redis.eval(COMPLETE, 2, this.keys.leases, this.keys.events, this.keys.trial(id), id, this.worker, attempt, JSON.stringify(msg));
  }
}
