import type { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { loadConfig } from '../train/config.js';
import { runModelBench, type ModelBenchResult } from '../model/bench.js';
import { runDecodeBench, type DecodeBenchResult } from '../model/decode-bench.js';
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

/** `bench decode` times 1 sequence and this many side by side. */
const DECODE_SEQUENCES = 8;

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

function printDecodeResult(label: string, r: DecodeBenchResult): void {
  console.log(`${label} decoding: ${r.params.toLocaleString('en-US')} params, KV cache, sampling (temperature 0.8, top-k 40), backend ${r.backend} x${r.threads}`);
  console.log('  sequences  context  tokens/s  ms/round');
  for (const row of r.rows) {
    const note = row.mode === 'batched' ? '  (one batched decoder: the rows share each product)' : '';
    console.log(`  ${String(row.sequences).padStart(9)}  ${String(row.context).padStart(7)}  ${row.tokens_per_second.toFixed(0).padStart(8)}  ${row.ms_per_round.toFixed(2).padStart(8)}${note}`);
  }
  console.log(`  peak RSS   ${r.peak_rss_mb.toFixed(0)} MB`);
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure speed: the model step (default), `decode` (sampling tokens/s with the KV cache), `kernels` (GFLOP/s, GB/s per backend) or `tokenizer`')
    .argument('[what]', 'model | decode | kernels | tokenizer', 'model')
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
      if (what !== 'model' && what !== 'decode') throw new UserError(`unknown benchmark "${what}": use model, decode, kernels or tokenizer`);
      const targets: { label: string; preset?: string; file?: string }[] = opts.config
        ? [{ label: opts.config, file: opts.config, preset: opts.preset?.[0] }]
        : (opts.preset ?? ['seed-small', 'default']).map((p) => ({ label: p, preset: p }));
      for (const t of targets) {
        const cfg = loadConfig({ preset: t.preset, file: t.file, set: opts.set });
        const benchThreads = threads ?? (cfg.train.threads > 0 ? cfg.train.threads : undefined);
        if (what === 'decode') {
          // one model (batch 1, no optimizer) and DECODE_SEQUENCES KV-cache decoders
          const one = planMemory({ model: cfg.model, batchSize: 1, optimizer: null, decoder: true, kernelThreads: kernelThreadsFor(backend, benchThreads) });
          const kv = one.parts.find((p) => p.name === 'KV cache')!;
          kv.bytes *= DECODE_SEQUENCES;
          one.bytes += (DECODE_SEQUENCES - 1) * (kv.bytes / DECODE_SEQUENCES);
          checkMemoryPlan(one, { subject: `decoding ${DECODE_SEQUENCES} sequences of the ${t.label} config` });
          const r = await runDecodeBench({ config: cfg.model, backend, threads: benchThreads, sequences: [1, DECODE_SEQUENCES] });
          if (opts.json) console.log(JSON.stringify({ preset: t.label, ...r }));
          else printDecodeResult(t.label, r);
          continue;
        }
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
