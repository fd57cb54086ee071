/**
 * The study report as text: a header (trials by status, pace, noise, base and best) and the
 * table of kept changes. Returns lines; the CLI prints them.
 */
import { elapsedHours, type StudySummary } from './summary.js';
import { TRIAL_STATUSES } from './types.js';

function bpb(x: number): string {
  return x.toFixed(4);
}

/** Lines of a table with columns padded to their widest cell; `right` marks right-aligned columns. */
function table(header: string[], rows: string[][], right: boolean[]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** Changes longer than this are cut with an ellipsis so the table fits a terminal. */
const CHANGE_WIDTH = 40;

function cut(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= width ? flat : flat.slice(0, width - 1) + '…';
}

/** The kept changes as a plain-text table (step, trial, change, bpb before → after, gain, margin), or one line saying none was kept. */
export function keptTable(summary: StudySummary): string {
  if (summary.kept.length === 0) return 'no change kept';
  const rows = summary.kept.map((k) => [
    String(k.step),
    `#${k.id}`,
    cut(k.description, CHANGE_WIDTH),
    `${bpb(k.bpb_before)} → ${bpb(k.bpb_after)}`,
    bpb(k.gain),
    bpb(k.margin),
  ]);
  return table(['step', 'trial', 'change', 'bits/byte', 'gain', 'margin'], rows, [true, true, false, false, true, true]).join('\n');
}

function duration(hours: number): string {
  const minutes = Math.round(hours * 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** The report's lines: study, trials by status, pace, pauses, noise, base, best and its path, then the kept table. */
export function studyReportLines(summary: StudySummary): string[] {
  const s = summary;
  const lines: string[] = [];
  const budget = s.budget ? `, ${s.budget.value} ${s.budget.kind} per trial` : '';
  const state = s.ended !== null ? `ended: ${s.ended}` : s.counts.running > 0 ? 'running or interrupted' : 'not ended';
  lines.push(`study: ${s.base_name ?? '(no study event)'}${budget}, ${state}`);

  const parts = [...TRIAL_STATUSES, 'running' as const]
    .filter((k) => s.counts[k] > 0)
    .map((k) => `${s.counts[k]} ${k === 'running' ? 'running/interrupted' : k}`);
  lines.push(`trials: ${s.rows.length}${parts.length ? ` (${parts.join(', ')})` : ''}`);

  const hours = elapsedHours(s);
  const finished = s.rows.length - s.counts.running;
  const paused = s.pauses.reduce((a, p) => a + p.seconds, 0);
  const pace = hours > 0 ? `${(finished / hours).toFixed(1)} trials/hour over ${duration(hours)}` : 'no time elapsed';
  const pauses = s.pauses.length ? `, paused ${duration(paused / 3600)} in ${s.pauses.length} pause${s.pauses.length > 1 ? 's' : ''}` : '';
  lines.push(`pace: ${pace}${pauses}`);

  if (s.noise) {
    lines.push(`noise: sd ${bpb(s.noise.sd)} bits/byte over ${s.noise.bpb.length} seeds, margin ${bpb(s.noise.margin)}`);
  } else {
    lines.push('noise: not measured yet');
  }
  lines.push(`base: ${s.base_bpb === null ? 'not measured yet' : `${bpb(s.base_bpb)} bits/byte`}`);
  if (s.best_bpb !== null) {
    const gain = s.base_bpb !== null && s.base_bpb > 0 ? ` (${bpb(s.base_bpb - s.best_bpb)} better, ${((100 * (s.base_bpb - s.best_bpb)) / s.base_bpb).toFixed(1)}%)` : '';
    const path = ['base', ...s.kept.map((k) => k.description.replace(/\s+/g, ' '))].join(' → ');
    lines.push(`best: ${bpb(s.best_bpb)} bits/byte${gain}: ${path}`);
  }
  lines.push('', 'kept changes:', ...keptTable(s).split('\n'));
  return lines;
}
