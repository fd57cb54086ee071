import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomicSync } from './atomic.js';
import { UserError } from './errors.js';

test('atomic write replaces the file whole and leaves no temp file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-atomic-'));
  const f = path.join(dir, 'a.bin');
  writeFileAtomicSync(f, 'old');
  writeFileAtomicSync(f, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  assert.deepEqual([...fs.readFileSync(f)], [1, 2, 3]);
  assert.deepEqual(fs.readdirSync(dir), ['a.bin']);
  fs.rmSync(dir, { recursive: true });
});

test('a failed atomic write keeps the old file and reports one line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-atomic-'));
  const f = path.join(dir, 'missing-folder', 'x.json');
  assert.throws(() => writeFileAtomicSync(f, 'x'), (e: unknown) => e instanceof UserError && /folder does not exist/.test(e.message));
  fs.rmSync(dir, { recursive: true });
});
