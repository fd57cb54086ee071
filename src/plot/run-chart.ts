/**
 * Run curves as a chart: a metric of log.jsonl against steps, time or tokens, for one run or
 * several overlaid, with the n-gram baselines as reference lines when the metric is a loss
 * (in nats/token for losses, bits per byte for val_bpb).
 */
import type { Baselines } from '../data/baselines.js';
import type { LogRecord } from '../train/log.js';
import type { LineChart, RefLine, Series } from './line-chart.js';
import type { RunData } from './run-data.js';

export const METRICS = ['val_bpb', 'val_loss', 'loss', 'lr', 'grad_norm', 'tokens_per_second'] as const;
export type Metric = (typeof METRICS)[number];
export const X_AXES = ['step', 'time', 'tokens'] as const;
export type XAxis = (typeof X_AXES)[number];

const METRIC_LABEL: Record<Metric, string> = {
  val_bpb: 'validation bits per byte',
  val_loss: 'validation loss (nats/token)',
  loss: 'loss (nats/token)',
  lr: 'learning rate',
  grad_norm: 'gradient norm (before clipping)',
  tokens_per_second: 'tokens per second',
};
const X_LABEL: Record<XAxis, string> = { step: 'step', time: 'training time', tokens: 'tokens' };

/** Colours of the overlaid runs (colour-blind-safe palette, in order). */
export const RUN_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const BASELINE_COLORS: Record<string, string> = { uniform: '#bbbbbb', unigram: '#999999', bigram: '#777777', trigram: '#444444' };

export function xOf(r: LogRecord, x: XAxis): number {
  return x === 'step' ? r.step : x === 'time' ? r.elapsed : r.tokens;
}

/** 95 -> "1m35s", 4000 -> "1h06m". */
export function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(t % 60).padStart(2, '0')}s`;
  return `${t}s`;
}

/** Reference lines for a metric: none unless it is a loss; one set per distinct dataset. */
export function baselineLines(runs: Array<{ name: string; baselines: Baselines | null }>, metric: Metric): RefLine[] {
  if (metric !== 'val_bpb' && metric !== 'val_loss' && metric !== 'loss') return [];
  const seen = new Map<string, { names: string[]; b: Baselines }>();
  for (const r of runs) {
    if (!r.baselines) continue;
    const key = r.baselines.info?.fingerprint ?? JSON.stringify(r.baselines.uniform);
    const e = seen.get(key);
    if (e) e.names.push(r.name);
    else seen.set(key, { names: [r.name], b: r.baselines });
  }
  const lines: RefLine[] = [];
  for (const { names, b } of seen.values()) {
    for (const k of ['trigram', 'bigram', 'unigram', 'uniform'] as const) {
      const e = b[k];
      const suffix = seen.size > 1 ? ` (${names.join(', ')})` : '';
      lines.push({ name: `${k}${suffix}`, y: metric === 'val_bpb' ? e.bpb : e.nats, color: BASELINE_COLORS[k]! });
    }
  }
  return lines;
}

/** The chart of `metric` against `x` for the runs (`loss` also draws the validation loss, dotted at its evaluations). */
export function runChart(runs: RunData[], metric: Metric, x: XAxis): LineChart {
  const series: Series[] = [];
  runs.forEach((run, i) => {
    const color = RUN_COLORS[i % RUN_COLORS.length]!;
    const label = (what: string) => (runs.length > 1 ? `${run.name}: ${what}` : what);
    const pick = (field: keyof LogRecord) =>
      run.records.filter((r) => typeof r[field] === 'number').map((r) => [xOf(r, x), r[field] as number] as const);
    if (metric === 'loss') {
      series.push({ name: label('training loss'), points: pick('loss'), color, width: 1.2 });
      const val = pick('val_loss');
      if (val.length) series.push({ name: label('validation loss'), points: val, color: i === 0 ? '#ff7f0e' : color, markers: true, width: 2 });
    } else {
      const sparse = metric === 'val_bpb' || metric === 'val_loss';
      series.push({ name: label(METRIC_LABEL[metric]), points: pick(metric), color, markers: sparse, width: sparse ? 2 : 1.4 });
    }
  });
  const names = runs.map((r) => r.name);
  return {
    title: `pocketlm: ${METRIC_LABEL[metric]}${names.length ? ` - ${names.length > 3 ? `${names.length} runs` : names.join(', ')}` : ''}`,
    xLabel: X_LABEL[x],
    yLabel: METRIC_LABEL[metric],
    series,
    refLines: baselineLines(runs, metric),
    xLabelOf: x === 'time' ? formatSeconds : undefined,
  };
}
