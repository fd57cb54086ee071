#!/usr/bin/env node
// Attention against rwkv time mixing at the same width and depth (the default preset: d_model
// 192, 6 layers, 6 heads), issue #14's measurements. Each figure comes from its own process, so
// peak RSS is that configuration's alone; the two mixers alternate within each round (the order
// flips every round) and the table shows the median of the rounds.
//
//   training: `pocketlm bench` (10 timed optimizer steps) at seq_len 128, 256, 1024 and 4096,
//             8192 tokens per step as in the preset: micro-batches of max(2048, seq_len) tokens
//             (the preset's 8 x 256), accumulated 8192 / that times;
//   decoding: tokens/s of 1 and 8 sequences after 64, 256, 1024 and 4096 tokens of context
//             (model.seq_len 4160, so attention's KV cache holds the longest context).
//
//   node scripts/bench-mixers.mjs [--rounds 3] [--what train,decode] [--threads 2] [--backend native]
// Needs a build (npm run build). Prints one JSON line per measurement, then the tables.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'pocketlm.js');
const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const rounds = Number(flag('--rounds', '3'));
const what = flag('--what', 'train,decode').split(',');
const threads = flag('--threads', '2');
const backend = flag('--backend', 'native');
const MIXERS = ['attention', 'rwkv'];
const SEQ_LENS = [128, 256, 1024, 4096];
const TOKENS_PER_STEP = 8192;
const MICRO_TOKENS = 2048;
const CONTEXTS = [64, 256, 1024, 4096];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function trainOnce(mixer, T) {
  const B = Math.max(1, MICRO_TOKENS / T);
  const accum = TOKENS_PER_STEP / (B * T);
  const r = spawnSync(process.execPath, [
    bin, 'bench', '--preset', 'default', '--json', '--steps', '10', '--backend', backend, '--threads', threads,
    '--set', `model.mixer="${mixer}"`, '--set', `model.seq_len=${T}`, '--set', `train.batch_size=${B}`, '--set', `train.grad_accum=${accum}`,
  ], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return { mixer, T, error: (r.stderr || r.stdout).trim().split('\n').pop() };
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  const j = JSON.parse(line);
  return { mixer, T, B, accum, tokens_per_second: j.tokens_per_second, peak_rss_mb: j.peak_rss_mb, step_ms: j.step_ms };
}

/** Decoding: this script again as a child (`--decode-child MIXER`), so each mixer's RSS is its own. */
function decodeOnce(mixer) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--decode-child', mixer, '--backend', backend, '--threads', threads],
    { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return { mixer, error: (r.stderr || r.stdout).trim().split('\n').slice(0, 3).join(' ') };
  return { mixer, ...JSON.parse(r.stdout.trim().split('\n').pop()) };
}

const child = flag('--decode-child', null);
if (child !== null) {
  const { runDecodeBench } = await import(path.join(root, 'dist', 'model', 'decode-bench.js'));
  const { loadConfig } = await import(path.join(root, 'dist', 'train', 'config.js'));
  const cfg = loadConfig({ preset: 'default', set: [`model.mixer="${child}"`, 'model.seq_len=4160'] });
  const r = await runDecodeBench({ config: cfg.model, backend, threads: Number(threads), sequences: [1, 8], contexts: CONTEXTS, tokens: 32 });
  console.log(JSON.stringify(r));
  process.exit(0);
}

const train = [];
const decode = [];
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? MIXERS : [...MIXERS].reverse();
  if (what.includes('train')) {
    for (const T of SEQ_LENS) {
      for (const m of order) {
        const res = { round, ...trainOnce(m, T) };
        console.log(JSON.stringify({ what: 'train', ...res }));
        train.push(res);
      }
    }
  }
  if (what.includes('decode')) {
    for (const m of order) {
      const res = { round, ...decodeOnce(m) };
      console.log(JSON.stringify({ what: 'decode', mixer: m, round, rows: res.rows, peak_rss_mb: res.peak_rss_mb, error: res.error }));
      decode.push(res);
    }
  }
}

if (train.length) {
  console.log(`\ntraining, default width and depth, ${TOKENS_PER_STEP} tokens per step, ${backend} x${threads} (median of ${rounds} rounds)`);
  console.log('| seq_len | batch x accum | attention tok/s | rwkv tok/s | rwkv / attention | attention peak RSS | rwkv peak RSS |');
  console.log('|---|---|---|---|---|---|---|');
  for (const T of SEQ_LENS) {
    const of = (m) => train.filter((r) => r.mixer === m && r.T === T && !r.error);
    const a = of('attention'), w = of('rwkv');
    const err = train.find((r) => r.T === T && r.error);
    if (!a.length || !w.length) {
      console.log(`| ${T} | | ${err ? err.error : 'no result'} |`);
      continue;
    }
    const ta = median(a.map((r) => r.tokens_per_second)), tw = median(w.map((r) => r.tokens_per_second));
    console.log(`| ${T} | ${a[0].B} x ${a[0].accum} | ${ta.toFixed(0)} | ${tw.toFixed(0)} | ${(tw / ta).toFixed(2)}x | ${median(a.map((r) => r.peak_rss_mb)).toFixed(0)} MB | ${median(w.map((r) => r.peak_rss_mb)).toFixed(0)} MB |`);
  }
}
if (decode.length) {
  console.log(`\ndecoding, default width and depth (seq_len 4160), ${backend} x${threads}, tokens/s (median of ${rounds} rounds)`);
  console.log('| context | sequences | attention tok/s | rwkv tok/s | rwkv / attention |');
  console.log('|---|---|---|---|---|');
  for (const c of CONTEXTS) {
    for (const s of [1, 8]) {
      const rate = (m) => median(decode.filter((d) => d.mixer === m && d.rows).map((d) => d.rows.find((r) => r.context === c && r.sequences === s)?.tokens_per_second ?? NaN));
      const a = rate('attention'), w = rate('rwkv');
      console.log(`| ${c} | ${s} | ${a.toFixed(0)} | ${w.toFixed(0)} | ${(w / a).toFixed(2)}x |`);
    }
  }
  for (const m of MIXERS) {
    const e = decode.find((d) => d.mixer === m && d.error);
    if (e) console.log(`${m}: ${e.error}`);
  }
}
