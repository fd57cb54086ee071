/**
 * progress.svg: well-formed XML (parsed by a small strict parser below), one marker per scored
 * trial at its value, marks for unscored trials, the best line ending at the final best
 * (coordinates mapped back to values through the y-axis ticks), hostile text escaped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize } from './summary.js';
import { progressSvg, escapeXml, niceTicks } from './progress-svg.js';
import { JournalBuilder, sampleStudy } from './testing.js';
import { parseXml, all, hasClass, type El } from '../plot/testing.js';

/** The y axis as a function of pixel → value, fitted through the first and last y tick labels. */
function yValueOf(root: El): (y: number) => number {
  const ticks = all(root, (e) => hasClass(e, 'y-tick')).map((e) => [Number(e.attrs['data-y']), Number(e.text)] as const);
  assert.ok(ticks.length >= 2, 'at least two y ticks');
  const [[ya, va], [yb, vb]] = [ticks[0], ticks[ticks.length - 1]];
  return (y) => va + ((y - ya) * (vb - va)) / (yb - ya);
}

test('progressSvg: the parser used here rejects malformed XML', () => {
  assert.throws(() => parseXml('<svg><g></svg>'));
  assert.throws(() => parseXml('<svg><text>a < b</text></svg>'));
  assert.throws(() => parseXml('<svg a="1" a="2"/>'));
  assert.throws(() => parseXml('<svg>&nbsp;</svg>'));
  assert.equal(parseXml('<svg><text x="&quot;">a &amp; b</text></svg>').children[0].text, 'a & b');
});

test('progressSvg: well-formed, one marker per scored trial at its value, marks for the unscored', () => {
  const s = summarize(sampleStudy().events);
  const svg = progressSvg(s);
  const root = parseXml(svg);
  assert.equal(root.name, 'svg');
  const markers = all(root, (e) => e.name === 'circle' && hasClass(e, 'trial'));
  const okIds = s.rows.filter((r) => r.status === 'ok').map((r) => r.id);
  assert.deepEqual(markers.map((m) => Number(m.attrs['data-id'])), okIds);
  const value = yValueOf(root);
  for (const m of markers) {
    const row = s.rows.find((r) => r.id === Number(m.attrs['data-id']))!;
    assert.ok(Math.abs(value(Number(m.attrs.cy)) - row.val_bpb!) < 1e-3, `marker of #${row.id}`);
  }
  assert.deepEqual(markers.filter((m) => hasClass(m, 'kept')).map((m) => Number(m.attrs['data-id'])), [3, 7]);
  const labels = all(root, (e) => hasClass(e, 'kept-label')).map((e) => e.text);
  assert.deepEqual(labels, ['lr 0.001 -> 0.003', 'seq_len 128 -> 256']);
  const unscored = all(root, (e) => e.name === 'path' && hasClass(e, 'trial'));
  assert.deepEqual(unscored.map((e) => [Number(e.attrs['data-id']), e.attrs.class]), [[5, 'trial pruned'], [6, 'trial crash']]);
  const legend = all(root, (e) => e.name === 'text' && e.text.includes('pruned 1, crash 1'));
  assert.equal(legend.length, 1);
  const title = all(root, (e) => hasClass(e, 'title'))[0];
  assert.equal(title.text, 'pocketlm research: tiny: 11 trials, 2 kept');
});

test('progressSvg: the best line steps down at each kept change and ends at the final best, inside its band', () => {
  const s = summarize(sampleStudy().events);
  const root = parseXml(progressSvg(s, { width: 640, height: 400 }));
  assert.equal(root.attrs.width, '640');
  const value = yValueOf(root);
  const line = all(root, (e) => hasClass(e, 'best-line'))[0];
  const pts = line.attrs.points.split(' ').map((p) => p.split(',').map(Number));
  const levels = [...new Set(pts.map(([, y]) => Math.round(value(y) * 1e4) / 1e4))];
  assert.deepEqual(levels, [1.5, 1.45, 1.405]);
  const [xLast, yLast] = pts[pts.length - 1];
  assert.ok(Math.abs(value(yLast) - s.best_bpb!) < 1e-4);
  // The line reaches the right end of the plot (past the last trial's x).
  const xTicks = all(root, (e) => hasClass(e, 'x-tick')).map((e) => [Number(e.attrs['data-x']), Number(e.text)] as const);
  const [[xa, ia], [xb, ib]] = [xTicks[0], xTicks[xTicks.length - 1]];
  assert.ok(ia + ((xLast - xa) * (ib - ia)) / (xb - xa) >= 10);
  const band = all(root, (e) => hasClass(e, 'noise-band'))[0];
  const bandYs = band.attrs.points.split(' ').map((p) => value(Number(p.split(',')[1])));
  assert.ok(Math.abs(Math.max(...bandYs) - (1.5 + 0.02)) < 1e-4);
  assert.ok(Math.abs(Math.min(...bandYs) - (1.405 - 0.02)) < 1e-4);
});

test('progressSvg: hostile descriptions are escaped; an empty journal still gives a chart', () => {
  const b = new JournalBuilder().study('a<b & "c"').trial(0, 'noise', {}, 'ok', 2).noise([2], 0.01);
  b.trial(1, 'plan', {}, 'ok', 1.9, { description: '</text><script>alert(1)</script> & \u0001' }).decision(1, true, 1.9, 2, 0.01);
  const root = parseXml(progressSvg(summarize(b.events)));
  assert.equal(all(root, (e) => e.name === 'script').length, 0);
  assert.equal(all(root, (e) => hasClass(e, 'kept-label'))[0].text, '</text><script>alert(1)</sc…');
  assert.equal(all(root, (e) => hasClass(e, 'title'))[0].text, 'pocketlm research: a<b & "c": 2 trials, 1 kept');
  const empty = parseXml(progressSvg(summarize([])));
  assert.equal(all(empty, (e) => hasClass(e, 'trial')).length, 0);
  assert.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&apos;');
  // XML forbids control characters even escaped: replaced by a space.
  assert.equal(escapeXml('a\u0001b\tc'), 'a b\tc');
});

test('progressSvg: a wild score is drawn off-scale on the top edge and does not flatten the rest', () => {
  const b = sampleStudy().end(10, 'ok', 4.2).decision(10, false, 4.2, 1.405, 0.02);
  const s = summarize(b.events);
  const root = parseXml(progressSvg(s));
  const value = yValueOf(root);
  const markers = all(root, (e) => e.name === 'circle' && hasClass(e, 'trial'));
  assert.equal(markers.length, s.rows.filter((r) => r.status === 'ok').length);
  const off = markers.filter((m) => hasClass(m, 'off-scale'));
  assert.deepEqual(off.map((m) => [m.attrs['data-id'], m.attrs['data-value']]), [['10', '4.2']]);
  // The top of the scale stays well below the wild score; the others are still at their values.
  assert.ok(value(Number(off[0].attrs.cy)) < 1.7);
  for (const m of markers.filter((m) => !hasClass(m, 'off-scale'))) {
    const row = s.rows.find((r) => r.id === Number(m.attrs['data-id']))!;
    assert.ok(Math.abs(value(Number(m.attrs.cy)) - row.val_bpb!) < 1e-3);
  }
  assert.equal(all(root, (e) => e.name === 'text' && e.text === 'scored (9, 1 off the scale)').length, 1);
});

test('niceTicks: round steps covering the range', () => {
  assert.deepEqual(niceTicks(1.38, 1.53, 6), [1.4, 1.45, 1.5]);
  assert.deepEqual(niceTicks(1.381, 1.529, 8), [1.4, 1.42, 1.44, 1.46, 1.48, 1.5, 1.52]);
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
});
