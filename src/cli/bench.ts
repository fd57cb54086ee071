import type { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { loadConfig } from '../train/config.js';
import { runModelBench, type ModelBenchResult } from '../model/bench.js';
import { createOptimizer } from '../optim/index.js';
import { runKernelBench } from '../kernels/bench.js';
import { runTokenizerBench } from '../tokenizer/bench.js';
import { BACKENDS } from '../train/config.js';
import { checkMemoryPlan, kernelThreadsFor, planMemory } from '../train/memory.js';
import { choiceFlag, intFlag, MAX_THREADS, optional } from './flags.js';

interface BenchOpts {
  preset?: string[];
  config?: string;
  set: string[];
  backend: string;
  threads?: string;
  steps?: string;
  profile?: boolean;
  json?: boolean;
  quick?: boolean;
}

/** Timed steps at the least: runModelBench reports their median. */
const MIN_STEPS = 10;

function printModelResult(label: string, r: ModelBenchResult): void {
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`${label}: ${r.params.toLocaleString('en-US')} params, ${r.tokens_per_step} tokens/step, backend ${r.backend} x${r.threads}`);
  console.log(`  tokens/s      ${f(r.tokens_per_second, 0)}`);
  console.log(`  step          ${f(r.step_ms)} ms  (forward ${f(r.forward_ms)}, backward ${f(r.backward_ms)}, optimizer ${f(r.optimizer_ms)})`);
  console.log(`  throughput    ${f(r.gflops)} GFLOP/s  (${f(r.flops_per_token / 1e6, 2)} MFLOP/token; MFU ${f(100 * r.mfu)}% of ${f(r.peak_gflops)} measured peak)`);
  console.log(`  peak RSS      ${f(r.peak_rss_mb, 0)} MB`);
  if (r.profile?.length) {
    const total = r.profile.reduce((s, p) => s + p.ms, 0);
    console.log('  profile (ms per optimizer step):');
    for (const p of [...r.profile].sort((a, b) => b.ms - a.ms)) {
      console.log(`    ${p.name.padEnd(28)} ${f(p.ms, 2).padStart(9)}  ${f((100 * p.ms) / total).padStart(5)}%  ${String(p.calls).padStart(6)} calls`);
    }
  }
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure speed: the model step (default), `kernels` (GFLOP/s, GB/s per backend) or `tokenizer`')
    .argument('[what]', 'model | kernels | tokenizer', 'model')
    .option('--preset <name...>', 'model presets to measure (default: seed-small and default)')
    .option('--config <file>', 'a config TOML file to measure instead of a preset')
    .option('--set <key=value>', 'override a config key (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--backend <name>', 'auto | js | wasm | native', 'auto')
    .option('--threads <n>', 'threads (default: one per core)')
    .option('--steps <n>', `timed optimizer steps (median is reported; >= ${MIN_STEPS})`)
    .option('--profile', 'also print time per kernel')
    .option('--quick', 'kernels: fewer shapes, shorter timing')
    .option('--json', 'one JSON object per result line')
    .action(async (what: string, opts: BenchOpts) => {
      const backend = choiceFlag('--backend', opts.backend, BACKENDS);
      const threads = optional(opts.threads, (v) => intFlag('--threads', v, 1, MAX_THREADS));
      const steps = optional(opts.steps, (v) => intFlag('--steps', v, MIN_STEPS));
      const print = (line: string) => console.log(line);
      if (what === 'kernels') {
        await runKernelBench({ json: !!opts.json, quick: !!opts.quick, threads: threads ? [threads] : undefined, backends: backend === 'auto' ? undefined : [backend] }, print);
        return;
      }
      if (what === 'tokenizer') {
        await runTokenizerBench(print);
        return;
      }
      if (what !== 'model') throw new UserError(`unknown benchmark "${what}": use model, kernels or tokenizer`);
      const targets: { label: string; preset?: string; file?: string }[] = opts.config
        ? [{ label: opts.config, file: opts.config, preset: opts.preset?.[0] }]
        : (opts.preset ?? ['seed-small', 'default']).map((p) => ({ label: p, preset: p }));
      for (const t of targets) {
        const cfg = loadConfig({ preset: t.preset, file: t.file, set: opts.set });
        const benchThreads = threads ?? (cfg.train.threads > 0 ? cfg.train.threads : undefined);
        // the bench builds the model, the config's optimizer and a batch (src/model/bench.ts)
        checkMemoryPlan(planMemory({
          model: cfg.model, batchSize: cfg.train.batch_size, optimizer: cfg.optim.name, decoder: false,
          kernelThreads: kernelThreadsFor(backend, benchThreads),
        }), { subject: `the ${t.label} config` });
        const r = await runModelBench({
          config: cfg.model,
          batchSize: cfg.train.batch_size,
          gradAccum: cfg.train.grad_accum,
          backend,
          threads: benchThreads,
          steps,
          profile: !!opts.profile,
          optimizer: (k, arena, params, grads, tensors) => createOptimizer(cfg.optim, k, arena, params, grads, tensors),
        });
        if (opts.json) console.log(JSON.stringify({ preset: t.label, optimizer: cfg.optim.name, ...r }));
        else printModelResult(`${t.label} (${cfg.optim.name})`, r);
      }
    });
}
