// The training worker: the same kernels, model, optimizer, tokenizer and training step as the
// Node trainer (src/train/trainer.ts trainStep), with the tokens in memory and the run kept in
// IndexedDB instead of a run folder. The page (main.ts) talks to it with protocol.ts messages.
// It blocks in Atomics.wait while the pool threads work, which only a worker may do.
import { baselinesFromTokens, type Baselines } from '../../data/baselines.js';
import { MemoryTokenLoader, type FixedBatch } from '../../data/loader.js';
import { ggufChunks, type GgufKv } from '../../export/gguf.js';
import { ggufLlamaKv, ggufTensors } from '../../export/gguf-export.js';
import { ggufTokenizerKv } from '../../export/gguf-tokenizer.js';
import { hfTensors } from '../../export/hf.js';
import { encodeSafetensors } from '../../export/safetensors.js';
import { HeapArena, WasmArena, type Arena } from '../../kernels/arena.js';
import { createJsKernels } from '../../kernels/js/index.js';
import type { Kernels } from '../../kernels/types.js';
import { createWasmKernels, wasmFeatures, type WasmKernels } from '../../kernels/wasm/index.js';
import { Generator, sampleToken } from '../../model/generate.js';
import { GPT } from '../../model/gpt.js';
import { createOptimizer, type Optimizer } from '../../optim/index.js';
import type { BpeTokenizer } from '../../tokenizer/bpe-tokenizer.js';
import { tokenizerFromJson } from '../../tokenizer/load.js';
import { splitDocuments } from '../../tokenizer/text-io.js';
import { trainBpe } from '../../tokenizer/train.js';
import type { RunConfig } from '../../train/config.js';
import { meanLoss, sampleTokens } from '../../train/evaluate.js';
import type { LogRecord } from '../../train/log.js';
import { LossAverage } from '../../train/recovery.js';
import { SeededRng } from '../../train/rng.js';
import { lrForRun } from '../../train/schedule.js';
import { trainStep } from '../../train/trainer.js';
import type { FromWorker, RunInfo, StartRequest, ToWorker } from './protocol.js';
import { IndexedDbStore, type RunStore, type SavedRun } from './store.js';

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(m: FromWorker): void;
  crossOriginIsolated?: boolean;
};
const post = (m: FromWorker): void => scope.postMessage(m);

/** Seconds between saves besides the evaluations and the stop. */
const SAVE_SECONDS = 30;
/** Divergent steps (non-finite or spiking loss) skipped in a row before the run stops. */
const MAX_BAD_STEPS = 20;

interface Backend { kernels: Kernels; arena: Arena; threads: number; name: string; build: string | null; dispose(): Promise<void> }

/**
 * The wasm SIMD kernels with `threads` threads over one shared memory when the page is
 * cross-origin isolated (SharedArrayBuffer exists); without isolation memory cannot be shared
 * (nor without WebAssembly SIMD, in old browsers), so the plain TypeScript kernels on one thread
 * (much slower, and the page says so).
 */
async function makeBackend(threads: number): Promise<Backend> {
  if (scope.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined' && wasmFeatures().simd) {
    const arena = new WasmArena();
    const kernels = await createWasmKernels(arena, { threads });
    return { kernels, arena, threads, name: 'wasm', build: (kernels as WasmKernels).build, dispose: async () => { await kernels.dispose(); } };
  }
  return { kernels: createJsKernels(), arena: new HeapArena('f32'), threads: 1, name: 'js', build: null, dispose: async () => {} };
}

/** Token ids in the smallest array that holds them. */
function packIds(ids: number[], vocab: number): Uint16Array | Uint32Array {
  return vocab <= 65536 ? Uint16Array.from(ids) : Uint32Array.from(ids);
}

/** Resolves after the event loop ran other tasks (messages from the page) once. */
function makeYield(): () => Promise<void> {
  const ch = new MessageChannel();
  let wake: (() => void) | null = null;
  ch.port1.onmessage = () => { const w = wake; wake = null; w?.(); };
  return () => new Promise<void>((resolve) => { wake = resolve; ch.port2.postMessage(0); });
}

class WebRun {
  stopRequested = false;
  private readonly average = new LossAverage();
  private readonly valBatches: FixedBatch[];
  private readonly inputs: Int32Array;
  private readonly targets: Int32Array;
  private readonly decoder: Generator;
  private readonly rng: SeededRng;
  private lastSave = performance.now();

  private constructor(
    private readonly store: RunStore,
    private readonly backend: Backend,
    private readonly saved: SavedRun,
    private readonly tokenizer: BpeTokenizer,
    private readonly model: GPT,
    private readonly optimizer: Optimizer,
    private readonly loader: MemoryTokenLoader,
    readonly info: RunInfo,
  ) {
    const cfg = saved.config;
    const B = cfg.train.batch_size;
    const T = cfg.model.seq_len;
    this.valBatches = new MemoryTokenLoader(saved.val, T, B, 0).fixedBatches(Math.max(1, cfg.train.eval_batches));
    this.inputs = backend.arena.ints(B * T);
    this.targets = backend.arena.ints(B * T);
    this.decoder = new Generator(model, backend.kernels, backend.arena, T);
    this.rng = new SeededRng(cfg.train.seed ^ 0x5a17);
    this.rng.restore(saved.rng ?? this.rng.state());
    this.average.restore(saved.lossAverage);
  }

  /** A fresh run: trains the tokenizer, tokenizes, counts the baselines, initializes the model. */
  static async create(req: StartRequest, store: RunStore): Promise<WebRun> {
    const cfg = req.config;
    post({ type: 'status', text: `training a ${cfg.model.vocab_size}-token BPE tokenizer on ${(req.train.length / 1e6).toFixed(1)} MB of text…` });
    const tokenizer = trainBpe(splitDocuments(req.train), { vocabSize: cfg.model.vocab_size });
    post({ type: 'status', text: 'tokenizing…' });
    const train = packIds(tokenizer.encode(req.train), cfg.model.vocab_size);
    const val = packIds(tokenizer.encode(req.val), cfg.model.vocab_size);
    const valBytes = new TextEncoder().encode(req.val).length;
    post({ type: 'status', text: 'counting the n-gram baselines…' });
    const baselines = baselinesFromTokens(train, val, cfg.model.vocab_size, (nats) => (nats * val.length) / (valBytes * Math.LN2), `${req.source}:${train.length}:${val.length}`);
    const saved: SavedRun = {
      version: 1, presetName: req.presetName, source: req.source, config: cfg,
      tokenizerJson: JSON.stringify(tokenizer.toJSON()), train, val, valBytes,
      step: 0, tokens: 0, elapsed: 0, params: new Float32Array(0), optimState: {}, optimScalars: {},
      loader: new MemoryTokenLoader(train, cfg.model.seq_len, cfg.train.batch_size, cfg.train.seed).state(),
      rng: null, lossAverage: new LossAverage().state(), log: [], samples: [], baselines, savedAt: 0,
    };
    return WebRun.open(saved, store, req.threads, null, tokenizer);
  }

  /** Builds backend, model, optimizer and loader for `saved` and restores its state (when it has weights). */
  static async open(saved: SavedRun, store: RunStore, threads: number, resumedFromStep: number | null, tok?: BpeTokenizer): Promise<WebRun> {
    const cfg = saved.config;
    const tokenizer = tok ?? tokenizerFromJson(JSON.parse(saved.tokenizerJson));
    const backend = await makeBackend(threads);
    const B = cfg.train.batch_size;
    const model = new GPT(cfg.model, backend.kernels, backend.arena, B);
    const optimizer = createOptimizer(cfg.optim, backend.kernels, backend.arena, model.params, model.grads, model.tensors);
    const loader = new MemoryTokenLoader(saved.train, cfg.model.seq_len, B, cfg.train.seed);
    if (saved.params.length) {
      if (saved.params.length !== model.params.length) throw new Error(`the saved run has ${saved.params.length} weights, the model ${model.params.length}`);
      model.params.set(saved.params);
      for (const [name, buf] of Object.entries(optimizer.state())) {
        const from = saved.optimState[name];
        if (!from || from.length !== buf.length) throw new Error(`the saved run lacks the optimizer state "${name}"`);
        buf.set(from);
      }
      optimizer.loadScalars(saved.optimScalars);
      // saved with the evaluation weights in place (Schedule-Free's x), as Node's checkpoints are
      optimizer.trainParams();
      loader.restore(saved.loader);
    } else {
      model.init(cfg.train.seed);
    }
    const info: RunInfo = {
      presetName: saved.presetName, source: saved.source, params: model.numParams, threads: backend.threads,
      isolated: scope.crossOriginIsolated === true, kernels: backend.name, build: backend.build, vocab: tokenizer.vocabSize,
      trainTokens: saved.train.length, valTokens: saved.val.length, steps: cfg.train.steps, resumedFromStep,
    };
    return new WebRun(store, backend, saved, tokenizer, model, optimizer, loader, info);
  }

  get config(): RunConfig { return this.saved.config; }

  private validate(): { loss: number; bpb: number } {
    this.optimizer.evalParams();
    try {
      const loss = meanLoss(this.model, this.valBatches, this.config.train.batch_size, this.inputs, this.targets);
      return { loss, bpb: (loss * this.saved.val.length) / (this.saved.valBytes * Math.LN2) };
    } finally {
      this.optimizer.trainParams();
    }
  }

  /** Text sampled from `prompt` (empty: a story start) with the evaluation weights. */
  sample(prompt: string, tokens: number, temperature: number): string {
    const eot = this.tokenizer.eotId;
    const ids = prompt ? this.tokenizer.encode(prompt) : [eot];
    this.optimizer.evalParams();
    try {
      const out = [...sampleTokens(this.decoder, sampleToken, ids, tokens, { temperature, topK: 40, topP: 1 }, this.rng.fn(), eot)];
      return this.tokenizer.decode(out);
    } finally {
      this.optimizer.trainParams();
    }
  }

  /** Copies the live state into the record and writes it to IndexedDB. */
  async save(): Promise<void> {
    const s = this.saved;
    this.optimizer.evalParams();
    try {
      s.params = this.model.params.slice() as Float32Array;
      s.optimState = Object.fromEntries(Object.entries(this.optimizer.state()).map(([k, v]) => [k, v.slice() as Float32Array]));
      s.optimScalars = this.optimizer.scalars();
    } finally {
      this.optimizer.trainParams();
    }
    s.loader = this.loader.state();
    s.rng = this.rng.state();
    s.lossAverage = this.average.state();
    s.savedAt = Date.now();
    await this.store.save(s);
    this.lastSave = performance.now();
    post({ type: 'saved', step: s.step, bytes: 4 * (s.params.length * (1 + Object.keys(s.optimState).length)) + s.train.byteLength + s.val.byteLength });
  }

  started(): FromWorker {
    return { type: 'started', info: this.info, log: this.saved.log, samples: this.saved.samples, baselines: this.saved.baselines };
  }

  /** Trains until train.steps or a stop request; evaluates, samples and saves on the way. */
  async loop(): Promise<void> {
    const s = this.saved;
    const tc = this.config.train;
    const tokensPerStep = tc.batch_size * tc.grad_accum * this.config.model.seq_len;
    const yieldNow = makeYield();
    const session = {
      model: this.model, inputs: this.inputs, targets: this.targets, config: this.config, step: s.step,
      optimizer: this.optimizer, loader: this.loader, backend: this.backend,
    };
    let bad = 0;
    const wallStart = performance.now();
    const elapsedAt = s.elapsed;
    while (!this.stopRequested && (tc.steps <= 0 || s.step < tc.steps)) {
      const t0 = performance.now();
      session.step = s.step;
      const lr = lrForRun(s.step, tc, this.config.optim, null);
      const st = trainStep(session, lr, this.average);
      if (typeof st === 'string') {
        // Node rolls back to its last good state; here the batch is skipped (the weights were not touched)
        if (++bad > MAX_BAD_STEPS) throw new Error(`training diverged at step ${s.step + 1}: ${st}; try a lower learning rate`);
        post({ type: 'status', text: `step ${s.step + 1} skipped: ${st}` });
        await yieldNow();
        continue;
      }
      bad = 0;
      s.step += 1;
      s.tokens += tokensPerStep;
      if (s.step > this.config.optim.warmup_steps) this.average.observe(st.loss);
      const stepSeconds = (performance.now() - t0) / 1000;
      const last = tc.steps > 0 && s.step >= tc.steps;
      const evalNow = last || (tc.eval_every > 0 && s.step % tc.eval_every === 0);
      const val = evalNow ? this.validate() : null;
      s.elapsed = elapsedAt + (performance.now() - wallStart) / 1000;
      const record: LogRecord = {
        step: s.step, loss: st.loss, lr: st.lr, grad_norm: st.gradNorm, tokens: s.tokens,
        tokens_per_second: tokensPerStep / stepSeconds, elapsed: s.elapsed,
        ...(val ? { val_loss: val.loss, val_bpb: val.bpb } : {}),
      };
      s.log.push(record);
      post({ type: 'step', record });
      if (val && tc.sample_tokens > 0) {
        const samples = [this.sample('', tc.sample_tokens, tc.sample_temperature), this.sample('', tc.sample_tokens, tc.sample_temperature)];
        s.samples.push({ step: s.step, samples });
        post({ type: 'samples', step: s.step, samples });
      }
      if (val || performance.now() - this.lastSave > SAVE_SECONDS * 1000) await this.save();
      await yieldNow();
    }
    await this.save();
    post({ type: 'done', step: s.step });
  }

  /** The weights (evaluation weights) as a file for download. */
  download(format: 'safetensors' | 'gguf'): { name: string; blob: Blob } {
    const cfg = this.config.model;
    this.optimizer.evalParams();
    let params: Float32Array;
    try {
      params = this.model.params.slice() as Float32Array;
    } finally {
      this.optimizer.trainParams();
    }
    const base = `pocketlm-${this.saved.presetName}-step${this.saved.step}`;
    if (format === 'safetensors') {
      const bytes = encodeSafetensors(hfTensors(cfg, params, 'f32'), { format: 'pt' });
      return { name: `${base}.safetensors`, blob: new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }) };
    }
    const kv: GgufKv[] = [
      { key: 'general.architecture', type: 'string', value: 'llama' },
      { key: 'general.name', type: 'string', value: base },
      { key: 'general.file_type', type: 'uint32', value: 0 },
      { key: 'general.description', type: 'string', value: `trained from scratch in a browser tab with pocketlm: ${this.saved.step} steps, ${this.saved.tokens} tokens` },
      ...ggufLlamaKv(cfg),
      ...ggufTokenizerKv(this.tokenizer, cfg.vocab_size),
    ];
    const parts = [...ggufChunks(kv, ggufTensors(cfg, params), { dtype: 'F32' })].map((p) => p.slice());
    return { name: `${base}.gguf`, blob: new Blob(parts, { type: 'application/octet-stream' }) };
  }

  async dispose(): Promise<void> {
    await this.backend.dispose();
  }
}

/** Handles the page's messages; one run at a time (state lives in this closure, not in globals). */
function serve(store: RunStore): void {
  let run: WebRun | null = null;
  let running: Promise<void> | null = null;
  const fail = (e: unknown): void => post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  const startLoop = (r: WebRun): void => {
    run = r;
    post(r.started());
    running = r.loop().catch(fail).finally(() => { running = null; });
  };
  scope.onmessage = (e) => {
    const m = e.data;
    (async () => {
      switch (m.type) {
        case 'start': {
          if (running) throw new Error('a run is already going; stop it first');
          if (run) await run.dispose();
          await store.clear();
          startLoop(await WebRun.create(m, store));
          break;
        }
        case 'resume': {
          if (running) throw new Error('a run is already going');
          const saved = await store.load();
          if (!saved) { post({ type: 'none' }); break; }
          if (run) await run.dispose();
          post({ type: 'status', text: `resuming the saved run at step ${saved.step}…` });
          startLoop(await WebRun.open(saved, store, m.threads, saved.step));
          break;
        }
        case 'stop':
          if (run) run.stopRequested = true;
          break;
        case 'sample':
          if (!run) throw new Error('no model yet: start or resume a run');
          post({ type: 'sampled', prompt: m.prompt, text: run.sample(m.prompt, m.tokens, m.temperature) });
          break;
        case 'download': {
          if (!run) throw new Error('no model yet: start or resume a run');
          const f = run.download(m.format);
          post({ type: 'file', name: f.name, blob: f.blob });
          break;
        }
        case 'forget':
          if (running) throw new Error('stop the run first');
          await store.clear();
          post({ type: 'none' });
          break;
      }
    })().catch(fail);
  };
}

serve(new IndexedDbStore());
