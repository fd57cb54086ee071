/** The text report: the kept table and the header lines, from a known journal. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize } from './summary.js';
import { keptTable, studyReportLines } from './report.js';
import { JournalBuilder, sampleStudy } from './testing.js';

test('keptTable: one row per kept change with before → after, gain and margin, columns aligned', () => {
  const lines = keptTable(summarize(sampleStudy().events)).split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^step\s+trial\s+change\s+bits\/byte\s+gain\s+margin$/);
  assert.match(lines[2], /^\s*1\s+#3\s+lr 0\.001 -> 0\.003\s+1\.5000 → 1\.4500\s+0\.0500\s+0\.0200$/);
  assert.match(lines[3], /^\s*2\s+#7\s+seq_len 128 -> 256\s+1\.4500 → 1\.4050\s+0\.0450\s+0\.0200$/);
  // Aligned: the before → after column starts at the same place on every row.
  const at = lines.slice(2).map((l) => l.indexOf('→'));
  assert.equal(at[0], at[1]);
  assert.equal(keptTable(summarize(new JournalBuilder().study().events)), 'no change kept');
});

test('keptTable: a long change is cut to fit', () => {
  const b = new JournalBuilder().study().trial(0, 'noise', {}, 'ok', 2).noise([2], 0.01);
  b.trial(1, 'plan', {}, 'ok', 1.9, { description: 'x'.repeat(100) }).decision(1, true, 1.9, 2, 0.01);
  const row = keptTable(summarize(b.events)).split('\n')[2];
  assert.ok(row.includes('x'.repeat(39) + '…'));
  assert.ok(!row.includes('x'.repeat(40)));
});

test('studyReportLines: trials by status, pace, noise, base, best and its path, then the table', () => {
  const lines = studyReportLines(summarize(sampleStudy().events));
  assert.equal(lines[0], 'study: tiny, 200000 tokens per trial, running or interrupted');
  assert.equal(lines[1], 'trials: 11 (8 ok, 1 pruned, 1 crash, 1 running/interrupted)');
  assert.match(lines[2], /^pace: \d+\.\d trials\/hour over \d+ min, paused 10 min in 1 pause$/);
  assert.equal(lines[3], 'noise: sd 0.0100 bits/byte over 3 seeds, margin 0.0200');
  assert.equal(lines[4], 'base: 1.5000 bits/byte');
  assert.equal(lines[5], 'best: 1.4050 bits/byte (0.0950 better, 6.3%): base → lr 0.001 -> 0.003 → seq_len 128 -> 256');
  assert.deepEqual(lines.slice(6, 8), ['', 'kept changes:']);
  assert.equal(lines.length, 8 + 4);
  // The pace: 10 finished trials over the journal's wall time.
  const minutes = Number(/over (\d+) min/.exec(lines[2])![1]);
  const rate = Number(/pace: ([\d.]+)/.exec(lines[2])![1]);
  assert.ok(Math.abs(rate - 10 / (minutes / 60)) < 0.1, `${rate} vs ${minutes} min`);
});

test('studyReportLines: before the noise estimate, and after the end event', () => {
  const early = studyReportLines(summarize(new JournalBuilder().study().start(0, 'noise').events));
  assert.equal(early[1], 'trials: 1 (1 running/interrupted)');
  assert.equal(early[3], 'noise: not measured yet');
  assert.equal(early[4], 'base: not measured yet');
  assert.ok(!early.some((l) => l.startsWith('best:')));
  assert.equal(early[early.length - 1], 'no change kept');
  const done = studyReportLines(summarize(sampleStudy().end(10, 'ok', 1.5).decision(10, false, 1.5, 1.405, 0.02).finish('max trials reached').events));
  assert.equal(done[0], 'study: tiny, 200000 tokens per trial, ended: max trials reached');
  assert.equal(done[1], 'trials: 11 (9 ok, 1 pruned, 1 crash)');
});
