/**
 * progress.svg: the study at a glance, like autoresearch's progress.png. x = trial id,
 * y = validation bits per byte: scored trials as grey dots, kept ones green with a short label,
 * the running best as a step line inside a band of ± the noise margin; trials that never scored
 * (pruned, crashed, ...) as small marks along the bottom, counted in the legend. Hand-written
 * SVG with no dependency, every text escaped.
 */
import type { StudySummary, TrialRow } from './summary.js';

export interface ProgressSvgOptions {
  width?: number;
  height?: number;
  title?: string;
}

/** Text and attribute values with the five XML special characters escaped and control characters dropped. */
export function escapeXml(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (ch === '"') out += '&quot;';
    else if (ch === "'") out += '&apos;';
    // XML 1.0 allows no control characters but tab, newline and carriage return.
    else if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) out += ' ';
    else out += ch;
  }
  return out;
}

/** Round coordinates so the file stays small and diffs stay stable. */
function n(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const ticks: number[] = [];
  // Integer multiples of the step, rounded to 12 significant digits so 0.1 * 14 prints as 1.4.
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

function decimalsFor(ticks: number[]): number {
  if (ticks.length < 2) return 3;
  const step = Math.abs(ticks[1] - ticks[0]);
  return Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

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

  const X = (id: number) => left + ((id - x0) / (x1 - x0)) * pw;
  const Y = (v: number) => top + ((y1 - v) / (y1 - y0)) * ph;

  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  const kept = summary.kept.length;
  const title = opts.title ?? `pocketlm research${summary.base_name ? `: ${summary.base_name}` : ''}: ${summary.rows.length} trials, ${kept} kept`;
  out.push(`<text class="title" x="${n(W / 2)}" y="24" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`);

  // Axes, grid and ticks.
  out.push(`<g class="axes" stroke="#444" fill="none">`);
  out.push(`<line x1="${left}" y1="${top + ph}" x2="${left + pw}" y2="${top + ph}"/>`);
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + ph}"/>`);
  out.push(`</g>`);
  const yTicks = niceTicks(y0, y1, 8);
  const yDec = decimalsFor(yTicks);
  out.push(`<g class="y-ticks" font-size="11">`);
  for (const v of yTicks) {
    const y = Y(v);
    out.push(`<line x1="${left}" y1="${n(y)}" x2="${left + pw}" y2="${n(y)}" stroke="#eee"/>`);
    out.push(`<text class="y-tick" x="${left - 6}" y="${n(y + 4)}" text-anchor="end" data-value="${v}" data-y="${n(y)}">${v.toFixed(yDec)}</text>`);
  }
  out.push(`</g>`);
  const xTicks = niceTicks(Math.ceil(x0), Math.floor(x1), 10).filter((v) => Number.isInteger(v));
  out.push(`<g class="x-ticks" font-size="11">`);
  for (const v of xTicks) {
    const x = X(v);
    out.push(`<line x1="${n(x)}" y1="${top + ph}" x2="${n(x)}" y2="${top + ph + 4}" stroke="#444"/>`);
    out.push(`<text class="x-tick" x="${n(x)}" y="${top + ph + 17}" text-anchor="middle" data-value="${v}" data-x="${n(x)}">${v}</text>`);
  }
  out.push(`</g>`);
  out.push(`<text x="${n(left + pw / 2)}" y="${top + ph + 34}" text-anchor="middle">trial</text>`);
  out.push(`<text x="16" y="${n(top + ph / 2)}" text-anchor="middle" transform="rotate(-90 16 ${n(top + ph / 2)})">validation bits per byte (lower is better)</text>`);

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
  const legend: Array<[string, string]> = [
    ['dot-grey', `scored (${scored.length}${offScale ? `, ${offScale} off the scale` : ''})`],
    ['dot-green', `kept (${scored.filter((r) => r.kept === true).length})`],
    ['line', `best${margin > 0 ? ` ± margin ${margin.toFixed(4)}` : ''}`],
  ];
  if (unscored.length) legend.push(['cross', [...counts].map(([k, v]) => `${k} ${v}`).join(', ')]);
  if (running.length) legend.push(['none', `running/interrupted ${running.length}`]);
  out.push(`<g class="legend" font-size="11">`);
  let lx = left;
  const ly = H - 18;
  for (const [mark, label] of legend) {
    if (mark === 'dot-grey') out.push(`<circle cx="${lx + 5}" cy="${ly - 4}" r="3" fill="#999"/>`);
    else if (mark === 'dot-green') out.push(`<circle cx="${lx + 5}" cy="${ly - 4}" r="5" fill="#2ca02c"/>`);
    else if (mark === 'line') out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 12}" y2="${ly - 4}" stroke="#2ca02c" stroke-width="2"/>`);
    else if (mark === 'cross') out.push(`<path d="M${lx + 2},${ly - 7}L${lx + 8},${ly - 1}M${lx + 2},${ly - 1}L${lx + 8},${ly - 7}" stroke="#d62728" stroke-width="1.5"/>`);
    out.push(`<text x="${lx + 16}" y="${ly}">${escapeXml(label)}</text>`);
    lx += 16 + label.length * 6.5 + 18;
  }
  out.push(`</g>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
