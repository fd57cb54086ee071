#!/usr/bin/env node
// Research across workers, measured (BENCHMARKS.md, "Research across machines"): the same planned
// study run three ways on this machine, alternating, each round in the same order:
//   local    one process, trials one at a time with --threads 2 (no Redis)
//   redis1x2 proposer + 1 worker with 2 threads
//   redis2x1 proposer + 2 workers with 1 thread each
// Prints wall time and trials per hour for each run, and the overhead per trial: the time from
// a trial's start event to its end event in the journal minus the seconds the trial itself
// measured (process start, data check, scoring; with Redis also the queue and the lease).
// Usage: node scripts/bench-research-workers.mjs [--rounds 2] [--tokens 100000] [--preset seed-small]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin', 'pocketlm.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const rounds = Number(arg('rounds', '2'));
const tokens = arg('tokens', '100000');
const preset = arg('preset', 'seed-small');
const data = path.join(root, '..', 'shared', 'data', 'tinystories');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-bench-workers-'));
const env = { ...process.env, POCKETLM_CACHE: path.join(work, 'cache') };

if (spawnSync('redis-server', ['--version']).error) {
  console.error('redis-server is not installed (Debian: apt-get install redis-server)');
  process.exit(1);
}

const plan = path.join(work, 'plan.toml');
fs.writeFileSync(plan, ['0.0008', '0.0015', '0.002', '0.003'].map((lr, i) => `[[experiment]]\nname = "lr${i}"\nchanges = { "optim.lr" = ${lr} }\n`).join('\n'));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function run(args) {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return { child, done: new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.slice(0, 2).join(' ')} exited ${code}: ${err.trim().split('\n').pop()}`))))) };
}

const studyArgs = (out) => ['research', '--preset', preset, '--data', path.join(data, 'train-00.txt'), path.join(data, 'train-01.txt'),
  '--val', path.join(data, 'valid-00.txt'), '--plan', plan, '--budget-tokens', tokens, '--noise-seeds', '2', '--final-seeds', '0',
  '--no-prune', '--rungs', '1', '--score-kb', '50', '--min-battery', '0', '--max-temperature', '0', '--out', out];

async function once(mode, index) {
  const out = path.join(work, `${mode}-${index}`);
  const t0 = Date.now();
  if (mode === 'local') {
    await run([...studyArgs(out), '--threads', '2']).done;
  } else {
    const port = await freePort();
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    const url = `redis://127.0.0.1:${port}/0`;
    const name = `${mode}${index}`;
    const proposer = run([...studyArgs(out), '--storage', url, '--study', name]);
    const [n, threads] = mode === 'redis2x1' ? [2, '1'] : [1, '2'];
    const workers = Array.from({ length: n }, (_, w) => run(['research', 'worker', '--storage', url, '--study', name, '--threads', threads, '--out', path.join(work, `${name}-w${w}`)]));
    try {
      await proposer.done;
    } finally {
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.allSettled(workers.map((w) => w.done));
      redis.kill('SIGKILL');
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const events = fs.readFileSync(path.join(out, 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const starts = new Map(events.filter((e) => e.type === 'trial_start').map((e) => [e.id, Date.parse(e.time)]));
  const ends = events.filter((e) => e.type === 'trial_end');
  const overheads = ends.map((e) => (Date.parse(e.time) - starts.get(e.id)) / 1000 - e.result.seconds);
  const trainSeconds = ends.reduce((a, e) => a + e.result.seconds, 0) / ends.length;
  return { mode, trials: ends.length, seconds, perHour: (ends.length / seconds) * 3600, overhead: overheads.reduce((a, b) => a + b, 0) / overheads.length, trainSeconds };
}

const modes = ['local', 'redis1x2', 'redis2x1'];
const results = [];
console.log(`${preset}, ${tokens} tokens per trial, 2 noise seeds + 4 planned trials, no pruning; ${os.cpus()[0].model}, ${os.cpus().length} cores`);
try {
  for (let r = 0; r < rounds; r++) {
    for (const m of modes) {
      const load = os.loadavg()[0].toFixed(2);
      const x = await once(m, r);
      results.push(x);
      console.log(`${m.padEnd(9)} round ${r + 1}: ${x.trials} trials in ${x.seconds.toFixed(1)} s = ${x.perHour.toFixed(1)} trials/h; trial ${x.trainSeconds.toFixed(1)} s + overhead ${x.overhead.toFixed(2)} s (load ${load})`);
    }
  }
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  console.log('medians:');
  for (const m of modes) {
    const xs = results.filter((x) => x.mode === m);
    console.log(`${m.padEnd(9)} ${median(xs.map((x) => x.perHour)).toFixed(1)} trials/h, trial ${median(xs.map((x) => x.trainSeconds)).toFixed(1)} s, overhead per trial ${median(xs.map((x) => x.overhead)).toFixed(2)} s`);
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
