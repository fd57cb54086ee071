/**
 * A small text chart of the validation curve for the end of `pocketlm train` (drawn by
 * asciichart): the values stretched to the chart's width, the y labels on the left, the first
 * and last step under the x axis.
 */
import asciichart from 'asciichart';
import { readLog } from '../train/log.js';
import { runPaths } from '../train/run.js';

export interface TerminalChartOptions {
  /** Rows of the plot (the y range is split into this many steps). */
  height?: number;
  /** Columns of the plot, without the labels. */
  width?: number;
  /** Digits after the point of the y labels. */
  decimals?: number;
}

/** Values at `width` evenly spaced x positions, linearly interpolated between the points (x sorted). */
export function resample(points: ReadonlyArray<readonly [number, number]>, width: number): number[] {
  if (points.length === 0) return [];
  if (points.length === 1) return new Array<number>(width).fill(points[0]![1]);
  const x0 = points[0]![0];
  const x1 = points[points.length - 1]![0];
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < width; i++) {
    const x = x0 + ((x1 - x0) * i) / Math.max(1, width - 1);
    while (j < points.length - 2 && points[j + 1]![0] < x) j++;
    const [xa, ya] = points[j]!;
    const [xb, yb] = points[j + 1]!;
    out.push(xb === xa ? yb : ya + ((yb - ya) * (x - xa)) / (xb - xa));
  }
  return out;
}

/** The chart's lines (no trailing newline), or [] when there are fewer than two points. */
export function terminalChart(points: ReadonlyArray<readonly [number, number]>, title: string, opts: TerminalChartOptions = {}): string[] {
  const pts = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length < 2) return [];
  const height = opts.height ?? 8;
  const width = opts.width ?? 60;
  const decimals = opts.decimals ?? 3;
  const values = resample(pts, width);
  const labelWidth = Math.max(...values.map((v) => v.toFixed(decimals).length)) + 1;
  const plot = asciichart.plot(values, {
    height,
    format: (v: number) => v.toFixed(decimals).padStart(labelWidth),
  });
  const lines = plot.split('\n');
  const pad = ' '.repeat(labelWidth + 2);
  const first = `step ${pts[0]![0]}`;
  const last = `step ${pts[pts.length - 1]![0]}`;
  return [title, ...lines, pad + first + last.padStart(Math.max(last.length + 1, width - first.length))];
}

/** The chart of a run's validation bits per byte by step, from its log.jsonl ([] with fewer than two evaluations). */
export function validationChartLines(runDir: string, opts: TerminalChartOptions = {}): string[] {
  const points = readLog(runPaths(runDir).log)
    .filter((r) => typeof r.val_bpb === 'number')
    .map((r) => [r.step, r.val_bpb!] as const);
  return terminalChart(points, 'validation bits per byte by step:', opts);
}
