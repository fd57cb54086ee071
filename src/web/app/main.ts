// The page: picks a preset and a text, runs the training worker, draws what it reports (the
// dashboard's chart helpers, charts.js, on uPlot), samples and downloads on request. Numbers
// the browser test reads are mirrored in data- attributes of <body> and the charts.
import type { Baselines } from '../../data/baselines.js';
import type { RunConfig } from '../../train/config.js';
import type { LogRecord } from '../../train/log.js';
import type { FromWorker, RunInfo, ToWorker } from './protocol.js';

interface UPlotLike { setData(d: unknown): void; destroy(): void }
declare const uPlot: { new (opts: unknown, data: unknown, el: HTMLElement): UPlotLike };
interface BaseLine { name: string; y: number; color: string }
declare const PocketlmCharts: {
  baselineLinesOf(b: Baselines, unit: 'nats' | 'bpb', suffix?: string): BaseLine[];
  rangeWithBaselines(base: BaseLine[]): unknown;
  baselineDrawHook(base: BaseLine[]): unknown;
};

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const fmt = (n: number): string => (Math.abs(n) >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : Math.round(n).toLocaleString('en-US'));
const fmtTime = (s: number): string => (s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${(s / 3600).toFixed(1)} h`);

/** Default steps per preset (a few minutes on a phone for tiny). */
const DEFAULT_STEPS: Record<string, number> = { tiny: 1500, 'seed-small': 600, phone: 400, default: 300 };

class Page {
  private readonly worker = new Worker(new URL('./train-worker.js', import.meta.url), { type: 'module', name: 'pocketlm-train' });
  private presets: Record<string, RunConfig> = {};
  private log: LogRecord[] = [];
  private baselines: Baselines | null = null;
  private info: RunInfo | null = null;
  private charts = new Map<string, UPlotLike>();
  private renderQueued = false;
  private running = false;
  private userText: { name: string; text: string } | null = null;
  /** The step this page's run started or resumed at. */
  private sessionStart = 0;

  async init(): Promise<void> {
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.onMessage(e.data);
    this.worker.onerror = (e) => this.status(`the training worker failed: ${e.message}`);
    const isolated = globalThis.crossOriginIsolated === true;
    const iso = $('isolation');
    iso.textContent = isolated
      ? `cross-origin isolated: WebAssembly SIMD kernels on ${this.threads()} threads over one SharedArrayBuffer`
      : 'not cross-origin isolated (the server did not send COOP/COEP headers): SharedArrayBuffer is unavailable, so training runs on ONE thread with the plain JavaScript kernels (much slower)';
    iso.classList.toggle('warn', !isolated);
    document.body.dataset.isolated = String(isolated);
    this.presets = await (await fetch('presets.json')).json() as Record<string, RunConfig>;
    const sel = $<HTMLSelectElement>('preset');
    for (const name of Object.keys(this.presets)) sel.append(new Option(name, name));
    sel.value = params.get('preset') ?? 'tiny';
    const steps = $<HTMLInputElement>('steps');
    const setSteps = (): void => { steps.value = params.get('steps') ?? String(DEFAULT_STEPS[sel.value] ?? 500); };
    setSteps();
    sel.onchange = setSteps;
    if (params.get('mb')) $<HTMLInputElement>('mb').value = params.get('mb')!;
    $<HTMLSelectElement>('source').onchange = () => { if ($<HTMLSelectElement>('source').value === 'file') $('file').click(); };
    $<HTMLInputElement>('file').onchange = async () => {
      const f = $<HTMLInputElement>('file').files?.[0];
      if (!f) return;
      this.userText = { name: f.name, text: await f.text() };
      this.status(`${f.name}: ${(f.size / 1e6).toFixed(2)} MB`);
    };
    $('start').onclick = () => void this.start().catch((e) => this.status(String(e)));
    $('stop').onclick = () => this.send({ type: 'stop' });
    $('resume').onclick = () => this.send({ type: 'resume', threads: this.threads() });
    $('forget').onclick = () => this.send({ type: 'forget' });
    $('prompt-form').onsubmit = (e) => {
      e.preventDefault();
      const tc = this.presets[this.info?.presetName ?? 'tiny']?.train;
      this.send({ type: 'sample', prompt: $<HTMLInputElement>('prompt').value, tokens: Math.max(32, tc?.sample_tokens ?? 64), temperature: tc?.sample_temperature ?? 0.8 });
    };
    $('dl-safetensors').onclick = () => this.send({ type: 'download', format: 'safetensors' });
    $('dl-gguf').onclick = () => this.send({ type: 'download', format: 'gguf' });
    window.addEventListener('resize', () => { this.charts.forEach((c) => c.destroy()); this.charts.clear(); this.queueRender(); });
    // a saved run continues by itself; else a new one starts when the URL asks (?autostart=1)
    this.status('looking for a saved run…');
    this.send({ type: 'resume', threads: this.threads() });
  }

  private threads(): number {
    const asked = Number(params.get('threads') ?? 0);
    return Math.max(1, asked > 0 ? asked : Math.min(8, navigator.hardwareConcurrency || 1));
  }

  private send(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private status(text: string): void {
    $('status').textContent = text;
  }

  private async start(): Promise<void> {
    const presetName = $<HTMLSelectElement>('preset').value;
    const base = this.presets[presetName]!;
    const steps = Math.max(1, Math.floor(Number($<HTMLInputElement>('steps').value)));
    const evalEvery = Number(params.get('eval') ?? 0) || Math.max(10, Math.min(base.train.eval_every, Math.round(steps / 10)));
    const config: RunConfig = { ...base, train: { ...base.train, steps, time_seconds: 0, eval_every: evalEvery } };
    const maxChars = Math.round(Number($<HTMLInputElement>('mb').value) * 1e6);
    let train: string, val: string, source: string;
    if ($<HTMLSelectElement>('source').value === 'file' && this.userText) {
      const t = this.userText.text.slice(0, maxChars);
      const cut = Math.floor(t.length * 0.9);
      train = t.slice(0, cut);
      val = t.slice(cut);
      source = this.userText.name;
    } else {
      this.status('loading the TinyStories sample…');
      const [tr, va] = await Promise.all([fetch('sample/train.txt'), fetch('sample/val.txt')]);
      if (!tr.ok || !va.ok) throw new Error('the TinyStories sample is not served here (pocketlm web serves it); pick a text file instead');
      train = (await tr.text()).slice(0, maxChars);
      val = (await va.text()).slice(0, Math.max(50_000, Math.round(maxChars / 8)));
      source = 'TinyStories sample';
    }
    this.log = [];
    $('samples').replaceChildren();
    this.send({ type: 'start', presetName, config, source, train, val, threads: this.threads() });
  }

  private setRunning(on: boolean): void {
    this.running = on;
    $<HTMLButtonElement>('start').disabled = on;
    $<HTMLButtonElement>('stop').disabled = !on;
    $<HTMLButtonElement>('resume').disabled = on || this.info === null;
    $<HTMLButtonElement>('forget').disabled = on;
    for (const id of ['sample', 'dl-safetensors', 'dl-gguf']) $<HTMLButtonElement>(id).disabled = this.info === null;
    document.body.dataset.running = String(on);
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'status': this.status(m.text); break;
      case 'none':
        this.info = null;
        this.setRunning(false);
        this.status('no saved run: pick a preset and press "train a new model"');
        if (params.get('autostart') === '1') void this.start().catch((e) => this.status(String(e)));
        break;
      case 'started': {
        this.info = m.info;
        this.log = [...m.log];
        this.baselines = m.baselines;
        this.sessionStart = m.info.resumedFromStep ?? 0;
        $('samples').replaceChildren();
        for (const s of m.samples) this.addSamples(s.step, s.samples);
        const b = document.body.dataset;
        b.threads = String(m.info.threads);
        b.kernels = m.info.kernels;
        b.build = m.info.build ?? '';
        b.resumedFrom = m.info.resumedFromStep === null ? '' : String(m.info.resumedFromStep);
        b.unigram = String(m.baselines.unigram.nats);
        this.setRunning(true);
        this.status(`${m.info.resumedFromStep !== null ? `resumed at step ${m.info.resumedFromStep}: ` : ''}${m.info.presetName}, ${fmt(m.info.params)} parameters, ${m.info.kernels}${m.info.build ? ` (${m.info.build} SIMD)` : ''} kernels on ${m.info.threads} thread${m.info.threads === 1 ? '' : 's'}; ${fmt(m.info.trainTokens)} train tokens of ${m.info.source}`);
        this.queueRender();
        break;
      }
      case 'step':
        this.log.push(m.record);
        document.body.dataset.step = String(m.record.step);
        if (m.record.val_loss !== undefined) document.body.dataset.valLoss = String(m.record.val_loss);
        this.queueRender();
        break;
      case 'samples': this.addSamples(m.step, m.samples); break;
      case 'saved':
        document.body.dataset.savedStep = String(m.step);
        $('stats').dataset.saved = `saved at step ${m.step}`;
        this.queueRender();
        break;
      case 'sampled':
        $('sampled').textContent = m.prompt + m.text;
        document.body.dataset.sampled = String(Number(document.body.dataset.sampled ?? 0) + 1);
        break;
      case 'file': {
        const a = document.createElement('a');
        a.href = URL.createObjectURL(m.blob);
        a.download = m.name;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
        break;
      }
      case 'done':
        this.setRunning(false);
        this.status(`paused at step ${m.step} and saved in this browser: "continue" picks up from there, also after a reload`);
        break;
      case 'error':
        this.status(`error: ${m.message}`);
        document.body.dataset.error = m.message;
        if (this.running) this.setRunning(false);
        break;
    }
  }

  private addSamples(step: number, samples: string[]): void {
    const box = document.createElement('div');
    box.className = 'sample';
    const head = document.createElement('div');
    head.className = 'step';
    head.textContent = `step ${step}`;
    box.append(head, ...samples.map((s) => { const p = document.createElement('div'); p.textContent = s; return p; }));
    $('samples').prepend(box);
  }

  private queueRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => { this.renderQueued = false; this.render(); });
  }

  private render(): void {
    const last = this.log[this.log.length - 1];
    const lastVal = [...this.log].reverse().find((r) => r.val_loss !== undefined);
    const recent = this.log.slice(-20);
    const tps = recent.length ? recent.reduce((a, r) => a + r.tokens_per_second, 0) / recent.length : 0;
    const stats = $('stats');
    stats.dataset.tokensPerSecond = String(tps);
    // the median over this session's steps after the first 10 (compilation, cold caches): what scripts/bench-web.mjs reads
    const settled = this.log.filter((r) => r.step > this.sessionStart + 10).map((r) => r.tokens_per_second).sort((a, b) => a - b);
    if (settled.length) stats.dataset.tokensPerSecondMedian = String(settled[settled.length >> 1]);
    stats.replaceChildren(...[
      ['step', last ? `${last.step}${this.info?.steps ? ` / ${this.info.steps}` : ''}` : '–'],
      ['loss', last ? last.loss.toFixed(3) : '–'],
      ['val loss', lastVal?.val_loss !== undefined ? `${lastVal.val_loss.toFixed(3)} (${lastVal.val_bpb!.toFixed(3)} bits/byte)` : '–'],
      ['tokens/s', tps ? fmt(tps) : '–'],
      ['time', last ? fmtTime(last.elapsed) : '–'],
      ['', stats.dataset.saved ?? ''],
    ].map(([k, v]) => { const s = document.createElement('span'); if (k) { const b = document.createElement('b'); b.textContent = `${k} `; s.append(b); } s.append(v!); return s; }));
    const base = this.baselines ? PocketlmCharts.baselineLinesOf(this.baselines, 'nats') : [];
    this.chart('chart-loss', 'loss (nats/token) · dashed: n-gram baselines on the validation text', [
      { label: 'train loss', key: 'loss', color: '#1f77b4' },
      { label: 'val loss', key: 'val_loss', color: '#d62728', sparse: true },
    ], base, 320);
    this.chart('chart-tps', 'tokens/s', [{ label: 'tokens/s', key: 'tokens_per_second', color: '#2ca02c' }], [], 320);
  }

  private chart(id: string, title: string, fields: { label: string; key: keyof LogRecord; color: string; sparse?: boolean }[], base: BaseLine[], height: number): void {
    const box = $(id);
    const xs = this.log.map((r) => r.step);
    const data = [xs, ...fields.map((f) => this.log.map((r) => (typeof r[f.key] === 'number' ? r[f.key] as number : null)))];
    let points = 0;
    for (let k = 1; k < data.length; k++) for (const v of data[k]!) if (v !== null) points++;
    box.dataset.points = String(points);
    let plot = this.charts.get(id);
    if (!plot) {
      box.replaceChildren();
      plot = new uPlot({
        title, width: Math.max(260, box.clientWidth - 4), height,
        scales: { x: { time: false }, y: { range: PocketlmCharts.rangeWithBaselines(base) } },
        axes: [{}, { size: 60 }],
        series: [{ label: 'step' }, ...fields.map((f) => ({ label: f.label, stroke: f.color, width: f.sparse ? 2 : 1.25, spanGaps: true, points: { show: !!f.sparse, size: 5 } }))],
        hooks: { draw: [PocketlmCharts.baselineDrawHook(base)] },
      }, data, box);
      // the baselines are fixed per run: a new run redraws from scratch (key on them)
      box.dataset.key = JSON.stringify(base.map((b) => b.y));
      this.charts.set(id, plot);
    } else if (box.dataset.key !== JSON.stringify(base.map((b) => b.y))) {
      plot.destroy();
      this.charts.delete(id);
      this.chart(id, title, fields, base, height);
      return;
    } else {
      plot.setData(data);
    }
  }
}

void new Page().init().catch((e) => { $('status').textContent = `error: ${String(e)}`; });
