/** The journal fold: rows per trial, keep decisions (including confirmed candidates), the running best, counts, interrupted trials. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize, formatChanges, elapsedHours } from './summary.js';
import { JournalBuilder, sampleStudy } from './testing.js';

test('summarize: one row per trial with its result, kind, seed and changes', () => {
  const s = summarize(sampleStudy().events);
  assert.deepEqual(s.rows.map((r) => r.id), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const r3 = s.rows[3];
  assert.equal(r3.kind, 'lr_search');
  assert.equal(r3.description, 'lr 0.001 -> 0.003');
  assert.equal(r3.status, 'ok');
  assert.equal(r3.val_bpb, 1.45);
  assert.equal(r3.val_loss, 1.45 * 2.5);
  assert.equal(r3.tokens_per_second, 3333.3);
  assert.equal(r3.peak_rss_mb, 321.5);
  assert.equal(r3.steps, 100);
  assert.equal(r3.seconds, 60);
  // An empty description falls back to the changes.
  assert.equal(s.rows[4].description, 'model.d_model=128');
  assert.equal(s.rows[8].confirms, 7);
  assert.equal(s.rows[8].seed, 2);
  assert.equal(s.rows[5].status, 'pruned');
  assert.equal(s.rows[5].reason, 'pruned at step 40');
  assert.equal(s.rows[5].val_bpb, null);
  assert.equal(s.base_name, 'tiny');
  assert.deepEqual(s.budget, { kind: 'tokens', value: 200_000 });
});

test('summarize: kept comes from the decision naming the trial, a confirmed candidate included', () => {
  const s = summarize(sampleStudy().events);
  const kept = Object.fromEntries(s.rows.map((r) => [r.id, r.kept]));
  assert.deepEqual(kept, { 0: null, 1: null, 2: null, 3: true, 4: false, 5: null, 6: null, 7: true, 8: null, 9: false, 10: null });
  assert.equal(s.rows[7].decision_reason, 'mean of 2 seeds beats the best');
  assert.deepEqual(
    s.kept.map((k) => [k.step, k.id, k.bpb_before, k.bpb_after, k.margin]),
    [[1, 3, 1.5, 1.45, 0.02], [2, 7, 1.45, 1.405, 0.02]],
  );
  assert.ok(Math.abs(s.kept[1].gain - 0.045) < 1e-12);
  assert.deepEqual(s.kept[1].changes, { 'model.seq_len': 256 });
});

test('summarize: the running best starts at the noise mean and moves with each kept decision', () => {
  const s = summarize(sampleStudy().events);
  const best = s.rows.map((r) => (r.best_bpb === null ? null : Math.round(r.best_bpb * 1e6) / 1e6));
  // Noise runs 0 and 1 come before the estimate; 2 is followed by it. Trial 7's confirmation (8)
  // is followed by the decision that adopts it.
  assert.deepEqual(best, [null, null, 1.5, 1.45, 1.45, 1.45, 1.45, 1.45, 1.405, 1.405, 1.405]);
  assert.ok(Math.abs((s.base_bpb ?? 0) - 1.5) < 1e-12);
  assert.equal(s.best_bpb, 1.405);
  assert.ok(s.noise && s.noise.margin === 0.02 && s.noise.bpb.length === 3);
});

test('summarize: a started trial without an end is running/interrupted; counts by status; pauses', () => {
  const s = summarize(sampleStudy().events);
  const r10 = s.rows[10];
  assert.equal(r10.status, 'running');
  assert.equal(r10.ended, null);
  assert.equal(r10.val_bpb, null);
  assert.deepEqual(s.counts, { ok: 8, pruned: 1, crash: 1, diverged: 0, timeout: 0, rejected: 0, running: 1 });
  assert.deepEqual(s.pauses.map((p) => [p.reason, p.seconds]), [['battery 12% below 20% and not charging', 600]]);
  assert.equal(s.ended, null);
  const done = summarize(sampleStudy().end(10, 'timeout', null).finish('hours reached').events);
  assert.equal(done.ended, 'hours reached');
  assert.equal(done.rows[10].status, 'timeout');
  assert.equal(done.counts.running, 0);
  assert.ok(elapsedHours(done) > 0.3 && elapsedHours(done) < 1);
});

test('summarize: a trial restarted under its id after an interruption keeps one row, the last attempt', () => {
  const b = new JournalBuilder().study().trial(0, 'noise', {}, 'ok', 2).noise([2], 0.1).start(1, 'random', { 'optim.lr': 0.01 });
  b.trial(1, 'random', { 'optim.lr': 0.01 }, 'ok', 1.9).decision(1, true, 1.9, 2, 0.05);
  const s = summarize(b.events);
  assert.deepEqual(s.rows.map((r) => [r.id, r.status]), [[0, 'ok'], [1, 'ok']]);
  assert.equal(s.rows[1].kept, true);
  assert.equal(s.best_bpb, 1.9);
});

test('summarize: an empty journal gives an empty summary; formatChanges keeps the order', () => {
  const s = summarize([]);
  assert.deepEqual(s.rows, []);
  assert.equal(s.best_bpb, null);
  assert.equal(s.base_name, null);
  assert.equal(elapsedHours(s), 0);
  assert.equal(formatChanges({ 'optim.lr': 0.003, 'model.d_model': 128, 'model.activation': 'gelu' }), 'optim.lr=0.003, model.d_model=128, model.activation=gelu');
});
