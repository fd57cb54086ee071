/** results.tsv: the header, one line of 12 fields per trial, fixed decimals, empty for missing, no tab or newline inside a field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize } from './summary.js';
import { resultsTsv, RESULTS_TSV_COLUMNS, tsvField } from './results-tsv.js';
import { sampleStudy } from './testing.js';

function parse(tsv: string): string[][] {
  assert.ok(tsv.endsWith('\n'));
  return tsv.slice(0, -1).split('\n').map((l) => l.split('\t'));
}

test('resultsTsv: a header and one line of 12 fields per trial', () => {
  const lines = parse(resultsTsv(summarize(sampleStudy().events)));
  assert.deepEqual(lines[0], [...RESULTS_TSV_COLUMNS]);
  assert.equal(lines.length, 1 + 11);
  for (const l of lines) assert.equal(l.length, 12, l.join('|'));
  assert.deepEqual(lines.slice(1).map((l) => l[0]), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
});

test('resultsTsv: fields of a kept trial, a confirmation, a pruned and a running trial', () => {
  const lines = parse(resultsTsv(summarize(sampleStudy().events)));
  const col = (name: string) => RESULTS_TSV_COLUMNS.indexOf(name as (typeof RESULTS_TSV_COLUMNS)[number]);
  const r3 = lines[1 + 3];
  // Events are one minute apart: study, 3 noise trials (start + end), noise, then trial 3's start at minute 8.
  assert.equal(r3[col('date')], '2026-03-01 10:08:00');
  assert.equal(r3[col('config change')], 'lr 0.001 -> 0.003');
  assert.equal(r3[col('val loss')], '3.6250');
  assert.equal(r3[col('val bpb')], '1.4500');
  assert.equal(r3[col('best so far')], '1.4500');
  assert.equal(r3[col('tokens/s')], '3333');
  assert.equal(r3[col('peak RAM MB')], '322');
  assert.equal(r3[col('steps')], '100');
  assert.equal(r3[col('seconds')], '60.0');
  assert.equal(r3[col('status')], 'keep');
  assert.equal(r3[col('notes')], 'lr_search; seed 1; beats the best by more than the margin');
  // The description had a tab: replaced, so the line keeps 12 fields.
  assert.equal(lines[1 + 7][col('config change')], 'seq_len 128 -> 256');
  assert.equal(lines[1 + 8][col('notes')], 'confirm; seed 2; confirms #7');
  assert.equal(lines[1 + 8][col('best so far')], '1.4050');
  assert.equal(lines[1 + 4][col('status')], 'discard');
  const pruned = lines[1 + 5];
  assert.equal(pruned[col('status')], 'pruned');
  assert.equal(pruned[col('val bpb')], '');
  assert.equal(pruned[col('val loss')], '');
  assert.equal(pruned[col('notes')], 'random; seed 1; pruned at step 40');
  const running = lines[1 + 10];
  assert.equal(running[col('status')], 'running');
  assert.deepEqual([running[col('val bpb')], running[col('steps')], running[col('seconds')], running[col('tokens/s')]], ['', '', '', '']);
  // Before the noise estimate there is no best yet.
  assert.equal(lines[1][col('best so far')], '');
});

test('tsvField: tabs, newlines and carriage returns become one space', () => {
  assert.equal(tsvField('a\tb\r\nc\n\nd'), 'a b c d');
  assert.equal(tsvField('plain'), 'plain');
});
