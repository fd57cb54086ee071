import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { loadConfig, stringifyConfig } from '../train/config.js';
import { readJournal } from './journal.js';
import { datasetHashes, parseWorkerInfo, redactUrl, studyKeys } from './redis-store.js';
import { runWorker } from './worker.js';
import type { DeviceHealth } from '../util/device.js';
import type { JournalEvent } from './types.js';

// A study shared through a real redis-server (started here on a free loopback port, with no
// persistence, killed at the end), a proposer and workers as CLI processes, tiny trials. Without
// redis-server these tests FAIL, saying so: CI installs it (.ci/run).

const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');

const BASE_SET = [
  'model.vocab_size=512', 'model.d_model=64', 'model.n_layer=2', 'model.n_head=2', 'model.seq_len=64', 'model.ffn_hidden=128', 'model.dropout=0',
  'train.batch_size=4', 'train.grad_accum=1', 'train.eval_batches=2', 'train.log_every=10', 'train.backend="wasm"', 'train.threads=1',
  'optim.name="adamw"', 'optim.warmup_steps=5',
];

const baseConfig = (data: string) => loadConfig({ preset: 'tiny', set: [...BASE_SET, `data.paths=[${JSON.stringify(data)}]`] });

let work = '';
const procs: ChildProcess[] = [];

let savedCache: string | undefined;

before(async () => {
  const v = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (v.error) throw new Error('redis-server is not installed: these tests need a real Redis (Debian: apt-get install redis-server; .ci/run installs it)');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-redis-'));
  savedCache = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(work, 'cache');
  // the shared data prepared once here (the study and its workers then find it in the cache), so each test times only itself
  await datasetHashes(baseConfig(DATA));
});

after(() => {
  if (savedCache === undefined) delete process.env.POCKETLM_CACHE;
  else process.env.POCKETLM_CACHE = savedCache;
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 25_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A redis-server of its own (no persistence: a restart loses everything, as the repair test wants). */
async function startRedis(port: number): Promise<ChildProcess> {
  const dir = fs.mkdtempSync(path.join(work, 'redis-'));
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  procs.push(p);
  await until('redis-server to accept connections', () => new Promise<boolean>((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
  }), 10_000);
  return p;
}

interface Proc { child: ChildProcess; out: () => string; exited: Promise<number | null> }

function cli(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}



/** A test's own client (quiet when its server is gone: the tests kill servers). */
function client(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  return r;
}

/** A proposer with a written plan, tiny trials, 2 s leases. */
function proposerArgs(name: string, url: string, plan: string[], data = DATA, extra: string[] = []): string[] {
  const cfg = path.join(work, `${name}.toml`);
  fs.writeFileSync(cfg, stringifyConfig(baseConfig(data)));
  const planFile = path.join(work, `${name}-plan.toml`);
  fs.writeFileSync(planFile, plan.map((c, i) => `[[experiment]]\nname = "e${i + 1}"\nchanges = { ${c} }\n`).join('\n'));
  return ['research', '--config', cfg, '--plan', planFile, '--budget-steps', '30', '--noise-seeds', '2', '--final-seeds', '0', '--rungs', '1',
    '--threads', '1', '--backend', 'wasm', '--min-battery', '0', '--max-temperature', '0', '--score-kb', '10', '--max-memory-mb', '4096',
    '--out', path.join(work, name), '--storage', url, '--study', name, '--lease-seconds', '2', ...extra];
}

// the device guard off: a hot CI machine must not pause these workers (its own test below)
const workerArgs = (name: string, url: string, id: string): string[] =>
  ['research', 'worker', '--storage', url, '--study', name, '--threads', '1', '--out', path.join(work, `${name}-worker-${id}`), '--min-battery', '0', '--max-temperature', '0'];

const ofType = <T extends JournalEvent['type']>(events: JournalEvent[], type: T) => events.filter((e): e is Extract<JournalEvent, { type: T }> => e.type === type);

/** Every trial of the journal ended exactly once. */
function assertEachTrialEndsOnce(events: JournalEvent[]): void {
  const ids = [...new Set(ofType(events, 'trial_start').map((e) => e.id))];
  const ends = ofType(events, 'trial_end').map((e) => e.id).sort((a, b) => a - b);
  assert.deepEqual(ends, ids.sort((a, b) => a - b), 'each trial ends once');
}

const journalOf = (name: string): JournalEvent[] => {
  try {
    return readJournal(path.join(work, name)).events;
  } catch {
    return [];
  }
};

test('two workers finish a fixed list of trials; pruning reaches a worker during its trial; a malformed trial in the queue is refused without a crash; status lists the workers; no password is printed', async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://:s3cret-pw@127.0.0.1:${port}/0`;
  const name = 'two';
  const env = { POCKETLM_CACHE: path.join(work, 'cache') };
  // a hostile entry in the queue before anything else: an id that is a path, a config that is not TOML
  const r = client(`redis://127.0.0.1:${port}/0`);
  const k = studyKeys(name);
  await r.hset(k.trial('../../escape'), { id: '../../escape', attempt: '1', config: 'not [toml', description: 'evil', timeout: '60', worker: '', stop: '' });
  await r.hset(k.trial(77), { id: '77', attempt: '1', config: '[data]\npaths = ["/etc/passwd"]\n', description: 'evil', timeout: '60', worker: '', stop: '' });
  await r.lpush(k.queue, '../../escape', '77');
  const proposer = cli(proposerArgs(name, url, ['"optim.lr" = 0.003', '"optim.lr" = 0.000001, "optim.min_lr" = 0.0000001'], DATA,
    // 3 noise seeds (pruning needs 3 earlier curves); 3 rungs in 300 steps: a decision at the first has 225 steps (over a second) to reach the worker
    ['--budget-steps', '300', '--rungs', '3', '--noise-seeds', '3']), env);
  const w1 = cli(workerArgs(name, url, 'a'), env);
  const w2 = cli(workerArgs(name, url, 'b'), env);
  let status = '';
  await until('status to list 2 workers', async () => {
    const s = cli(['research', 'status', '--storage', url, '--study', name], env);
    await s.exited;
    status = s.out();
    return /^2 live workers$/m.test(status);
  });
  assert.match(status, /threads 1 .* (trial \d+|idle) .*heartbeat [\d.]+ s ago/);
  const code = await proposer.exited;
  assert.equal(code, 0, proposer.out());
  const events = journalOf(name);
  assertEachTrialEndsOnce(events);
  assert.equal(ofType(events, 'trial_start').filter((e) => e.kind === 'plan').length, 2, 'both planned experiments ran');
  assert.equal(ofType(events, 'trial_start').filter((e) => e.kind === 'noise').length, 3);
  // the hopeless learning rate was stopped at its rung, by the study, on the worker that ran it
  const hopeless = ofType(events, 'trial_start').find((e) => e.description.startsWith('e2'))!;
  const stopped = ofType(events, 'trial_end').find((e) => e.id === hopeless.id)!.result;
  assert.equal(stopped.status, 'pruned', JSON.stringify(stopped));
  assert.match(stopped.reason, /^rung \d \(step \d+\): .* worse than the median/);
  assert.ok(stopped.steps < 300, `stopped at step ${stopped.steps}, before the end`);
  assert.ok(ofType(events, 'trial_end').filter((e) => e.id !== hopeless.id).every((e) => e.result.status === 'ok'), JSON.stringify(ofType(events, 'trial_end')));
  assert.equal(ofType(events, 'end').length, 1);
  // both workers trained; the hostile entries were refused, one line each, and the workers went on
  const both = w1.out() + w2.out();
  assert.match(w1.out(), /^trial \d+: ok /m);
  assert.match(w2.out(), /^trial \d+: ok /m);
  assert.match(both, /refused a trial from the queue: its id "\.\.\/\.\.\/escape" is not a trial number/);
  assert.match(both, /refused a trial from the queue: .*trial 77 config/);
  assert.ok(!fs.existsSync(path.join(work, 'escape')) && !fs.existsSync(path.join(work, 'two-worker-a', 'trials', '0077')));
  assert.equal(w1.child.exitCode, null, 'worker a still runs');
  assert.equal(w2.child.exitCode, null, 'worker b still runs');
  // the mirror in Redis is the journal
  assert.deepEqual((await r.lrange(k.journal, 0, -1)).map((l) => JSON.parse(l)), events);
  for (const out of [proposer.out(), both, status]) assert.ok(!out.includes('s3cret-pw'), 'no password in any output');
  assert.ok(!fs.readFileSync(path.join(work, name, 'journal.jsonl'), 'utf8').includes('s3cret-pw'));
  assert.equal(redactUrl(url), `redis://:***@127.0.0.1:${port}/0`);
  const report = cli(['research', 'report', '--storage', url, '--study', name], env);
  assert.equal(await report.exited, 0, report.out());
  assert.match(report.out(), /e1|e2/);
  w1.child.kill('SIGTERM');
  w2.child.kill('SIGTERM');
  assert.equal(await w1.exited, 0);
  assert.equal(await w2.exited, 0);
  r.disconnect();
  redis.kill('SIGKILL');
});

test('a worker killed mid-trial: its lease ends, the trial completes on another worker and is recorded once', async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const name = 'wkill';
  const env = { POCKETLM_CACHE: path.join(work, 'cache') };
  const proposer = cli(proposerArgs(name, url, ['"optim.lr" = 0.003']), env);
  const a = cli(workerArgs(name, url, 'a'), env);
  await until('worker a to start a trial', () => /^trial (\d+): base config/m.test(a.out()));
  const killedId = Number(/^trial (\d+): base config/m.exec(a.out())![1]);
  a.child.kill('SIGKILL');
  await a.exited;
  const b = cli(workerArgs(name, url, 'b'), env);
  assert.equal(await proposer.exited, 0, proposer.out());
  const events = journalOf(name);
  assertEachTrialEndsOnce(events);
  assert.equal(ofType(events, 'trial_start').filter((e) => e.id === killedId).length, 1, 'the same attempt went to the other worker');
  assert.equal(ofType(events, 'trial_end').find((e) => e.id === killedId)!.result.status, 'ok');
  assert.match(b.out(), new RegExp(`^trial ${killedId}: ok `, 'm'));
  b.child.kill('SIGTERM');
  await b.exited;
  redis.kill('SIGKILL');
});

test('the study process killed with SIGKILL and resumed: it adopts the trials in flight and records each result once', async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const name = 'pkill';
  const env = { POCKETLM_CACHE: path.join(work, 'cache') };
  const args = proposerArgs(name, url, ['"optim.lr" = 0.003']);
  const p1 = cli(args, env);
  const w = cli(workerArgs(name, url, 'a'), env);
  await until('a first result in the journal', () => ofType(journalOf(name), 'trial_end').length >= 1);
  p1.child.kill('SIGKILL');
  await p1.exited;
  const before = journalOf(name);
  // the worker goes on meanwhile; its results wait in Redis for the study to come back
  await new Promise((r) => setTimeout(r, 1500));
  const p2 = cli([...args, '--resume'], env);
  assert.equal(await p2.exited, 0, p2.out());
  const events = journalOf(name);
  assertEachTrialEndsOnce(events);
  assert.deepEqual(events.slice(0, before.length), before, 'the resumed study kept what was journaled');
  assert.equal(ofType(events, 'trial_start').filter((e) => e.kind === 'plan').length, 1);
  assert.equal(ofType(events, 'end').length, 1);
  w.child.kill('SIGTERM');
  await w.exited;
  redis.kill('SIGKILL');
});

test('Redis restarted empty mid-study: the study publishes itself again from its journal, the worker rejoins, the study finishes', async () => {
  const port = await freePort();
  let redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const name = 'restart';
  const env = { POCKETLM_CACHE: path.join(work, 'cache') };
  const proposer = cli(proposerArgs(name, url, ['"optim.lr" = 0.003']), env);
  const w = cli(workerArgs(name, url, 'a'), env);
  await until('a first result in the journal', () => ofType(journalOf(name), 'trial_end').length >= 1);
  redis.kill('SIGKILL');
  await new Promise((r) => redis.on('exit', r));
  await new Promise((r) => setTimeout(r, 1000));
  redis = await startRedis(port);
  assert.equal(await proposer.exited, 0, proposer.out());
  assert.match(proposer.out(), /redis: cannot reach redis:\/\/127\.0\.0\.1:\d+\/0 .*retrying in/);
  assert.match(proposer.out(), /is gone from Redis .*publishing it again from the journal/);
  assert.match(w.out(), /redis: cannot reach .*retrying in/);
  const events = journalOf(name);
  assertEachTrialEndsOnce(events);
  assert.equal(ofType(events, 'end').length, 1);
  const r = client(url);
  assert.deepEqual((await r.lrange(studyKeys(name).journal, 0, -1)).map((l) => JSON.parse(l)), events, 'the new Redis mirrors the whole journal');
  r.disconnect();
  w.child.kill('SIGTERM');
  await w.exited;
  redis.kill('SIGKILL');
});

test('a worker whose data differs from the study\'s is refused in one line naming both hashes', async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const name = 'mismatch';
  // the study's own copy of the data, changed after the study hashed it (as another machine's file would be)
  const data = path.join(work, 'mismatch-data.txt');
  fs.writeFileSync(data, fs.readFileSync(DATA, 'utf8').slice(0, 200_000));
  const proposer = cli(proposerArgs(name, url, ['"optim.lr" = 0.003'], data), { POCKETLM_CACHE: path.join(work, 'cache-mismatch') });
  const r = client(url);
  await until('the study to be published', async () => (await r.exists(studyKeys(name).meta)) === 1);
  fs.appendFileSync(data, '\n<|endoftext|>\nOne more story that only this machine has.\n');
  const w = cli(workerArgs(name, url, 'a'), { POCKETLM_CACHE: path.join(work, 'cache-mismatch-worker') });
  assert.equal(await w.exited, 1, w.out());
  const lines = w.out().trim().split('\n').filter((l) => l.startsWith('pocketlm:'));
  assert.equal(lines.length, 1, w.out());
  assert.match(lines[0]!, /^pocketlm: refused to join the study "mismatch": train token file differs: the study has sha256 [0-9a-f]{64}, this worker prepared [0-9a-f]{64}$/);
  assert.equal(await r.llen(studyKeys(name).leases), 0, 'it took no trial');
  proposer.child.kill('SIGKILL');
  r.disconnect();
  redis.kill('SIGKILL');
});

test('a worker on a phone with a low battery, not charging, takes no trial until it charges; hostile heartbeat records are not workers', async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const name = 'battery';
  const proposer = cli(proposerArgs(name, url, ['"optim.lr" = 0.003']), { POCKETLM_CACHE: path.join(work, 'cache') });
  const r = client(url);
  await until('the study to be published', async () => (await r.exists(studyKeys(name).meta)) === 1);
  const phone = (charging: boolean): DeviceHealth => ({ freeMemoryMb: 4000, availableMemoryMb: 4000, batteryPercent: 12, charging, batterySource: 'sysfs', temperatureC: 31, temperatureSource: 'battery' });
  let readings = 0;
  const leasesWhilePaused: number[] = [];
  const said: string[] = [];
  const done = await runWorker({
    target: { url, study: name }, threads: 1, dir: path.join(work, 'battery-worker'), say: (l) => said.push(l), shouldStop: () => false, maxTrials: 1,
    guard: { minBatteryPercent: 20, maxTemperatureC: 45 }, guardWaitSeconds: 0.3,
    readHealth: async () => {
      readings++;
      if (readings > 1) leasesWhilePaused.push(await r.zcard(studyKeys(name).leases));
      return phone(readings > 3); // plugged in after the third reading
    },
  });
  assert.equal(done.done, 1, said.join('\n'));
  assert.equal(said.filter((l) => l === 'paused: battery 12% is below 20% and not charging: waiting for a charger').length, 3, said.join('\n'));
  assert.deepEqual(leasesWhilePaused.slice(0, 2), [0, 0], 'no trial taken while paused');
  assert.match(said.join('\n'), /^trial 1: ok /m);
  // heartbeat records are read back as untrusted: wrong types or extra junk are not workers
  assert.equal(parseWorkerInfo('{"id":"x","host":"h","pid":"1","threads":1,"trial":null,"heartbeat":1,"done":0}'), null);
  assert.equal(parseWorkerInfo('[1,2]'), null);
  assert.equal(parseWorkerInfo('not json'), null);
  assert.deepEqual(parseWorkerInfo('{"id":"w\\u001b[31m","host":"h","pid":1,"threads":1,"trial":3,"heartbeat":5,"done":2,"paused":"hot"}'),
    { id: 'w?[31m', host: 'h', pid: 1, threads: 1, trial: 3, heartbeat: 5, done: 2, paused: 'hot' });
  proposer.child.kill('SIGKILL');
  r.disconnect();
  redis.kill('SIGKILL');
});
