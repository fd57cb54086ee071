import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Baselines } from '../data/baselines.js';
import type { LogRecord } from '../train/log.js';
import { lineChartSvg } from './line-chart.js';
import { runChart, formatSeconds } from './run-chart.js';
import type { RunData } from './run-data.js';
import { svgToPng, pngInfo, decodePng, countPixels } from './png.js';
import { terminalChart, resample } from './terminal.js';
import { parseXml, all, hasClass, yValueOf } from './testing.js';

function baselines(scale: number): Baselines {
  const e = (nats: number) => ({ nats, bpb: nats * scale });
  return {
    uniform: e(6.24), unigram: e(4.9), bigram: e(3.6), trigram: e(3.1),
    info: { fingerprint: 'fp', version: 1, trainTokens: 1, valTokens: 1, vocabSize: 512, choice: '' },
  };
}

/** A run whose loss falls as 6 exp(-step/50) + 2, evaluated every 20 steps. */
function fakeRun(name: string, steps = 100): RunData {
  const records: LogRecord[] = [];
  for (let s = 1; s <= steps; s++) {
    const loss = 6 * Math.exp(-s / 50) + 2;
    const r: LogRecord = { step: s, loss, lr: 1e-3, grad_norm: 1, tokens: s * 256, tokens_per_second: 1000, elapsed: s * 0.5 };
    if (s % 20 === 0) { r.val_loss = loss + 0.1; r.val_bpb = (loss + 0.1) * 0.4; }
    records.push(r);
  }
  return { name, dir: `/runs/${name}`, records, samples: [], baselines: baselines(0.4) };
}

test('plot: valid SVG with one curve per run at the logged values, and the baselines as lines at their values', () => {
  const runs = [fakeRun('a'), fakeRun('b', 60)];
  const svg = lineChartSvg(runChart(runs, 'val_bpb', 'step'));
  const root = parseXml(svg);
  assert.equal(root.name, 'svg');
  const curves = all(root, (e) => e.name === 'polyline' && hasClass(e, 'series'));
  assert.deepEqual(curves.map((c) => [c.attrs['data-name'], c.attrs['data-points']]), [['a: validation bits per byte', '5'], ['b: validation bits per byte', '3']]);
  const value = yValueOf(root);
  const pts = curves[0]!.attrs.points!.split(' ').map((p) => p.split(',').map(Number));
  const expected = runs[0]!.records.filter((r) => r.val_bpb !== undefined).map((r) => r.val_bpb!);
  pts.forEach(([, y], i) => assert.ok(Math.abs(value(y!) - expected[i]!) < 2e-3, `point ${i}: ${value(y!)} vs ${expected[i]}`));
  // same dataset: one set of baselines, in bits per byte
  const lines = all(root, (e) => hasClass(e, 'baseline'));
  assert.deepEqual(lines.map((l) => l.attrs['data-name']), ['trigram', 'bigram', 'unigram', 'uniform']);
  for (const l of lines) assert.ok(Math.abs(value(Number(l.attrs.y1)) - Number(l.attrs['data-value'])) < 2e-3);
  assert.ok(Math.abs(Number(lines[0]!.attrs['data-value']) - 3.1 * 0.4) < 1e-12);
  // hostile run names are escaped
  assert.doesNotThrow(() => parseXml(lineChartSvg(runChart([fakeRun('<x>&"y"')], 'loss', 'time'))));
});

test('plot: loss against time draws training and validation loss in nats; lr has no baselines', () => {
  const root = parseXml(lineChartSvg(runChart([fakeRun('a')], 'loss', 'time')));
  const curves = all(root, (e) => hasClass(e, 'series'));
  assert.deepEqual(curves.map((c) => [c.attrs['data-name'], c.attrs['data-points']]), [['training loss', '100'], ['validation loss', '5']]);
  assert.deepEqual(all(root, (e) => hasClass(e, 'baseline')).map((l) => Number(l.attrs['data-value'])), [3.1, 3.6, 4.9, 6.24]);
  const xTicks = all(root, (e) => hasClass(e, 'x-tick')).map((e) => e.text);
  assert.ok(xTicks.includes('50s'), `time ticks ${xTicks}`);
  const lr = parseXml(lineChartSvg(runChart([fakeRun('a')], 'lr', 'tokens')));
  assert.equal(all(lr, (e) => hasClass(e, 'baseline')).length, 0);
  assert.equal(formatSeconds(95), '1m35s');
  assert.equal(formatSeconds(4000), '1h06m');
});

test('plot: the PNG decodes at the expected size and shows the curve colour', () => {
  const svg = lineChartSvg(runChart([fakeRun('a')], 'loss', 'step'), { width: 600, height: 320 });
  const png = svgToPng(svg);
  assert.deepEqual(pngInfo(png).width, 600);
  assert.deepEqual(pngInfo(png).height, 320);
  const img = decodePng(png);
  assert.equal(img.rgba.length, 600 * 320 * 4);
  // the training curve is #1f77b4, the validation curve #ff7f0e: both drawn
  assert.ok(countPixels(img, [0x1f, 0x77, 0xb4]) > 200, 'training curve pixels');
  assert.ok(countPixels(img, [0xff, 0x7f, 0x0e]) > 50, 'validation curve pixels');
  assert.ok(countPixels(img, [255, 255, 255], 0) > 0.5 * 600 * 320, 'white background');
  const half = svgToPng(svg, { width: 300 });
  assert.deepEqual([pngInfo(half).width, pngInfo(half).height], [300, 160]);
  assert.throws(() => pngInfo(Buffer.from('<svg/>')), /not a PNG/);
});

test('terminal chart: stretched to the width, labelled with the range and the steps', () => {
  assert.deepEqual(resample([[0, 0], [10, 10]], 6), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(resample([[0, 1], [1, 3], [3, 3]], 4), [1, 3, 3, 3]);
  const lines = terminalChart([[100, 2.5], [200, 2.0], [300, 1.75]], 'validation bits per byte', { height: 6, width: 40 });
  assert.equal(lines[0], 'validation bits per byte');
  assert.equal(lines.length, 1 + 7 + 1, 'title, height+1 rows, the step line');
  assert.match(lines[1]!, /^\s*2\.500 /, 'the top label is the maximum');
  assert.match(lines[7]!, /^\s*1\.750 /, 'the bottom label is the minimum');
  assert.match(lines[8]!, /step 100\s+step 300$/);
  assert.deepEqual(terminalChart([[1, 2]], 'one point'), []);
});
