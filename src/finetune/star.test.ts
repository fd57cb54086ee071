import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { packageRoot } from '../util/paths.js';
import { loadConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { readManifest } from '../train/checkpoint.js';
import { readLog } from '../train/log.js';

// STaR, SPIN and eval --task words through the CLI, on a tiny base run trained here with the words
// format. Its stories are 320 variations of one template, so a 150-step model writes them well
// enough for the verifier to accept some samples: STaR then really keeps samples and trains.

function templateStories(): string {
  const docs: string[] = [];
  for (const a of ['dog', 'cat', 'bird', 'frog', 'duck']) for (const p of ['park', 'house', 'garden', 'river'])
    for (const t of ['ball', 'kite', 'box', 'hat']) for (const j of ['happy', 'funny', 'sleepy', 'proud'])
      docs.push(`The ${a} went to the ${p}. The ${a} found a ${t} near the ${p}. It was ${j} and played with the ${t} until dark. Then it went home.`);
  return docs.map((d) => `${d}\n<|endoftext|>\n`).join('');
}
const BIN = path.join(packageRoot(), 'bin', 'pocketlm.js');
let work = '';
let base = '';
let savedCache: string | undefined;

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-star-'));
  savedCache = process.env.POCKETLM_CACHE;
  process.env.POCKETLM_CACHE = path.join(work, 'cache');
  base = path.join(work, 'base');
  const data = path.join(work, 'stories.txt');
  fs.writeFileSync(data, templateStories());
  const config = loadConfig({
    preset: 'tiny',
    set: [
      'model.vocab_size=300', 'model.d_model=32', 'model.n_layer=1', 'model.n_head=2', 'model.seq_len=64', 'model.ffn_hidden=64',
      'train.batch_size=8', 'train.steps=150', 'train.time_seconds=0', 'train.eval_every=0', 'train.eval_batches=2',
      'train.sample_tokens=0', 'train.backend="wasm"', 'train.threads=1', `data.paths=[${JSON.stringify(data)}]`, 'data.words_fraction=0.5',
    ],
  });
  await train({ config, runDir: base, resume: false }, () => {}, () => false);
});

after(() => {
  if (savedCache === undefined) delete process.env.POCKETLM_CACHE;
  else process.env.POCKETLM_CACHE = savedCache;
  fs.rmSync(work, { recursive: true, force: true });
});

const env = () => ({ ...process.env, POCKETLM_CACHE: path.join(work, 'cache') });
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: env() });

/** sha256 of every file under a folder, by relative path. */
function treeHash(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** log.jsonl without the wall-clock field. */
function logOf(dir: string): Record<string, unknown>[] {
  return fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const r = JSON.parse(l) as Record<string, unknown>;
    delete r.seconds;
    return r;
  });
}

function weightsOf(dir: string): string {
  const m = readManifest(dir)!;
  return crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, m.folder, 'model.safetensors'))).digest('hex');
}

// one required word: success is reachable for the 150-step model, so STaR keeps samples and trains
const STAR = ['--iterations', '3', '--words', '1', '--min-words', '10', '--pool', '6', '--samples', '4', '--steps', '3', '--batch', '4', '--prompts', '6', '--max-tokens', '40', '--backend', 'wasm', '--threads', '1'];

async function killAfterLines(args: string[], dir: string, lines: number): Promise<number> {
  const child = spawn(process.execPath, [BIN, ...args], { env: env(), stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const log = path.join(dir, 'log.jsonl');
  for (;;) {
    const n = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.trim()).length : 0;
    if (n >= lines) break;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGKILL');
  await exited;
  return fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.trim()).length;
}

for (const control of [true, false]) {
  test(`STaR${control ? ' control' : ''} killed with SIGKILL and resumed logs the same iterations and ends with the same weights as an uninterrupted run; the base run is unchanged`, async () => {
    const before = treeHash(base);
    const args = control ? [...STAR, '--control'] : STAR;
    const whole = path.join(work, `whole-${control}`);
    const r = cli(['star', '--run', base, '--out', whole, ...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /iteration 3: .*held-out \d+\/6/);
    const full = logOf(whole);
    assert.deepEqual(full.map((x) => x.iteration), [0, 1, 2, 3]);
    // every iteration trains (STaR: it kept samples the verifier accepted), so the weights move
    assert.ok(full.slice(1).every((x) => x.steps === 3 && typeof x.train_loss === 'number'), JSON.stringify(full));
    if (!control) assert.ok(full.slice(1).every((x) => (x.kept as number) > 0));
    assert.notEqual(full[3]!.val_loss, full[0]!.val_loss);
    // iteration 0 is the base: the very validation loss of its training log's last evaluation
    assert.equal(full[0]!.val_loss, readLog(path.join(base, 'log.jsonl')).at(-1)!.val_loss);

    const cut = path.join(work, `cut-${control}`);
    const at = await killAfterLines(['star', '--run', base, '--out', cut, ...args], cut, 2);
    assert.ok(at < 4, `the run finished before the kill (${at} lines)`);
    const again = cli(['star', '--run', base, '--out', cut, ...args, '--resume']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /resuming after iteration [0-3]\n/);
    assert.deepEqual(logOf(cut), full);
    assert.equal(weightsOf(cut), weightsOf(whole));
    assert.deepEqual(treeHash(base), before);
  });
}

test('star refuses to start over a run folder, and a resume with other options, in one line', () => {
  const dir = path.join(work, 'refuse');
  assert.equal(cli(['star', '--run', base, '--out', dir, ...STAR, '--iterations', '1']).status, 0);
  const again = cli(['star', '--run', base, '--out', dir, ...STAR, '--iterations', '1']);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /^pocketlm: .*\n$/);
  const other = cli(['star', '--run', base, '--out', dir, ...STAR, '--iterations', '1', '--lr', '1e-3', '--resume']);
  assert.equal(other.status, 1);
  assert.match(other.stderr, /^pocketlm: --resume: lr is 0.0003 in .* but 0.001 now/);
  const same = cli(['star', '--run', base, '--out', base, ...STAR]);
  assert.equal(same.status, 1);
  assert.match(same.stderr, /the base run is never changed/);
});

test('eval --task words: success rate with a Wilson interval; the same seed gives the same result; SPIN runs and logs its margins', () => {
  const a = cli(['eval', '--run', base, '--task', 'words', '--prompts', '5', '--words', '1', '--json', '--backend', 'wasm', '--threads', '1']);
  assert.equal(a.status, 0, a.stderr);
  const r = JSON.parse(a.stdout) as { prompts: number; successes: number; rate: number; ci95: [number, number] };
  assert.equal(r.prompts, 5);
  assert.equal(r.rate, r.successes / 5);
  assert.ok(r.ci95[0] <= r.rate && r.rate <= r.ci95[1] && r.ci95[1] - r.ci95[0] > 0.3);
  const b = cli(['eval', '--run', base, '--task', 'words', '--prompts', '5', '--words', '1', '--json', '--backend', 'wasm', '--threads', '1']);
  assert.equal(b.stdout, a.stdout);
  const bad = cli(['eval', '--run', base, '--task', 'math']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^pocketlm: --task must be one of words, got "math"\n$/);

  const spin = path.join(work, 'spin');
  const s = cli(['spin', '--run', base, '--out', spin, '--iterations', '2', '--pairs', '4', '--batch-pairs', '2', '--steps', '2', '--eval-pairs', '3',
    '--max-tokens', '30', '--backend', 'wasm', '--threads', '1']);
  assert.equal(s.status, 0, s.stderr);
  const log = logOf(spin);
  assert.deepEqual(log.map((x) => x.iteration), [0, 1, 2]);
  for (const x of log.slice(1)) {
    assert.equal(typeof x.train_loss, 'number');
    assert.equal(typeof x.val_margin, 'number');
    assert.ok(Number.isFinite(x.val_bpb as number));
  }
  // the fine-tuned folder is a run folder: eval reads its last iteration's weights without a notice
  const e = cli(['eval', '--run', spin, '--json', '--backend', 'wasm', '--threads', '1']);
  assert.equal(e.status, 0, e.stderr);
  assert.equal(e.stderr, '');
  assert.equal((JSON.parse(e.stdout) as { val_bpb: number }).val_bpb, log.at(-1)!.val_bpb);
});
