/**
 * results.tsv: one line per trial with the original's columns, for spreadsheets and `sort`/`awk`.
 * Regenerated from the journal (never appended to), so it always matches it.
 */
import type { StudySummary, TrialRow } from './summary.js';

export const RESULTS_TSV_COLUMNS = [
  'id', 'date', 'config change', 'val loss', 'val bpb', 'best so far', 'tokens/s', 'peak RAM MB', 'steps', 'seconds', 'status', 'notes',
] as const;

/** A field with tabs, newlines and carriage returns replaced by spaces, so each trial stays one line of 12 fields. */
export function tsvField(text: string): string {
  return text.replace(/[\t\r\n]+/g, ' ');
}

function fixed(x: number | null, digits: number): string {
  return x === null || !Number.isFinite(x) ? '' : x.toFixed(digits);
}

/** `YYYY-MM-DD HH:MM:SS` in UTC (the journal's ISO time; '' when unparsable). */
export function tsvDate(iso: string): string {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 19).replace('T', ' ') : '';
}

/** keep / discard for decided trials, otherwise how the trial ended (ok, pruned, crash, ..., running). */
export function rowVerdict(row: TrialRow): string {
  if (row.kept === true) return 'keep';
  if (row.kept === false) return 'discard';
  return row.status;
}

function notes(row: TrialRow): string {
  const parts = [row.kind, `seed ${row.seed}`];
  if (row.confirms !== null) parts.push(`confirms #${row.confirms}`);
  if (row.reason) parts.push(row.reason);
  if (row.decision_reason) parts.push(row.decision_reason);
  return parts.join('; ');
}

/** The whole file: a header line and one line per trial, each ending in a newline. */
export function resultsTsv(summary: StudySummary): string {
  const lines = [RESULTS_TSV_COLUMNS.join('\t')];
  for (const row of summary.rows) {
    const fields = [
      String(row.id),
      tsvDate(row.started),
      row.description,
      fixed(row.val_loss, 4),
      fixed(row.val_bpb, 4),
      fixed(row.best_bpb, 4),
      fixed(row.tokens_per_second, 0),
      fixed(row.peak_rss_mb, 0),
      row.steps === null ? '' : String(row.steps),
      fixed(row.seconds, 1),
      rowVerdict(row),
      notes(row),
    ];
    lines.push(fields.map(tsvField).join('\t'));
  }
  return lines.join('\n') + '\n';
}
