#!/usr/bin/env node
// Decoding speed against llama.cpp (BENCHMARKS.md, issue #15): the `default` model (a few
// training steps: speed does not depend on the weights) exported as GGUF f32 and run by
// node-llama-cpp 3.21.1's prebuilt CPU llama.cpp, against `pocketlm bench decode` on the same
// model shape, alternating. One sequence, sampling at temperature 0.8 and top-k 40, 2 threads.
// llama.cpp: the tokens/s of generating N tokens after a one-token prompt (contexts 1..N).
// pocketlm: the mean of its rates at contexts 1, 128 and 224 (the same span).
// Usage: node scripts/bench-decode-llama.mjs [--rounds 3] [--tokens 224] [--backend native]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin', 'pocketlm.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const rounds = Number(arg('rounds', '3'));
const tokens = Number(arg('tokens', '224'));
const backend = arg('backend', 'native');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-bench-decode-'));
const env = { ...process.env, POCKETLM_CACHE: path.join(work, 'cache') };

function cli(args) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`pocketlm ${args[0]} exited ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
  return r.stdout;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

try {
  const run = path.join(work, 'run');
  const gguf = path.join(work, 'default.gguf');
  cli(['train', '--preset', 'default', '--dataset', 'tinystories-sample', '--steps', '3', '--time', '0', '--out', run, '--set', 'train.eval_every=0']);
  cli(['export', '--run', run, '--format', 'gguf', '--checkpoint', 'last', '--out', gguf]);
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ build: 'never', gpu: false, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0, useMmap: false });
  console.log(`default model, GGUF f32, 1 sequence, ${tokens} tokens after a 1-token prompt, temperature 0.8, top-k 40, 2 threads; ${os.cpus()[0].model}`);
  const ours = [];
  const theirs = [];
  for (let r = 0; r < rounds; r++) {
    const context = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2, sequences: 1 });
    const seq = context.getSequence();
    let n = 0;
    let t0 = 0;
    for await (const _t of seq.evaluate([1], { temperature: 0.8, topK: 40 })) {
      // the first token comes from the prompt's evaluation: timing starts after it
      if (n === 0) t0 = performance.now();
      if (++n > tokens) break;
    }
    const llamaRate = (n - 1) / ((performance.now() - t0) / 1000);
    await context.dispose();
    theirs.push(llamaRate);
    const rows = cli(['bench', 'decode', '--preset', 'default', '--backend', backend, '--threads', '2', '--json']).trim().split('\n')
      .map((l) => JSON.parse(l)).flatMap((x) => x.rows ?? []).filter((x) => x.sequences === 1);
    const ourRate = rows.reduce((a, x) => a + x.tokens_per_second, 0) / rows.length;
    ours.push(ourRate);
    console.log(`round ${r + 1}: llama.cpp ${llamaRate.toFixed(0)} tok/s, pocketlm ${backend} ${ourRate.toFixed(0)} tok/s (contexts ${rows.map((x) => x.context).join(', ')}) (load ${os.loadavg()[0].toFixed(2)})`);
  }
  await model.dispose();
  console.log(`medians: llama.cpp ${median(theirs).toFixed(0)} tok/s, pocketlm ${median(ours).toFixed(0)} tok/s, pocketlm / llama.cpp ${(median(ours) / median(theirs)).toFixed(2)}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
