/**
 * The pieces every pocketlm chart is drawn with (the run curves of `pocketlm plot` and the
 * study's progress.svg): XML escaping, round tick values, a plot frame mapping data to pixels
 * with its axes, grid and tick labels, and a legend. Hand-written SVG with no dependency;
 * tick labels carry their value and pixel position (data-value, data-x/data-y) so tests can
 * map coordinates back to values.
 */

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

/** A coordinate rounded to 0.01 px, so files stay small and diffs stable. */
export function n(x: number): string {
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

/** Decimals that tell the ticks apart. */
export function decimalsFor(ticks: number[]): number {
  if (ticks.length < 2) return 3;
  const step = Math.abs(ticks[1]! - ticks[0]!);
  return Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

/** A tick label: fixed decimals, or 1.2k / 3.4M for large round numbers. */
export function tickLabel(v: number, decimals: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return v.toFixed(decimals);
}

export interface FrameOptions {
  width: number;
  height: number;
  /** Margins around the plot area, in px. */
  left?: number;
  right?: number;
  top?: number;
  bottom?: number;
  /** Data ranges (already padded as the caller wants). */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The plot area and its data-to-pixel mapping. */
export class Frame {
  readonly W: number;
  readonly H: number;
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
  readonly pw: number;
  readonly ph: number;
  readonly x0: number;
  readonly x1: number;
  readonly y0: number;
  readonly y1: number;

  constructor(o: FrameOptions) {
    this.W = o.width;
    this.H = o.height;
    this.left = o.left ?? 70;
    this.right = o.right ?? 20;
    this.top = o.top ?? 44;
    this.bottom = o.bottom ?? 84;
    this.pw = this.W - this.left - this.right;
    this.ph = this.H - this.top - this.bottom;
    this.x0 = o.x0;
    this.x1 = o.x1 > o.x0 ? o.x1 : o.x0 + 1;
    this.y0 = o.y0;
    this.y1 = o.y1 > o.y0 ? o.y1 : o.y0 + 1;
  }

  X(v: number): number {
    return this.left + ((v - this.x0) / (this.x1 - this.x0)) * this.pw;
  }

  Y(v: number): number {
    return this.top + ((this.y1 - v) / (this.y1 - this.y0)) * this.ph;
  }

  /** The document's opening: declaration, <svg> and a white background (close with `</svg>`). */
  open(): string[] {
    return [
      `<?xml version="1.0" encoding="UTF-8"?>`,
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.W}" height="${this.H}" viewBox="0 0 ${this.W} ${this.H}" font-family="sans-serif" font-size="12">`,
      `<rect x="0" y="0" width="${this.W}" height="${this.H}" fill="#ffffff"/>`,
    ];
  }

  title(text: string): string {
    return `<text class="title" x="${n(this.W / 2)}" y="24" text-anchor="middle" font-size="16">${escapeXml(text)}</text>`;
  }

  /**
   * Axes, horizontal grid lines, tick labels and axis titles. `integerX` keeps only whole x ticks
   * (trial ids); `xLabelOf` formats an x tick (default: tickLabel).
   */
  axes(o: { xLabel: string; yLabel: string; integerX?: boolean; xTicks?: number; yTicks?: number; xLabelOf?: (v: number) => string }): string[] {
    const { left, top, pw, ph } = this;
    const out: string[] = [];
    out.push(`<g class="axes" stroke="#444" fill="none">`);
    out.push(`<line x1="${left}" y1="${top + ph}" x2="${left + pw}" y2="${top + ph}"/>`);
    out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + ph}"/>`);
    out.push(`</g>`);
    const yTicks = niceTicks(this.y0, this.y1, o.yTicks ?? 8);
    const yDec = decimalsFor(yTicks);
    out.push(`<g class="y-ticks" font-size="11">`);
    for (const v of yTicks) {
      const y = this.Y(v);
      out.push(`<line x1="${left}" y1="${n(y)}" x2="${left + pw}" y2="${n(y)}" stroke="#eee"/>`);
      out.push(`<text class="y-tick" x="${left - 6}" y="${n(y + 4)}" text-anchor="end" data-value="${v}" data-y="${n(y)}">${v.toFixed(yDec)}</text>`);
    }
    out.push(`</g>`);
    let xTicks = o.integerX ? niceTicks(Math.ceil(this.x0), Math.floor(this.x1), o.xTicks ?? 10).filter((v) => Number.isInteger(v)) : niceTicks(this.x0, this.x1, o.xTicks ?? 8);
    xTicks = xTicks.filter((v) => v >= this.x0 - 1e-9 && v <= this.x1 + 1e-9);
    const xDec = decimalsFor(xTicks);
    const fmt = o.xLabelOf ?? ((v: number) => (o.integerX ? String(v) : tickLabel(v, xDec)));
    out.push(`<g class="x-ticks" font-size="11">`);
    for (const v of xTicks) {
      const x = this.X(v);
      out.push(`<line x1="${n(x)}" y1="${top + ph}" x2="${n(x)}" y2="${top + ph + 4}" stroke="#444"/>`);
      out.push(`<text class="x-tick" x="${n(x)}" y="${top + ph + 17}" text-anchor="middle" data-value="${v}" data-x="${n(x)}">${escapeXml(fmt(v))}</text>`);
    }
    out.push(`</g>`);
    out.push(`<text x="${n(left + pw / 2)}" y="${top + ph + 34}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
    out.push(`<text x="16" y="${n(top + ph / 2)}" text-anchor="middle" transform="rotate(-90 16 ${n(top + ph / 2)})">${escapeXml(o.yLabel)}</text>`);
    return out;
  }
}

/** A legend entry: its mark and text. */
export type LegendMark =
  | { kind: 'dot'; color: string; r: number }
  | { kind: 'line'; color: string; dashed?: boolean }
  | { kind: 'cross'; color: string }
  | { kind: 'none' };

/** A legend along the bottom of the image: one row, or two when one is too long for the width. */
export function legendSvg(frame: Frame, items: Array<{ mark: LegendMark; label: string }>): string[] {
  const widthOf = (label: string) => 16 + label.length * 6.5 + 18;
  const rows: Array<typeof items> = [[]];
  let used = frame.left;
  for (const it of items) {
    if (used > frame.left && used + widthOf(it.label) > frame.W && rows.length < 2) {
      rows.push([]);
      used = frame.left;
    }
    rows[rows.length - 1]!.push(it);
    used += widthOf(it.label);
  }
  const out: string[] = [`<g class="legend" font-size="11">`];
  rows.forEach((row, r) => {
    let lx = frame.left;
    const ly = rows.length === 1 ? frame.H - 18 : frame.H - 30 + 16 * r;
    for (const { mark, label } of row) {
      if (mark.kind === 'dot') out.push(`<circle cx="${lx + 5}" cy="${ly - 4}" r="${mark.r}" fill="${mark.color}"/>`);
      else if (mark.kind === 'line') out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 12}" y2="${ly - 4}" stroke="${mark.color}" stroke-width="2"${mark.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
      else if (mark.kind === 'cross') out.push(`<path d="M${lx + 2},${ly - 7}L${lx + 8},${ly - 1}M${lx + 2},${ly - 1}L${lx + 8},${ly - 7}" stroke="${mark.color}" stroke-width="1.5"/>`);
      out.push(`<text x="${lx + 16}" y="${ly}">${escapeXml(label)}</text>`);
      lx += widthOf(label);
    }
  });
  out.push(`</g>`);
  return out;
}
