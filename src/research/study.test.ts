import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { loadConfig, stringifyConfig, type RunConfig } from '../train/config.js';
import { trainingMemoryPlan } from '../train/memory.js';
import { readJournal } from './journal.js';
import { runStudy, trialDir, trialTimeoutSeconds, type StudyOptions } from './study.js';
import { estimateTrialMemoryMb } from './memory.js';
import { runTrial, trialConfig } from './trial.js';
import type { JournalEvent, PlanEntry, RungPoint } from './types.js';
import { useTempCache } from '../util/testing.js';

// The research loop end to end, with real trial processes on a tiny model (wasm, one thread:
// deterministic, so a killed and resumed study must record what an uninterrupted one does).

const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');

let work = '';
useTempCache('pocketlm-research-', (dir) => { work = dir; });

const BASE_SET = [
  // the smallest model inside the search space (a base outside it cannot start a search)
  'model.vocab_size=512', 'model.d_model=64', 'model.n_layer=2', 'model.n_head=2', 'model.seq_len=64', 'model.ffn_hidden=128', 'model.dropout=0',
  'train.batch_size=4', 'train.grad_accum=1', 'train.eval_batches=2', 'train.log_every=10', 'train.backend="wasm"', 'train.threads=1',
  'optim.name="adamw"', 'optim.warmup_steps=5', `data.paths=[${JSON.stringify(DATA)}]`,
];

function baseConfig(): RunConfig {
  return loadConfig({ preset: 'tiny', set: BASE_SET });
}

function options(dir: string, over: Partial<StudyOptions> = {}): StudyOptions {
  return {
    dir, resume: false, base: baseConfig(), baseName: 'test', budget: { kind: 'steps', value: 40 }, maxTrials: 2, hours: null, seed: 1,
    pruning: true, strategies: 'weighted', plan: null, maxMemoryMb: 4096, threads: 1, backend: 'wasm', noiseSeeds: 3, finalSeeds: 0, rungs: 2,
    guard: { min_battery_percent: 0, max_temperature_c: 0 }, scoreBytes: 20_000, ...over,
  };
}

/** Whole stories from the start of the validation file, about `chars` of them, as a score text. */
function scoreText(file: string, chars: number): void {
  const text = fs.readFileSync(DATA, 'utf8').slice(0, chars);
  const sep = '\n<|endoftext|>\n';
  fs.writeFileSync(file, text.slice(0, text.lastIndexOf(sep)) + sep);
}

const ofType = <T extends JournalEvent['type']>(events: JournalEvent[], type: T) => events.filter((e): e is Extract<JournalEvent, { type: T }> => e.type === type);

test('one trial in its own process: rungs as it trains, then a score on the score text; its peak memory is within the estimate', async () => {
  const dir = path.join(work, 'one');
  const score = path.join(work, 'score-one.txt');
  scoreText(score, 20_000);
  const base = baseConfig();
  const cfg = trialConfig(base, { kind: 'tokens', value: 40 * 4 * 64 }, 3);
  assert.equal(cfg.train.steps, 40);
  assert.equal(cfg.train.eval_every, 10);
  // 366 steps, 3 rungs: evaluations at 92, 184, 276 and the end (floor would give a 4th rung at 364)
  assert.equal(trialConfig(base, { kind: 'steps', value: 366 }, 3).train.eval_every, 92);
  const rungs: RungPoint[] = [];
  const r = await runTrial({ config: cfg, runDir: dir, scorePath: score, backend: 'wasm', threads: 1, timeoutSeconds: 120, onRung: (p) => { rungs.push(p); return null; } });
  assert.equal(r.status, 'ok', r.reason);
  assert.equal(r.steps, 40);
  assert.equal(r.tokens, 40 * 4 * 64);
  assert.deepEqual(rungs.map((p) => [p.rung, p.step]), [[0, 10], [1, 20], [2, 30]]);
  assert.ok(r.val_bpb! > 0.5 && r.val_bpb! < 8, `bpb ${r.val_bpb}`);
  // the estimate a study rejects configs by covers what the process really used
  const estimate = estimateTrialMemoryMb(cfg, 1, 'wasm');
  assert.ok(r.peak_rss_mb <= estimate, `peak RSS ${r.peak_rss_mb.toFixed(1)} MB, estimate ${estimate.toFixed(1)} MB`);

  // pruned at its first rung: stopped there, no score
  const pruned = await runTrial({ config: cfg, runDir: path.join(work, 'one-pruned'), scorePath: score, backend: 'wasm', threads: 1, timeoutSeconds: 120, onRung: () => 'worse than the median' });
  assert.equal(pruned.status, 'pruned');
  assert.equal(pruned.val_bpb, null);
  assert.equal(pruned.reason, 'worse than the median');
  assert.equal(pruned.steps, 10);

  // a trial whose process dies without a word is a crash with the reason it could find
  const crasher = path.join(work, 'crash.mjs');
  fs.writeFileSync(crasher, 'process.once("message", () => { console.error("boom: out of cheese"); process.exit(3); });\n');
  const crashed = await runTrial({ config: cfg, runDir: path.join(work, 'one-crash'), scorePath: score, timeoutSeconds: 60, onRung: () => null, childScript: crasher });
  assert.equal(crashed.status, 'crash');
  assert.match(crashed.reason, /exited with code 3: boom: out of cheese/);
  // and one that hangs is stopped at its timeout
  const hanger = path.join(work, 'hang.mjs');
  fs.writeFileSync(hanger, 'setInterval(() => {}, 1000);\n');
  const hung = await runTrial({ config: cfg, runDir: path.join(work, 'one-hang'), scorePath: score, timeoutSeconds: 1, onRung: () => null, childScript: hanger });
  assert.equal(hung.status, 'timeout');
  assert.equal(hung.val_bpb, null);
});

test('the memory estimate covers the measured peak of a trial whose arena dominates (a ~350 MB plan)', async () => {
  // batch 32 x 512 tokens: the activations dominate (at batch 16 the attention's T x T
  // probabilities did, until the fused kernel removed them)
  const big = trialConfig(loadConfig({ preset: 'tiny', set: [...BASE_SET, 'model.seq_len=512', 'train.batch_size=32', 'model.d_model=128', 'model.n_head=4', 'model.ffn_hidden=512', 'model.n_layer=2'] }),
    { kind: 'steps', value: 2 }, 0);
  const score = path.join(work, 'score-big.txt');
  scoreText(score, 20_000);
  const r = await runTrial({ config: big, runDir: path.join(work, 'big'), scorePath: score, backend: 'wasm', threads: 1, timeoutSeconds: 300, onRung: () => null });
  assert.equal(r.status, 'ok', r.reason);
  const planMb = trainingMemoryPlan(big, { backend: 'wasm', threads: 1 }).bytes / 2 ** 20;
  const estimate = estimateTrialMemoryMb(big, 1, 'wasm');
  assert.ok(planMb > 300, `plan ${planMb} MB`);
  // the arena is really used (the plan is not an overestimate), and the estimate is an upper bound
  assert.ok(r.peak_rss_mb > 0.8 * planMb && r.peak_rss_mb <= estimate, `peak RSS ${r.peak_rss_mb.toFixed(1)} MB, plan ${planMb.toFixed(1)} MB, estimate ${estimate.toFixed(1)} MB`);
});

test('a planned study: noise first, a seed-only change is not kept, crashed and oversized trials are recorded and the loop goes on, a vocabulary change trains on its own tokens', async () => {
  const dir = path.join(work, 'plan');
  const plan: PlanEntry[] = [
    { name: 'seed only', changes: { 'train.seed': 4242 }, hypothesis: 'a different seed is not progress' },
    { name: 'missing tokenizer', changes: { 'data.tokenizer': path.join(work, 'no-such-tokenizer.json') }, hypothesis: 'crashes' },
    { name: 'huge context', changes: { 'model.seq_len': 65536 }, hypothesis: 'does not fit' },
    { name: 'bigger vocabulary', changes: { 'model.vocab_size': 768 }, hypothesis: 'fewer tokens per byte' },
  ];
  const seen: string[] = [];
  const out = await runStudy(options(dir, { plan, maxTrials: null, maxMemoryMb: 1024, pruning: false }), (ev) => seen.push(ev.type), () => false);
  assert.equal(out.reason, 'all 4 planned experiments ran');
  const events = readJournal(dir).events;
  const starts = ofType(events, 'trial_start');
  const ends = ofType(events, 'trial_end');
  assert.deepEqual(starts.slice(0, 3).map((s) => [s.kind, s.seed]), [['noise', 1], ['noise', 2], ['noise', 3]]);
  const noise = ofType(events, 'noise')[0]!.noise;
  assert.equal(noise.bpb.length, 3);
  assert.ok(noise.sd > 0 && noise.margin >= 2 * noise.sd - 1e-12, JSON.stringify(noise));
  const byName = (name: string) => starts.find((s) => s.kind === 'plan' && s.description.startsWith(name))!;
  const endOf = (id: number) => ends.find((e) => e.id === id)!.result;
  // the seed change trained fine and was not kept
  const seedTrial = byName('seed only');
  assert.equal(seedTrial.seed, 4242);
  assert.equal(endOf(seedTrial.id).status, 'ok');
  const seedDecision = ofType(events, 'decision').find((d) => d.id === seedTrial.id)!;
  assert.equal(seedDecision.kept, false, seedDecision.reason);
  // a crash is recorded with its one-line reason, a config over the memory limit is rejected unrun
  const crash = endOf(byName('missing tokenizer').id);
  assert.equal(crash.status, 'crash');
  assert.match(crash.reason, /no-such-tokenizer\.json/);
  assert.equal(crash.val_bpb, null);
  const huge = endOf(byName('huge context').id);
  assert.equal(huge.status, 'rejected');
  assert.match(huge.reason, /over the limit of 1024 MB/);
  // the vocabulary change prepared its own tokenizer and token files, and was scored in bits per byte
  const vocabTrial = byName('bigger vocabulary');
  assert.equal(endOf(vocabTrial.id).status, 'ok', endOf(vocabTrial.id).reason);
  const trained = loadConfig({ file: path.join(trialDir(dir, vocabTrial.id), 'config.toml') });
  assert.equal(trained.model.vocab_size, 768);
  const tok = JSON.parse(fs.readFileSync(path.join(trialDir(dir, vocabTrial.id), 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  assert.ok(Object.keys(tok.model.vocab).length > 512, 'the trial trained its own 768-token tokenizer');
  // derived files: results.tsv has a row per trial, best.toml is a config train accepts
  const tsv = fs.readFileSync(path.join(dir, 'results.tsv'), 'utf8').trim().split('\n');
  assert.equal(tsv.length, 1 + starts.length);
  const best = loadConfig({ file: path.join(dir, 'best.toml') });
  assert.ok(best.model.d_model > 0);
  assert.match(fs.readFileSync(path.join(dir, 'progress.svg'), 'utf8'), /<svg [^]*<\/svg>\s*$/);
  assert.ok(seen.includes('noise') && seen.includes('decision') && seen.includes('end'));
  // a finished study resumed does nothing more
  const again = await runStudy(options(dir, { resume: true }), () => {}, () => false);
  assert.equal(again.reason, out.reason);
  assert.equal(readJournal(dir).events.length, events.length);
});

/** Runs the CLI; resolves with its exit code and output. `killAfterMs` sends SIGKILL then. */
function cli(args: string[], killAfterMs?: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = killAfterMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The journal without what differs between two runs of the same study (times, speeds, memory). */
function comparable(events: JournalEvent[]): unknown[] {
  return events.filter((e) => e.type !== 'pause').map((e) => {
    const { time: _t, ...rest } = e as JournalEvent & { time: string };
    if (rest.type === 'trial_end') {
      const { seconds: _s, tokens_per_second: _v, peak_rss_mb: _m, ...r } = rest.result;
      return { ...rest, result: r };
    }
    if (rest.type === 'study') return { ...rest, score: { ...rest.score, file: '' } };
    return rest;
  });
}

test('a study killed with SIGKILL at random moments and resumed records exactly what an uninterrupted one does, repeating no finished trial', async () => {
  const cfgFile = path.join(work, 'base.toml');
  fs.writeFileSync(cfgFile, stringifyConfig(baseConfig()));
  const common = ['research', '--config', cfgFile, '--budget-steps', '30', '--trials', '3', '--noise-seeds', '2', '--final-seeds', '1', '--rungs', '2',
    '--threads', '1', '--backend', 'wasm', '--min-battery', '0', '--max-temperature', '0', '--score-kb', '10', '--seed', '7', '--max-memory-mb', '2000'];
  const clean = path.join(work, 'study-clean');
  const r0 = await cli([...common, '--out', clean]);
  assert.equal(r0.code, 0, r0.stderr);
  const want = comparable(readJournal(clean).events);

  const killed = path.join(work, 'study-killed');
  let r = await cli([...common, '--out', killed], 1500 + Math.floor(Math.random() * 1500));
  for (let round = 0; round < 12 && r.code !== 0; round++) {
    if (r.code !== null) assert.fail(`exit ${r.code}: ${r.stderr}`);
    // killed: resume, and kill again at a random moment on the first rounds
    // (killed before it even made its folder: a new start, as a user would do)
    const again = fs.existsSync(killed) ? ['--resume'] : [];
    r = await cli([...common, '--out', killed, ...again], round < 3 ? 1000 + Math.floor(Math.random() * 2500) : undefined);
  }
  assert.equal(r.code, 0, r.stderr);
  const events = readJournal(killed).events;
  // no finished trial ran again: after its trial_end an id never starts again
  const ended = new Set<number>();
  for (const e of events) {
    if (e.type === 'trial_start') assert.ok(!ended.has(e.id), `trial ${e.id} started again after it had finished`);
    if (e.type === 'trial_end') ended.add(e.id);
  }
  // an interrupted trial is started again from scratch: the journal then holds its start twice.
  // Apart from those repeated starts (and their rungs), it is the uninterrupted study's journal.
  const dedup: JournalEvent[] = [];
  for (const e of events) {
    if (e.type === 'trial_start' || e.type === 'rung') {
      const id = e.id;
      const laterStart = events.findIndex((x, i) => i > events.indexOf(e) && x.type === 'trial_start' && x.id === id);
      if (laterStart >= 0) continue;
    }
    dedup.push(e);
  }
  assert.deepEqual(comparable(dedup), want);

  // a finished study given a larger --trials on --resume goes on: one more proposed trial
  const more = await cli([...common.map((a) => (a === '3' ? '4' : a)), '--out', clean, '--resume']);
  assert.equal(more.code, 0, more.stderr);
  const extended = readJournal(clean).events;
  assert.equal(ofType(extended, 'limits').length, 1);
  const proposed = (evs: JournalEvent[]) => ofType(evs, 'trial_start').filter((s) => !['noise', 'confirm', 'final'].includes(s.kind)).length;
  assert.equal(proposed(extended), 4);
  assert.equal(ofType(extended, 'end').at(-1)!.reason, '4 trials ran');
});

test('bad input: one line each, and a corrupt journal line stops --resume without changing anything', async () => {
  const cfgFile = path.join(work, 'base-bad.toml');
  fs.writeFileSync(cfgFile, stringifyConfig(baseConfig()));
  const planFile = path.join(work, 'plan.toml');
  fs.writeFileSync(planFile, '[[experiment]]\nname = "typo"\nchanges = { "optim.lrr" = 0.001 }\n');
  const cases: [string[], RegExp][] = [
    [['--plan', planFile], /^pocketlm: --plan .*plan\.toml, experiment 1 \("typo"\): .*optim\.lrr/],
    [['--budget-tokens', '0'], /^pocketlm: --budget-tokens must be/],
    [['--out', '/dev/null/study'], /^pocketlm: cannot write the study folder \/dev\/null\/study/],
    [['--hours', '1', '--trials', '2'], /^pocketlm: give --hours or --trials, not both/],
  ];
  for (const [extra, want] of cases) {
    const out = extra.includes('--out') ? [] : ['--out', path.join(work, `bad-${extra[0]!.slice(2)}`)];
    const r = await cli(['research', '--config', cfgFile, ...out, ...extra]);
    assert.equal(r.code, 1, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  // a study whose journal has a corrupt line: --resume refuses, naming the line; nothing changes
  const dir = path.join(work, 'corrupt');
  fs.mkdirSync(dir);
  const header = { type: 'study', time: 't', version: 1, base_config: stringifyConfig(baseConfig()) };
  fs.writeFileSync(path.join(dir, 'journal.jsonl'), JSON.stringify(header) + '\nnot json\n');
  const before = fs.readFileSync(path.join(dir, 'journal.jsonl'));
  const r = await cli(['research', '--config', cfgFile, '--out', dir, '--resume']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^pocketlm: .*journal\.jsonl line 2: not valid JSON/);
  assert.deepEqual(fs.readFileSync(path.join(dir, 'journal.jsonl')), before);
  // a new study in a folder holding one is refused
  const r2 = await cli(['research', '--config', cfgFile, '--out', dir]);
  assert.match(r2.stderr, /already holds a study; continue it with --resume/);
});

test('a trial counts as hung after 6x the time its FLOPs should take at the speed of the finished trials', () => {
  const base = trialConfig(loadConfig({ preset: 'seed-small' }), { kind: 'tokens', value: 300_000 }, 3);
  const wide = trialConfig(loadConfig({ preset: 'seed-small', set: ['model.d_model=256', 'model.ffn_hidden=1024'] }), { kind: 'tokens', value: 300_000 }, 3);
  const done = (seconds: number) => ({ config: base, result: { status: 'ok' as const, val_loss: 1, val_bpb: 1, steps: base.train.steps, tokens: 300_000, seconds, tokens_per_second: 0, peak_rss_mb: 0, reason: '' } });
  assert.equal(trialTimeoutSeconds(base, { kind: 'tokens', value: 300_000 }, []), 4 * 3600);
  const t = (c: RunConfig) => trialTimeoutSeconds(c, { kind: 'tokens', value: 300_000 }, [done(90), done(100), done(400)]);
  assert.ok(Math.abs(t(base) - 600) <= 6, `${t(base)}`); // median 100 s for the same work
  // about 3.3x the FLOPs per token: about 3.3x the time allowed (the base's trials took 100 s)
  assert.ok(t(wide) > 3 * t(base) && t(wide) < 4 * t(base), `${t(wide)} vs ${t(base)}`);
  assert.equal(trialTimeoutSeconds(base, { kind: 'seconds', value: 60 }, []), 300);
  assert.equal(trialTimeoutSeconds(base, { kind: 'tokens', value: 300_000 }, [done(1)]), 300);
});
