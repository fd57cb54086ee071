import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, stringifyConfig } from '../train/config.js';
import { foldJournal, nextAction, unionLength } from './study.js';
import { JournalBuilder } from './testing.js';
import type { JournalEvent } from './types.js';

// nextAction with trials in flight (a study with several workers): what may start beside them,
// and when it must wait. With nothing in flight it is the local study's nextAction.

function builder(): JournalBuilder {
  const b = new JournalBuilder().study('tiny');
  const h = b.events[0] as Extract<JournalEvent, { type: 'study' }>;
  h.base_config = stringifyConfig(loadConfig({ preset: 'tiny' }));
  h.max_trials = 2;
  h.hours = null;
  h.final_seeds = 1;
  return b;
}

/** The builder's trials carry no config: give them the base's (a confirmation or final run parses it). */
function act(b: JournalBuilder, inFlight: number[] = []) {
  const base = (b.events[0] as Extract<JournalEvent, { type: 'study' }>).base_config;
  const events = b.events.map((e) => (e.type === 'trial_start' && e.config === '' ? { ...e, config: base } : e));
  return nextAction(foldJournal(events), 0, new Set(inFlight));
}

test('noise seeds start side by side; the noise is computed only once all of them ended', () => {
  const b = builder();
  assert.deepEqual(pick(act(b)), { do: 'trial', kind: 'noise', id: 1 });
  b.start(1, 'noise');
  // not in flight: an interrupted trial, run again first (the local study's rule)
  assert.deepEqual(pick(act(b)), { do: 'trial', kind: 'noise', id: 1 });
  assert.deepEqual(pick(act(b, [1])), { do: 'trial', kind: 'noise', id: 2 });
  b.start(2, 'noise').start(3, 'noise');
  assert.deepEqual(act(b, [1, 2, 3]), { do: 'wait' });
  b.end(1, 'ok', 1.5).end(3, 'ok', 1.52);
  assert.deepEqual(act(b, [2]), { do: 'wait' });
  b.end(2, 'ok', 1.51);
  assert.deepEqual(act(b), { do: 'noise' });
});

test('candidates start beside others; each is confirmed and decided as its own runs end; the final seeds and the end wait for every candidate', () => {
  const b = builder().trial(1, 'noise', {}, 'ok', 1.5).trial(2, 'noise', {}, 'ok', 1.51).noise([1.5, 1.51], 0.02);
  assert.deepEqual(act(b), { do: 'propose' });
  b.start(3, 'lr_search', { 'optim.lr': 0.003 });
  assert.deepEqual(act(b, [3]), { do: 'propose' }, 'a second candidate starts beside the first');
  b.start(4, 'scale_up', { 'model.d_model': 96 });
  // 2 trials proposed (max_trials): nothing more may start while they run
  assert.deepEqual(act(b, [3, 4]), { do: 'wait' });
  // 4 ends well first: its confirmation starts while 3 still runs
  b.end(4, 'ok', 1.40);
  const confirm = act(b, [3]);
  assert.deepEqual(pick(confirm), { do: 'trial', kind: 'confirm', id: 5 });
  b.start(5, 'confirm', {}, { confirms: 4 });
  assert.deepEqual(act(b, [3, 5]), { do: 'wait' });
  // 3 ends badly: decided at once (discarded without a second run) while 5 runs
  b.end(3, 'ok', 1.6);
  const d3 = act(b, [5]);
  assert.equal(d3.do, 'decide');
  assert.equal(d3.do === 'decide' && d3.decision.id, 3);
  assert.equal(d3.do === 'decide' && d3.decision.kept, false);
  b.decision(3, false, 1.6, 1.505, 0.02);
  assert.deepEqual(act(b, [5]), { do: 'wait' }, 'the final seeds wait for candidate 4');
  b.end(5, 'ok', 1.41);
  const d4 = act(b);
  assert.equal(d4.do === 'decide' && d4.decision.id, 4);
  assert.equal(d4.do === 'decide' && d4.decision.kept, true);
  b.decision(4, true, 1.405, 1.505, 0.02);
  assert.deepEqual(pick(act(b)), { do: 'trial', kind: 'final', id: 6 });
  b.start(6, 'final', {}, { confirms: 4 });
  assert.deepEqual(act(b, [6]), { do: 'wait' }, 'the end waits for the final run');
  b.end(6, 'ok', 1.41);
  assert.equal(act(b).do, 'end');
});

test('--hours counts wall time while trials run, not the trials\' summed seconds (4 workers do not stop a study 4x early)', () => {
  assert.equal(unionLength([[0, 4], [1, 5], [2, 6], [3, 7], [9, 10], [9.5, 9.6]]), 8);
  assert.equal(unionLength([]), 0);
  const b = builder().trial(1, 'noise', {}, 'ok', 1.5).trial(2, 'noise', {}, 'ok', 1.51).noise([1.5, 1.51], 0.02);
  (b.events[0] as Extract<JournalEvent, { type: 'study' }>).max_trials = null;
  // the builder's clock moves 1 minute per event: trials 1 and 2 ran 1 minute each
  // 4 candidates side by side: started at minutes 0-3 after the noise, ended at 4-7, each 4 minutes long
  b.start(3, 'lr_search').start(4, 'lr_search').start(5, 'lr_search').start(6, 'lr_search');
  for (const id of [3, 4, 5, 6]) b.end(id, 'ok', 1.6, { seconds: 240 });
  const st = foldJournal(b.events.map((e) => (e.type === 'trial_start' ? { ...e, config: (b.events[0] as Extract<JournalEvent, { type: 'study' }>).base_config } : e)));
  assert.equal(st.seconds, 2 * 60 + 7 * 60, 'two 1-minute noise runs, then 7 minutes with some candidate running');
  (b.events[0] as Extract<JournalEvent, { type: 'study' }>).hours = 10 / 60;
  for (const id of [3, 4, 5, 6]) b.decision(id, false, 1.6, 1.505, 0.02);
  assert.equal(act(b).do, 'propose', '9 minutes of wall time is under the 10-minute budget (the summed 18 minutes are not)');
  (b.events[0] as Extract<JournalEvent, { type: 'study' }>).hours = 8 / 60;
  assert.equal(act(b).do, 'end');
});

function pick(a: ReturnType<typeof nextAction>): unknown {
  return a.do === 'trial' ? { do: a.do, kind: a.kind, id: a.id } : a;
}
