/**
 * `pocketlm plot`: run folders (or one study folder) to a chart file, SVG or PNG by the
 * extension of the output. A study is drawn as its progress chart (progress-svg.ts, the chart
 * `research report` writes); runs as their curves (run-chart.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomicSync } from '../util/atomic.js';
import { journalPath, readJournal } from '../research/journal.js';
import { summarize } from '../research/summary.js';
import { progressSvg } from '../research/progress-svg.js';
import { lineChartSvg } from './line-chart.js';
import { runChart, type Metric, type XAxis } from './run-chart.js';
import { isRunFolder, readRunData } from './run-data.js';
import { svgToPng } from './png.js';

export interface PlotRequest {
  targets: string[];
  metric: Metric;
  x: XAxis;
  width: number;
  height: number;
}

/** The chart of the targets as an SVG document; refuses a folder that is neither a run nor a study, or a run with nothing logged. */
export function plotSvg(req: PlotRequest): string {
  const studies = req.targets.filter((t) => fs.existsSync(journalPath(t)));
  if (studies.length) {
    if (req.targets.length > 1) throw new UserError(`plot draws one study at a time (${studies[0]} is a study); give it alone`);
    const { events } = readJournal(studies[0]!);
    return progressSvg(summarize(events), { width: req.width, height: req.height });
  }
  const runs = req.targets.map((t) => {
    if (!fs.existsSync(t)) throw new UserError(`${t} does not exist`);
    if (!isRunFolder(t)) throw new UserError(`${t} is not a run folder (no log.jsonl or config.toml) nor a study (no journal.jsonl)`);
    const data = readRunData(t);
    if (!data.records.length) throw new UserError(`${path.join(t, 'log.jsonl')} holds no step yet: nothing to plot`);
    return data;
  });
  const names = new Set<string>();
  for (const r of runs) {
    // two runs with the same folder name (a/run, b/run): tell them apart by their path
    if (names.has(r.name)) r.name = r.dir;
    names.add(r.name);
  }
  const chart = runChart(runs, req.metric, req.x);
  if (!chart.series.some((s) => s.points.length)) {
    throw new UserError(`no ${req.metric} values in ${req.targets.join(', ')}${req.metric.startsWith('val_') ? ' (no evaluation logged yet)' : ''}`);
  }
  return lineChartSvg(chart, { width: req.width, height: req.height });
}

/** Writes the chart to `out` (atomically): .svg as is, .png rendered. Returns the bytes written. */
export function writePlot(out: string, svg: string): number {
  const ext = path.extname(out).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw new UserError(`--out must end in .svg or .png, got "${out}"`);
  const bytes = ext === '.svg' ? Buffer.from(svg, 'utf8') : svgToPng(svg);
  writeFileAtomicSync(out, bytes);
  return bytes.length;
}
