/**
 * Curves against a shared x axis, with horizontal reference lines (the n-gram baselines): the
 * chart `pocketlm plot` writes. Each series is a polyline (class "series", its name and point
 * count in data attributes) with optional dots at its points (sparse curves such as the
 * validation loss); each reference line is a dashed line labelled at its right end.
 */
import { Frame, escapeXml, legendSvg, n, type LegendMark } from './svg.js';

export interface Series {
  name: string;
  points: Array<readonly [number, number]>;
  color: string;
  /** Dots at the points (a curve with few points). */
  markers?: boolean;
  width?: number;
}

export interface RefLine {
  name: string;
  y: number;
  color: string;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  refLines: RefLine[];
  /** Formats an x tick (e.g. seconds as 1m30s). */
  xLabelOf?: (v: number) => string;
}

const finite = (p: readonly [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]);

/** The chart as a complete SVG document. */
export function lineChartSvg(chart: LineChart, opts: { width?: number; height?: number } = {}): string {
  const W = opts.width ?? 900;
  const H = opts.height ?? 480;
  const series = chart.series.map((s) => ({ ...s, points: s.points.filter(finite) }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = [...series.flatMap((s) => s.points.map((p) => p[1])), ...chart.refLines.map((r) => r.y)];
  let x0 = xs.length ? Math.min(...xs) : 0;
  let x1 = xs.length ? Math.max(...xs) : 1;
  if (x1 - x0 <= 0) { x0 -= 0.5; x1 += 0.5; }
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  if (y1 - y0 < 1e-9) { y0 -= 0.05 * Math.max(1, Math.abs(y0)); y1 += 0.05 * Math.max(1, Math.abs(y1)); }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  // room at the right for the reference lines' labels
  const right = chart.refLines.length ? 130 : 20;
  const frame = new Frame({ width: W, height: H, right, x0, x1, y0, y1 });
  const out = frame.open();
  out.push(frame.title(chart.title));
  out.push(...frame.axes({ xLabel: chart.xLabel, yLabel: chart.yLabel, xLabelOf: chart.xLabelOf }));

  out.push(`<g class="ref-lines" font-size="10">`);
  for (const r of chart.refLines) {
    const y = n(frame.Y(r.y));
    out.push(`<line class="baseline" data-name="${escapeXml(r.name)}" data-value="${r.y}" x1="${frame.left}" y1="${y}" x2="${frame.left + frame.pw}" y2="${y}" stroke="${r.color}" stroke-width="1.2" stroke-dasharray="6 4"/>`);
    out.push(`<text class="baseline-label" x="${frame.left + frame.pw + 4}" y="${n(frame.Y(r.y) + 3)}" fill="${r.color}">${escapeXml(`${r.name} ${r.y.toFixed(3)}`)}</text>`);
  }
  out.push(`</g>`);

  out.push(`<g class="curves" fill="none">`);
  for (const s of series) {
    const pts = s.points.map(([x, y]) => `${n(frame.X(x))},${n(frame.Y(y))}`).join(' ');
    out.push(`<polyline class="series" data-name="${escapeXml(s.name)}" data-points="${s.points.length}" points="${pts}" stroke="${s.color}" stroke-width="${s.width ?? 1.6}" stroke-linejoin="round"/>`);
    if (s.markers) {
      for (const [x, y] of s.points) out.push(`<circle class="point" cx="${n(frame.X(x))}" cy="${n(frame.Y(y))}" r="2.5" fill="${s.color}"/>`);
    }
  }
  out.push(`</g>`);

  const legend: Array<{ mark: LegendMark; label: string }> = series.map((s) => ({ mark: { kind: 'line', color: s.color }, label: s.name }));
  if (chart.refLines.length) legend.push({ mark: { kind: 'line', color: '#777', dashed: true }, label: 'n-gram baselines (same validation split)' });
  out.push(...legendSvg(frame, legend));
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
