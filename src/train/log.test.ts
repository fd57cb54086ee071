import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LogWriter, readLog, readLogEntries, readLogEvents, truncateLog, type LogRecord, type RollbackEvent } from './log.js';
import { checkpointFolderName, defaultRunDir, isCheckpointFolderName } from './run.js';

const rec = (step: number): LogRecord => ({ step, loss: 5 - step / 10, lr: 1e-3, grad_norm: 0.5, tokens: step * 64, tokens_per_second: 1000, elapsed: step });

test('log.jsonl: append, read back, skip a torn last line, truncate for resume', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'log-'));
  const file = path.join(dir, 'log.jsonl');
  const w = new LogWriter(file);
  for (let s = 1; s <= 5; s++) w.append(rec(s));
  w.close();
  fs.appendFileSync(file, '{"step": 6, "loss": 4.'); // a kill in the middle of a write
  assert.deepEqual(readLog(file), [1, 2, 3, 4, 5].map(rec));
  truncateLog(file, 3);
  assert.deepEqual(readLog(file), [1, 2, 3].map(rec));
  const w2 = new LogWriter(file);
  w2.append(rec(4));
  w2.close();
  assert.deepEqual(readLog(file).map((r) => r.step), [1, 2, 3, 4]);
  assert.deepEqual(readLog(path.join(dir, 'absent.jsonl')), []);
  fs.rmSync(dir, { recursive: true });
});

test('log.jsonl with a rollback: readLog gives the steps as they stand; truncation keeps what preceded the checkpoint', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'log-'));
  const file = path.join(dir, 'log.jsonl');
  const rb: RollbackEvent = { event: 'rollback', step: 7, to_step: 4, reason: 'the loss (NaN) is not finite', lr_scale: 0.5, rollbacks: 1 };
  const redo = (step: number): LogRecord => ({ ...rec(step), loss: 1 + step });
  const w = new LogWriter(file);
  for (let s = 1; s <= 6; s++) w.append(rec(s)); // step 7 diverged: back to 4
  w.append(rb);
  for (let s = 5; s <= 9; s++) w.append(redo(s)); // a checkpoint at step 8, then a kill after step 9
  w.close();
  const asItStands = [...[1, 2, 3, 4].map(rec), ...[5, 6, 7, 8, 9].map(redo)];
  assert.deepEqual(readLog(file), asItStands);
  assert.deepEqual(readLogEvents(file), [rb]);
  assert.equal(readLogEntries(file).length, 12);
  // resuming from step 8 drops only the redone step 9; the discarded 5, 6 stay with their rollback
  truncateLog(file, 8);
  assert.deepEqual(readLog(file), asItStands.slice(0, -1));
  assert.deepEqual(readLogEvents(file), [rb]);
  assert.equal(readLogEntries(file).length, 11);
  // resuming from a checkpoint before the rollback (step 5 of the first pass): the rollback goes too
  truncateLog(file, 4);
  assert.deepEqual(readLog(file), [1, 2, 3, 4].map(rec));
  assert.deepEqual(readLogEvents(file), []);
  fs.rmSync(dir, { recursive: true });
});

test('run folder names', () => {
  assert.equal(defaultRunDir('tiny', new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), path.join('runs', 'tiny-20260102-030405'));
  assert.equal(defaultRunDir('../x y', new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), '/r'), '/r/.._x_y-20260102-030405');
  assert.equal(checkpointFolderName(42), 'ckpt-000042');
  assert.ok(isCheckpointFolderName(checkpointFolderName(1234567)));
  assert.ok(!isCheckpointFolderName('ckpt-12'));
});
