import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LogWriter, readLog, truncateLog, type LogRecord } from './log.js';
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

test('run folder names', () => {
  assert.equal(defaultRunDir('tiny', new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), path.join('runs', 'tiny-20260102-030405'));
  assert.equal(defaultRunDir('../x y', new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), '/r'), '/r/.._x_y-20260102-030405');
  assert.equal(checkpointFolderName(42), 'ckpt-000042');
  assert.ok(isCheckpointFolderName(checkpointFolderName(1234567)));
  assert.ok(!isCheckpointFolderName('ckpt-12'));
});
