import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { packageRoot, tinystoriesSampleDir } from '../util/paths.js';
import { readLog, type LogRecord } from './log.js';
import { snapshotTree } from '../util/testing.js';

// End-to-end through `node bin/pocketlm.js train`: a run killed with SIGKILL at random moments
// and resumed each time must log exactly the same numbers as an uninterrupted run. wasm with one
// thread: its kernels are deterministic for a given thread count.

const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
const DATA = path.join(tinystoriesSampleDir(), 'valid-00.txt');
const STEPS = 160;

let work = '';
let env: NodeJS.ProcessEnv = {};
let configFile = '';
/** The no-network run prepares the bundled TinyStories sample (seconds of work): started early, checked last. */
let offline: Promise<{ code: number | null; stdout: string; stderr: string }> = Promise.resolve({ code: null, stdout: '', stderr: '' });

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-resume-'));
  env = { ...process.env, POCKETLM_CACHE: path.join(work, 'cache') };
  offline = new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'train', '--preset', 'tiny', '--steps', '10', '--out', path.join(work, 'offline'), '--backend', 'wasm', '--threads', '1'], {
      // port 9 on localhost: nothing listens there, so every download attempt fails at once
      env: { ...env, POCKETLM_TINYSTORIES_URL: 'http://127.0.0.1:9/' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  configFile = path.join(work, 'tiny.toml');
  fs.writeFileSync(configFile, `extends = "tiny"
[model]
vocab_size = 512
d_model = 32
n_layer = 1
n_head = 2
seq_len = 32
ffn_hidden = 64
[train]
batch_size = 4
grad_accum = 2
steps = ${STEPS}
time_seconds = 0
eval_every = 40
eval_batches = 2
log_every = 1
checkpoint_every = 8
checkpoint_minutes = 0
sample_tokens = 8
backend = "wasm"
threads = 1
[optim]
warmup_steps = 10
`);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

interface Done { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function start(out: string, extra: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Done> } {
  const child = spawn(process.execPath, [BIN, 'train', '--config', configFile, '--data', DATA, '--out', out, ...extra], {
    env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Done>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

function manifestStep(dir: string): number {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')) as { step: number }).step;
  } catch {
    return 0; // absent (or, never, half-written: it is replaced atomically)
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until cond() holds or the child exits; true when cond() held. */
async function waitFor(cond: () => boolean, exited: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (cond()) return true;
    if (exited()) return cond();
    await sleep(5);
  }
  throw new Error('timed out waiting for the training process');
}

/** The deterministic fields of each record (timings excluded), for bit-for-bit comparison. */
function numbers(dir: string): Omit<LogRecord, 'tokens_per_second' | 'elapsed'>[] {
  return readLog(path.join(dir, 'log.jsonl')).map(({ step, loss, lr, grad_norm, tokens, val_loss, val_bpb }) => ({ step, loss, lr, grad_norm, tokens, val_loss, val_bpb }));
}

let reference: ReturnType<typeof numbers> = [];

test('an uninterrupted tiny run completes and logs every step', async () => {
  const dir = path.join(work, 'ref');
  const r = await start(dir).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /backend: wasm \(1 thread\): requested/);
  assert.match(r.stdout, /stopped after step 160 \(step count reached\)/);
  assert.match(r.stdout, /trigram/);
  reference = numbers(dir);
  assert.equal(reference.length, STEPS);
  assert.deepEqual(reference.map((x) => x.step), Array.from({ length: STEPS }, (_, i) => i + 1));
  assert.equal(manifestStep(dir), STEPS);
});

const snapshot = (dir: string): Record<string, string> => snapshotTree(dir);

test('leftovers of killed writes (temp files, uncommitted ckpt folders) are removed when the run is next opened', async () => {
  const dir = path.join(work, 'ref');
  const kept = snapshot(dir);
  // as a kill during an atomic write, and during a save before (ckpt-000200) or after (ckpt-000152) its commit, leaves them
  const temps = [path.join(dir, `.checkpoint.json.tmp-99999-${Date.now().toString(36)}`), path.join(dir, 'ckpt-000160', '.model.safetensors.tmp-99999-abc')];
  for (const f of temps) fs.writeFileSync(f, '{"half');
  for (const f of ['ckpt-000200', 'ckpt-000152']) {
    fs.mkdirSync(path.join(dir, f));
    fs.writeFileSync(path.join(dir, f, 'model.safetensors'), 'partial');
  }
  // the run is complete: resuming evaluates and reports without training or saving
  const r = await start(dir, ['--resume']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /resuming from the checkpoint at step 160/);
  assert.deepEqual(snapshot(dir), kept);
});

test('killed with SIGKILL at random moments and resumed, the run logs exactly the same numbers', async () => {
  assert.ok(reference.length, 'needs the reference run');
  const dir = path.join(work, 'killed');
  // A fixed-seed generator for the kill delays: random moments, reproducible test.
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let kills = 0;
  let last = 0;
  for (let round = 0; round < 6 && kills < 3; round++) {
    const { child, done } = start(dir, round === 0 ? [] : ['--resume']);
    let exited = false;
    void done.then(() => (exited = true));
    // wait for progress past the last checkpoint, then kill at a random moment after it
    const progressed = await waitFor(() => manifestStep(dir) > last, () => exited);
    if (!progressed || exited) break;
    await sleep(rand() * 40);
    if (exited) break;
    child.kill('SIGKILL');
    const r = await done;
    const now = manifestStep(dir);
    // killed after its last checkpoint (while computing the report): nothing left to resume
    if (now >= STEPS) break;
    assert.equal(r.signal, 'SIGKILL');
    kills++;
    assert.ok(now > last, `checkpoint advanced (${last} -> ${now})`);
    last = now;
  }
  assert.ok(kills >= 2, `the run was killed at least twice (${kills})`);
  const r = await start(dir, ['--resume']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /resuming from the checkpoint at step \d+/);
  assert.deepEqual(numbers(dir), reference);
  // only the latest checkpoint folder is kept
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('ckpt-')), ['ckpt-000160']);
});

/** Kills and resumes the run in `dir` (from its checkpoint, which must exist) at random moments, then lets it finish. */
async function killAndResume(dir: string, seed: number, extra: string[], endStep: number): Promise<Done> {
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let kills = 0;
  let last = manifestStep(dir);
  for (let round = 0; round < 6 && kills < 3; round++) {
    const { child, done } = start(dir, ['--resume', ...extra]);
    let exited = false;
    void done.then(() => (exited = true));
    const progressed = await waitFor(() => manifestStep(dir) > last, () => exited);
    if (!progressed || exited) break;
    await sleep(rand() * 40);
    if (exited) break;
    child.kill('SIGKILL');
    const r = await done;
    const now = manifestStep(dir);
    if (now >= endStep) break;
    assert.equal(r.signal, 'SIGKILL');
    kills++;
    assert.ok(now > last, `checkpoint advanced (${last} -> ${now})`);
    last = now;
  }
  assert.ok(kills >= 2, `the run was killed at least twice (${kills}; checkpoint at step ${last} of ${endStep})`);
  return start(dir, ['--resume', ...extra]).done;
}

test('a timed run killed with SIGKILL after its time became a step budget resumes bit for bit', async () => {
  // The reference runs by time, uninterrupted except for a pause (SIGSTOP) while its folder is
  // copied: the copy is the state a SIGKILL at that moment would leave. The copy is then killed
  // at random moments and resumed until it finishes; both must log the same numbers.
  // Checkpoints every 4 steps: a loaded machine measures fewer steps, and each kill needs a checkpoint.
  const timed = ['--steps', '0', '--set', 'train.time_seconds=2', '--set', 'train.checkpoint_every=4'];
  const ref = path.join(work, 'timed-ref');
  const { child, done } = start(ref, timed);
  let exited = false;
  void done.then(() => (exited = true));
  // after 20 steps at least, the time becomes steps; the next checkpoint holds them
  const budgetSaved = (): boolean => {
    try {
      return 'step_budget' in (JSON.parse(fs.readFileSync(path.join(ref, 'checkpoint.json'), 'utf8')) as object);
    } catch {
      return false;
    }
  };
  assert.ok(await waitFor(budgetSaved, () => exited), 'a checkpoint holds the step budget');
  const copy = path.join(work, 'timed-killed');
  child.kill('SIGSTOP');
  try {
    fs.cpSync(ref, copy, { recursive: true });
  } finally {
    child.kill('SIGCONT');
  }
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  const budget = /time budget of 2 s became ([\d,]+) steps/.exec(r.stdout);
  assert.ok(budget, r.stdout);
  const steps = Number(budget[1]!.replace(/,/g, ''));
  const reference = numbers(ref);
  assert.equal(reference.length, steps);
  assert.equal(manifestStep(ref), steps);
  const m = JSON.parse(fs.readFileSync(path.join(copy, 'checkpoint.json'), 'utf8')) as { step: number; step_budget?: { steps: number } };
  assert.ok(m.step >= 20 && m.step < steps, `copied at step ${m.step} of ${steps}`);
  assert.equal(m.step_budget?.steps, steps, 'the copied checkpoint holds the step budget');
  const k = await killAndResume(copy, 777, timed, steps);
  assert.equal(k.code, 0, k.stderr);
  assert.deepEqual(numbers(copy), reference);
});

test('an rwkv model (model.mixer = "rwkv") killed with SIGKILL and resumed logs the same numbers as uninterrupted, and samples past seq_len', async () => {
  const rwkv = ['--set', 'model.mixer="rwkv"', '--set', 'model.rwkv_chunk=12', '--steps', '48', '--set', 'train.checkpoint_every=4', '--set', 'train.eval_every=16'];
  const ref = path.join(work, 'rwkv-ref');
  const r0 = await start(ref, rwkv).done;
  assert.equal(r0.code, 0, r0.stderr);
  assert.match(r0.stdout, /parameters \(rwkv time mixing\)/);
  const dir = path.join(work, 'rwkv-killed');
  const { child, done } = start(dir, rwkv);
  let exited = false;
  void done.then(() => (exited = true));
  assert.ok(await waitFor(() => manifestStep(dir) >= 4, () => exited), 'a first checkpoint');
  child.kill('SIGKILL');
  await done;
  const k = await killAndResume(dir, 4242, rwkv, 48);
  assert.equal(k.code, 0, k.stderr);
  assert.deepEqual(numbers(dir), numbers(ref));
  // 100 tokens from a model with seq_len 32: the recurrent state has no window to slide
  const sample = spawn(process.execPath, [BIN, 'sample', '--run', dir, '--prompt', 'Once', '--max-tokens', '100', '--all', '--backend', 'wasm', '--threads', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  sample.stdout.on('data', (d: Buffer) => (out += d.toString()));
  sample.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => sample.on('close', resolve));
  assert.equal(code, 0, err);
  assert.ok(out.length > 100, `a sample of 100 tokens: ${JSON.stringify(out)}`);
});

test('SIGINT finishes the step, saves a checkpoint, exits 130; resuming gives the same numbers', async () => {
  assert.ok(reference.length, 'needs the reference run');
  const dir = path.join(work, 'interrupted');
  const { child, done } = start(dir);
  let exited = false;
  void done.then(() => (exited = true));
  assert.ok(await waitFor(() => manifestStep(dir) >= 10, () => exited));
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stdout, /SIGINT: finishing this step/);
  assert.match(r.stdout, /interrupted/);
  const logged = numbers(dir);
  const step = manifestStep(dir);
  assert.ok(step > 0 && step < STEPS);
  assert.equal(logged.at(-1)!.step, step, 'the checkpoint is at the last finished step');
  const r2 = await start(dir, ['--resume']).done;
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(numbers(dir), reference);
});

test('SIGTERM also saves a checkpoint at the last finished step and exits 143', async () => {
  const dir = path.join(work, 'terminated');
  const { child, done } = start(dir);
  let exited = false;
  void done.then(() => (exited = true));
  assert.ok(await waitFor(() => manifestStep(dir) >= 8, () => exited));
  child.kill('SIGTERM');
  const r = await done;
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stdout, /SIGTERM: finishing this step/);
  assert.equal(numbers(dir).at(-1)!.step, manifestStep(dir));
  assert.deepEqual(numbers(dir), reference.slice(0, manifestStep(dir)));
});

test('a second train into a run folder without --resume is refused; a corrupt checkpoint is refused on resume', async () => {
  const dir = path.join(work, 'ref');
  const r = await start(dir).done;
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /already holds a run with a checkpoint; add --resume/);
  const file = path.join(dir, 'ckpt-000160', 'model.safetensors');
  fs.truncateSync(file, fs.statSync(file).size - 10);
  // another checkpoint folder: removed as a leftover only once the manifest's checkpoint has loaded
  const other = path.join(dir, 'ckpt-000150');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'model.safetensors'), 'maybe the only good weights left');
  const r2 = await start(dir, ['--resume', '--steps', '170']).done;
  assert.equal(r2.code, 1);
  assert.equal(r2.stderr.trim().split('\n').length, 1, r2.stderr);
  assert.match(r2.stderr, /^pocketlm: checkpoint file .*model\.safetensors has \d+ bytes, expected \d+ \(truncated or replaced\)/);
  assert.equal(fs.readFileSync(path.join(other, 'model.safetensors'), 'utf8'), 'maybe the only good weights left');
  const r3 = await start(dir, ['--resume', '--set', 'model.d_model=64', '--set', 'model.ffn_hidden=128']).done;
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /^pocketlm: checkpoint in .* does not match: model\.d_model is 32 in the checkpoint but 64 in the config\n$/);
});

test('--resume with checkpoint.json gone refuses in one line naming the checkpoint it found, and deletes nothing', async () => {
  const dir = path.join(work, 'lost-manifest');
  const r = await start(dir, ['--steps', '16']).done;
  assert.equal(r.code, 0, r.stderr);
  fs.rmSync(path.join(dir, 'checkpoint.json'));
  const before = snapshot(dir);
  assert.ok(before['ckpt-000016/model.safetensors']);
  const r2 = await start(dir, ['--resume', '--steps', '32']).done;
  assert.equal(r2.code, 1, r2.stdout);
  assert.equal(r2.stderr.trim().split('\n').length, 1, r2.stderr);
  assert.match(r2.stderr, /^pocketlm: .*lost-manifest holds ckpt-000016\/, best\/, log\.jsonl, config\.toml, tokenizer\.json but no checkpoint\.json/);
  assert.doesNotMatch(r2.stdout, /starting from scratch/);
  assert.deepEqual(snapshot(dir), before);
  // a new run into the same folder is refused as well
  const r3 = await start(dir, ['--steps', '16']).done;
  assert.equal(r3.code, 1, r3.stdout);
  assert.match(r3.stderr, /^pocketlm: .*lost-manifest already holds run files \(ckpt-000016\/, best\/, log\.jsonl, config\.toml, tokenizer\.json\)/);
  assert.deepEqual(snapshot(dir), before);
});

test('--resume on a folder that does not exist refuses in one line and creates nothing', async () => {
  const dir = path.join(work, 'never-trained');
  const r = await start(dir, ['--resume']).done;
  assert.equal(r.code, 1, r.stdout);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^pocketlm: --resume: run folder .*never-trained does not exist/);
  assert.equal(fs.existsSync(dir), false);
});

test('a second trainer on a folder in use is refused naming the owner pid; the first run is undisturbed', async () => {
  const dir = path.join(work, 'shared');
  // long enough to still be running while the others try; stopped with SIGTERM below
  const first = start(dir, ['--steps', '100000']);
  let exited = false;
  void first.done.then(() => (exited = true));
  try {
    assert.ok(await waitFor(() => manifestStep(dir) >= 8, () => exited));
    for (const extra of [['--resume'], []]) {
      const other = start(dir, extra);
      // a contender that is not refused would train alongside (for 100000 steps): stop it
      const timer = setTimeout(() => other.child.kill('SIGKILL'), 60_000);
      const r = await other.done;
      clearTimeout(timer);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^pocketlm: run folder .*shared is in use by pocketlm process pid ${first.child.pid}\\b`));
    }
  } finally {
    first.child.kill('SIGTERM');
  }
  const r = await first.done;
  assert.equal(r.code, 143, r.stderr);
  const steps = numbers(dir).map((x) => x.step);
  assert.deepEqual(steps, Array.from({ length: steps.length }, (_, i) => i + 1), 'one writer: the log holds each step once, in order');
  assert.equal(manifestStep(dir), steps.length);
  assert.equal(fs.existsSync(path.join(dir, 'lock')), false, 'the lock is released at the end');
});

test('with no network, the default dataset trains on the bundled TinyStories sample after a one-line note', async () => {
  const { code, stdout, stderr } = await offline;
  assert.equal(code, 0, stderr);
  const lines = stdout.split('\n');
  assert.match(lines[0]!, /^note: TinyStories could not be downloaded \(.*ECONNREFUSED.*\): using the TinyStories sample bundled with pocketlm instead/);
  assert.equal(lines.filter((l) => l.startsWith('note: ')).length, 1);
  assert.match(stdout, /stopped after step 10 \(step count reached\)/);
  // the run says what it trained on, so --resume reads the same data without trying the network
  assert.match(fs.readFileSync(path.join(work, 'offline', 'config.toml'), 'utf8'), /dataset = "tinystories-sample"/);
});
