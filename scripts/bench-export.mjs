#!/usr/bin/env node
// Export time and file size for the default preset's model (3.9M parameters): a run folder with
// GPT.init weights (no training: export cost does not depend on the values) and a BPE tokenizer
// of the preset's vocabulary trained on the TinyStories sample, exported `--runs` times per
// format and dtype with the same functions `pocketlm export` calls. Needs a build (dist/).
//
//   node scripts/bench-export.mjs [--runs 3] [--formats gguf,hf]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(root, 'dist', p));
const { loadConfig, stringifyConfig } = await dist('train/config.js');
const { saveCheckpoint } = await dist('train/checkpoint.js');
const { runPaths } = await dist('train/run.js');
const { createBackend } = await dist('kernels/index.js');
const { GPT } = await dist('model/gpt.js');
const { trainBpe } = await dist('tokenizer/train.js');
const { splitDocuments } = await dist('tokenizer/text-io.js');
const { saveTokenizer } = await dist('tokenizer/load.js');
const { tinystoriesSampleDir } = await dist('util/paths.js');
const { exportGguf } = await dist('export/gguf-export.js');
const { exportHf } = await dist('export/hf.js');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const runs = Number(arg('--runs', '3'));
const formats = arg('--formats', 'gguf,hf').split(',');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-bench-export-'));
try {
  const runDir = path.join(work, 'default');
  const cfg = loadConfig({ preset: 'default' });
  const backend = await createBackend({ backend: 'js' });
  const model = new GPT(cfg.model, backend.kernels, backend.arena, 1);
  model.init(1337);
  fs.mkdirSync(runDir);
  fs.writeFileSync(runPaths(runDir).config, stringifyConfig(cfg));
  const text = fs.readFileSync(path.join(tinystoriesSampleDir(), 'valid-00.txt'), 'utf8').slice(0, 2_000_000);
  await saveTokenizer(trainBpe(splitDocuments(text), { vocabSize: cfg.model.vocab_size }), runPaths(runDir).tokenizer);
  saveCheckpoint(runDir, cfg.model, { tensors: model.tensors, weights: model.params }, {
    step: 0, tokens: 0, elapsed_seconds: 0, loader: null, rng: null, optimizer: cfg.optim.name, optim_scalars: {}, dataset: { dir: '', tokenizer_hash: '' },
  });
  await backend.dispose();
  console.log(`default preset: ${model.params.length.toLocaleString('en-US')} parameters; ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const cases = [];
  if (formats.includes('gguf')) cases.push(['gguf', 'f32'], ['gguf', 'f16']);
  if (formats.includes('hf')) cases.push(['hf', 'f32'], ['hf', 'f16'], ['hf', 'bf16']);
  for (const [format, dtype] of cases) {
    const times = [];
    let bytes = 0;
    for (let r = 0; r < runs; r++) {
      const out = path.join(work, `${format}-${dtype}-${r}${format === 'gguf' ? '.gguf' : ''}`);
      const rep = format === 'gguf' ? await exportGguf(runDir, { out, dtype, checkpoint: 'last' }) : await exportHf(runDir, { out, dtype, checkpoint: 'last' });
      times.push(rep.seconds);
      bytes = rep.bytes;
      fs.rmSync(out, { recursive: true, force: true });
    }
    const sorted = [...times].sort((a, b) => a - b);
    console.log(`${format} ${dtype}: ${bytes.toLocaleString('en-US')} bytes (${(bytes / 2 ** 20).toFixed(2)} MiB); seconds ${times.map((t) => t.toFixed(3)).join(', ')} (median ${sorted[Math.floor(sorted.length / 2)].toFixed(3)})`);
  }
  console.log(`load after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
