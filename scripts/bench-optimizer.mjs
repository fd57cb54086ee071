// Per-step cost of each optimizer on a preset's model, beside the forward + backward it follows.
//   node scripts/bench-optimizer.mjs [--preset default] [--backend auto] [--threads N] [--steps 20] [--opt adamw,muon]
// Build first (npm run build). Optimizer steps are interleaved (adamw, muon, adamw, ...) so a
// busy machine slows them alike; medians are reported.
import { parseArgs } from 'node:util';
import { loadConfig } from '../dist/train/config.js';
import { createBackend } from '../dist/kernels/index.js';
import { GPT } from '../dist/model/gpt.js';
import { createOptimizer } from '../dist/optim/index.js';

const { values: a } = parseArgs({
  options: {
    preset: { type: 'string', default: 'default' },
    backend: { type: 'string', default: 'auto' },
    threads: { type: 'string' },
    steps: { type: 'string', default: '20' },
    opt: { type: 'string', default: 'adamw,muon' },
  },
});
const cfg = loadConfig({ preset: a.preset });
const names = a.opt.split(',');
const steps = Number(a.steps);
const backend = await createBackend({ backend: a.backend, threads: a.threads ? Number(a.threads) : undefined });
try {
  const { kernels, arena } = backend;
  const B = cfg.train.batch_size;
  const T = cfg.model.seq_len;
  const model = new GPT(cfg.model, kernels, arena, B);
  model.init(1);
  const opts = names.map((name) => createOptimizer({ ...cfg.optim, name }, kernels, arena, model.params, model.grads, model.tensors));
  const inputs = arena.ints(B * T);
  const targets = arena.ints(B * T);
  for (let i = 0; i < B * T; i++) {
    inputs[i] = (i * 7919) % cfg.model.vocab_size;
    targets[i] = (i * 104729) % cfg.model.vocab_size;
  }
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const fb = [];
  const times = names.map(() => []);
  const lr = cfg.optim.lr * 0.1; // small: the weights stay sane while they are stepped by every optimizer
  for (let s = -2; s < steps; s++) {
    const t0 = performance.now();
    model.zeroGrad();
    for (let g = 0; g < cfg.train.grad_accum; g++) {
      model.forward(inputs, targets, B);
      model.backward(1 / cfg.train.grad_accum);
    }
    const t1 = performance.now();
    if (s >= 0) fb.push(t1 - t0);
    opts.forEach((o, i) => {
      const u0 = performance.now();
      o.step(lr);
      if (s >= 0) times[i].push(performance.now() - u0);
    });
  }
  const fbMs = median(fb);
  console.log(`preset ${a.preset}: ${model.numParams.toLocaleString('en-US')} params, ${B * T * cfg.train.grad_accum} tokens/step, backend ${backend.info.name} x${backend.info.threads}`);
  console.log(`  forward+backward   ${fbMs.toFixed(1)} ms/step (median of ${steps})`);
  names.forEach((n, i) => {
    const ms = median(times[i]);
    console.log(`  ${n.padEnd(18)} ${ms.toFixed(2).padStart(7)} ms/step  (${((100 * ms) / (fbMs + ms)).toFixed(1)}% of a training step)`);
  });
} finally {
  await backend.dispose();
}
