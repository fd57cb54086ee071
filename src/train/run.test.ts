import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { claimRunFolder, removeOrphanCheckpoints, runFilesIn } from './run.js';
import { lockFilePath, readLockOwner } from './lock.js';
import { tempPathFor } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { snapshotTree } from '../util/testing.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pocketlm-run-'));
}

const snapshot = (dir: string): Record<string, string> => snapshotTree(dir);

/** A run folder as a killed or finished run leaves it; `manifest` names ckpt-000120. */
function fakeRun(dir: string, opts: { manifest: boolean }): void {
  fs.mkdirSync(path.join(dir, 'ckpt-000120'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'ckpt-000120', 'model.safetensors'), 'weights');
  fs.writeFileSync(path.join(dir, 'log.jsonl'), '{"step":1}\n');
  fs.writeFileSync(path.join(dir, 'config.toml'), 'extends = "tiny"\n');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{}');
  if (opts.manifest) fs.writeFileSync(path.join(dir, 'checkpoint.json'), JSON.stringify({ folder: 'ckpt-000120' }));
}

function refusal(re: RegExp) {
  return (e: unknown) => e instanceof UserError && !e.message.includes('\n') && re.test(e.message);
}

test('runFilesIn lists checkpoints, best/, a non-empty log, config and tokenizer; not the lock, leftovers or other files', () => {
  const dir = tmpDir();
  assert.deepEqual(runFilesIn(dir), []);
  fs.writeFileSync(path.join(dir, 'log.jsonl'), '');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
  fs.writeFileSync(tempPathFor(path.join(dir, 'checkpoint.json')), '{');
  fs.writeFileSync(lockFilePath(dir), '');
  assert.deepEqual(runFilesIn(dir), [], 'an empty log, a stray file, a temp file and a lock are not a run');
  fakeRun(dir, { manifest: true });
  fs.mkdirSync(path.join(dir, 'best'));
  fs.mkdirSync(path.join(dir, 'ckpt-000100'));
  assert.deepEqual(runFilesIn(dir), ['checkpoint.json', 'ckpt-000100/', 'ckpt-000120/', 'best/', 'log.jsonl', 'config.toml', 'tokenizer.json']);
});

test('--resume over run files without checkpoint.json refuses in one line naming them, and changes nothing', () => {
  const dir = tmpDir();
  fakeRun(dir, { manifest: false });
  const before = snapshot(dir);
  assert.throws(() => claimRunFolder(dir, true), refusal(/ckpt-000120\/.*log\.jsonl.*config\.toml.* but no checkpoint\.json/));
  assert.deepEqual(snapshot(dir), before);
});

test('--resume on a folder that does not exist refuses and creates nothing; on one without a run, refuses too', () => {
  const base = tmpDir();
  const dir = path.join(base, 'nope');
  assert.throws(() => claimRunFolder(dir, true), refusal(/nope does not exist/));
  assert.equal(fs.existsSync(dir), false);
  fs.writeFileSync(dir, 'a file');
  assert.throws(() => claimRunFolder(dir, true), refusal(/is not a folder/));
  const empty = path.join(base, 'empty');
  fs.mkdirSync(empty);
  assert.throws(() => claimRunFolder(empty, true), refusal(/holds no run to resume \(no checkpoint\.json\)/));
  assert.deepEqual(fs.readdirSync(empty), [], 'and its lock is released');
});

test('a new run refuses a folder holding run files (with or without a checkpoint), naming them', () => {
  const withManifest = tmpDir();
  fakeRun(withManifest, { manifest: true });
  assert.throws(() => claimRunFolder(withManifest, false), refusal(/already holds a run with a checkpoint; add --resume/));
  for (const file of ['log.jsonl', 'config.toml', 'tokenizer.json']) {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, file), 'x');
    assert.throws(() => claimRunFolder(dir, false), refusal(new RegExp(`already holds run files \\(${file.replace('.', '\\.')}\\)`)));
    assert.deepEqual(fs.readdirSync(dir), [file]);
  }
  for (const folder of ['ckpt-000007', 'best']) {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, folder));
    assert.throws(() => claimRunFolder(dir, false), refusal(new RegExp(`\\(${folder}/\\)`)));
  }
});

test('a new run takes an empty or missing folder and holds its lock until released', () => {
  const dir = path.join(tmpDir(), 'a', 'b');
  const lock = claimRunFolder(dir, false);
  assert.equal(readLockOwner(lockFilePath(dir))?.pid, process.pid);
  assert.throws(() => claimRunFolder(dir, false), refusal(new RegExp(`in use by pocketlm process pid ${process.pid}`)));
  lock.release();
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('claiming a folder removes the temp files of killed writes, in the folder and its subfolders, keeping everything else', () => {
  const dir = tmpDir();
  fakeRun(dir, { manifest: true });
  fs.mkdirSync(path.join(dir, 'best'));
  const leftovers = [
    tempPathFor(path.join(dir, 'checkpoint.json')),
    tempPathFor(path.join(dir, 'log.jsonl')),
    tempPathFor(path.join(dir, 'ckpt-000120', 'optim.safetensors')),
    tempPathFor(path.join(dir, 'best', 'model.safetensors')),
  ];
  for (const f of leftovers) fs.writeFileSync(f, 'partial');
  fs.mkdirSync(tempPathFor(path.join(dir, 'best2')));
  fs.writeFileSync(path.join(dir, '.hidden-notes'), 'mine');
  fs.writeFileSync(path.join(dir, 'x.tmp-1-a'), 'not a hidden temp name: not ours');
  const lock = claimRunFolder(dir, true);
  lock.release();
  for (const f of leftovers) assert.equal(fs.existsSync(f), false, f);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['.hidden-notes', 'best', 'checkpoint.json', 'ckpt-000120', 'config.toml', 'log.jsonl', 'tokenizer.json', 'x.tmp-1-a']);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'ckpt-000120')), ['model.safetensors']);
});

test('removeOrphanCheckpoints removes the ckpt folders the manifest does not name, and only those', () => {
  const dir = tmpDir();
  fakeRun(dir, { manifest: true });
  for (const f of ['ckpt-000100', 'ckpt-000140']) {
    fs.mkdirSync(path.join(dir, f));
    fs.writeFileSync(path.join(dir, f, 'model.safetensors'), 'half');
  }
  fs.mkdirSync(path.join(dir, 'best'));
  assert.deepEqual(removeOrphanCheckpoints(dir, 'ckpt-000120'), ['ckpt-000100', 'ckpt-000140']);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['best', 'checkpoint.json', 'ckpt-000120', 'config.toml', 'log.jsonl', 'tokenizer.json']);
});
