/**
 * progress.svg: the study at a glance, like autoresearch's progress.png. x = trial id,
 * y = validation bits per byte: scored trials as grey dots, kept ones green with a short label,
 * the running best as a step line inside a band of ± the noise margin; trials that never scored
 * (pruned, crashed, ...) as small marks along the bottom, counted in the legend. Drawn with the
 * frame, axes and legend of src/plot/svg.ts (the code `pocketlm plot` uses), every text escaped.
 */
import type { StudySummary, TrialRow } from './summary.js';
import { Frame, escapeXml, legendSvg, n, type LegendMark } from '../plot/svg.js';

export interface ProgressSvgOptions {
  width?: number;
  height?: number;
  title?: string;
}

// The chart primitives are shared with `pocketlm plot` (src/plot/svg.ts); re-exported for the study's callers.
export { escapeXml, niceTicks } from '../plot/svg.js';

function shortLabel(row: TrialRow): string {
  const text = row.description.replace(/\s+/g, ' ').trim() || `trial ${row.id}`;
  return text.length <= 28 ? text : text.slice(0, 27) + '…';
}

/** The chart as a complete SVG document (a string; the caller writes it). */
export function progressSvg(summary: StudySummary, opts: ProgressSvgOptions = {}): string {
  const W = opts.width ?? 900;
  const H = opts.height ?? 480;
  const left = 70, right = 20, top = 44, bottom = 84;
  const pw = W - left - right;
  const ph = H - top - bottom;

  const scored = summary.rows.filter((r) => r.status === 'ok' && r.val_bpb !== null && Number.isFinite(r.val_bpb));
  const unscored = summary.rows.filter((r) => r.status !== 'ok' && r.status !== 'running');
  const running = summary.rows.filter((r) => r.status === 'running');
  const margin = summary.noise?.margin ?? 0;
  // The best line's corners: (trial id, best after it) for every row once a best exists.
  const bestPts = summary.rows.filter((r) => r.best_bpb !== null).map((r) => [r.id, r.best_bpb!] as const);

  const ids = summary.rows.map((r) => r.id);
  let x0 = ids.length ? Math.min(...ids) : 0;
  let x1 = ids.length ? Math.max(...ids) : 1;
  if (x1 - x0 < 1) { x0 -= 0.5; x1 += 0.5; }
  const ys = [...scored.map((r) => r.val_bpb!), ...bestPts.flatMap(([, b]) => [b - margin, b + margin])];
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  // A few wild trials (a learning rate 10x too high) would flatten everything that matters into
  // a line: the scale stops half its span above the upper quartile of the scores and the band,
  // and trials above it are drawn on the top edge as hollow "off-scale" markers.
  const sorted = [...scored.map((r) => r.val_bpb!)].sort((a, b) => a - b);
  const q3 = sorted.length ? sorted[Math.floor(0.75 * (sorted.length - 1))] : y1;
  const bandTop = bestPts.length ? Math.max(...bestPts.map(([, b]) => b + margin)) : -Infinity;
  const core = Math.max(q3, bandTop);
  const cap = core + 0.5 * (core - y0);
  if (y1 > cap && core > y0) y1 = cap;
  if (y1 - y0 < 1e-6) { y0 -= 0.05; y1 += 0.05; }
  const pad = (y1 - y0) * 0.06;
  y0 -= pad; y1 += pad;
  const xPad = (x1 - x0) * 0.02;
  x0 -= xPad; x1 += xPad;

  const frame = new Frame({ width: W, height: H, left, right, top, bottom, x0, x1, y0, y1 });
  const X = (id: number) => frame.X(id);
  const Y = (v: number) => frame.Y(v);

  const out: string[] = frame.open();
  const kept = summary.kept.length;
  const title = opts.title ?? `pocketlm research${summary.base_name ? `: ${summary.base_name}` : ''}: ${summary.rows.length} trials, ${kept} kept`;
  out.push(frame.title(title));
  out.push(...frame.axes({ xLabel: 'trial', yLabel: 'validation bits per byte (lower is better)', integerX: true, xTicks: 10, yTicks: 8 }));

  // The band of best ± margin and the running-best step line.
  if (bestPts.length) {
    const xEnd = X(x1);
    const steps: Array<[number, number]> = [];
    bestPts.forEach(([id, b], i) => {
      if (i > 0) steps.push([X(id), Y(bestPts[i - 1][1])]);
      steps.push([X(id), Y(b)]);
    });
    steps.push([xEnd, Y(bestPts[bestPts.length - 1][1])]);
    if (margin > 0) {
      const upper: string[] = [];
      const lower: string[] = [];
      bestPts.forEach(([id, b], i) => {
        if (i > 0) {
          upper.push(`${n(X(id))},${n(Y(bestPts[i - 1][1] + margin))}`);
          lower.push(`${n(X(id))},${n(Y(bestPts[i - 1][1] - margin))}`);
        }
        upper.push(`${n(X(id))},${n(Y(b + margin))}`);
        lower.push(`${n(X(id))},${n(Y(b - margin))}`);
      });
      const last = bestPts[bestPts.length - 1][1];
      upper.push(`${n(xEnd)},${n(Y(last + margin))}`);
      lower.push(`${n(xEnd)},${n(Y(last - margin))}`);
      out.push(`<polygon class="noise-band" points="${[...upper, ...lower.reverse()].join(' ')}" fill="#2ca02c" fill-opacity="0.12" stroke="none"/>`);
    }
    out.push(`<polyline class="best-line" points="${steps.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="#2ca02c" stroke-width="2"/>`);
  }

  // Scored trials: grey dots, kept ones green with a label.
  out.push(`<g class="trials">`);
  for (const r of scored) {
    const cx = n(X(r.id));
    const cy = n(Y(r.val_bpb!));
    const tip = `<title>#${r.id} ${escapeXml(r.description)}: ${r.val_bpb!.toFixed(4)}</title>`;
    if (r.val_bpb! > y1) {
      out.push(`<circle class="trial ok off-scale" data-id="${r.id}" data-value="${r.val_bpb}" cx="${cx}" cy="${top}" r="3" fill="none" stroke="#666">${tip}</circle>`);
    } else if (r.kept === true) {
      out.push(`<circle class="trial ok kept" data-id="${r.id}" cx="${cx}" cy="${cy}" r="5" fill="#2ca02c" stroke="#1a6b1a">${tip}</circle>`);
      out.push(`<text class="kept-label" x="${n(X(r.id) + 7)}" y="${n(Y(r.val_bpb!) - 7)}" font-size="10" fill="#1a6b1a">${escapeXml(shortLabel(r))}</text>`);
    } else {
      out.push(`<circle class="trial ok" data-id="${r.id}" cx="${cx}" cy="${cy}" r="3" fill="#999" fill-opacity="0.7">${tip}</circle>`);
    }
  }
  out.push(`</g>`);

  // Trials that never scored: small crosses along the bottom edge of the plot.
  out.push(`<g class="unscored" stroke="#d62728" stroke-width="1.5">`);
  for (const r of unscored) {
    const x = X(r.id);
    const y = top + ph - 6;
    out.push(`<path class="trial ${r.status}" data-id="${r.id}" d="M${n(x - 3)},${n(y - 3)}L${n(x + 3)},${n(y + 3)}M${n(x - 3)},${n(y + 3)}L${n(x + 3)},${n(y - 3)}"><title>#${r.id} ${escapeXml(r.status)}: ${escapeXml(r.reason)}</title></path>`);
  }
  out.push(`</g>`);

  // Legend with counts.
  const counts = new Map<string, number>();
  for (const r of unscored) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const offScale = scored.filter((r) => r.val_bpb! > y1).length;
  const legend: Array<{ mark: LegendMark; label: string }> = [
    { mark: { kind: 'dot', color: '#999', r: 3 }, label: `scored (${scored.length}${offScale ? `, ${offScale} off the scale` : ''})` },
    { mark: { kind: 'dot', color: '#2ca02c', r: 5 }, label: `kept (${scored.filter((r) => r.kept === true).length})` },
    { mark: { kind: 'line', color: '#2ca02c' }, label: `best${margin > 0 ? ` ± margin ${margin.toFixed(4)}` : ''}` },
  ];
  if (unscored.length) legend.push({ mark: { kind: 'cross', color: '#d62728' }, label: [...counts].map(([k, v]) => `${k} ${v}`).join(', ') });
  if (running.length) legend.push({ mark: { kind: 'none' }, label: `running/interrupted ${running.length}` });
  out.push(...legendSvg(frame, legend));
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
