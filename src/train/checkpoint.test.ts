import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bestCheckpointDir, loadCheckpoint, readBestManifest, readManifest, saveBestCheckpoint, saveCheckpoint, type CheckpointState, type TensorSlot, type WriteFile,
} from './checkpoint.js';
import { writeFileAtomicSync, tempPathFor } from '../util/atomic.js';
import { UserError } from '../util/errors.js';

const MODEL = { vocab_size: 300, d_model: 4, n_layer: 1, tie_embeddings: true };
const TENSORS: TensorSlot[] = [
  { name: 'wte', offset: 0, size: 6, shape: [3, 2] },
  { name: 'blocks.0.attn_norm', offset: 6, size: 2, shape: [2] },
];

function buffers(fill: number) {
  const weights = Float32Array.from({ length: 8 }, (_, i) => fill + i * 0.5);
  return { tensors: TENSORS, weights, optimState: { m: weights.map((x) => x * 2), v: weights.map((x) => x * 3) } };
}

function state(step: number): CheckpointState {
  return {
    step, tokens: step * 100, elapsed_seconds: step / 10, loader: { pos: step }, rng: [1, 2, 3, step],
    optimizer: 'adamw', optim_scalars: { t: step }, dataset: { dir: '/d', tokenizer_hash: 'abc' },
  };
}

function tmpRun(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-'));
}

function restore(dir: string, model = MODEL) {
  const t = { tensors: TENSORS, weights: new Float32Array(8), optimState: { m: new Float32Array(8), v: new Float32Array(8) }, optimizer: 'adamw' };
  const m = loadCheckpoint(dir, model, t);
  return { m, t };
}

test('checkpoint round trip restores weights, optimizer state and run state exactly', () => {
  const dir = tmpRun();
  const b = buffers(1);
  saveCheckpoint(dir, MODEL, b, state(10));
  const { m, t } = restore(dir);
  assert.equal(m!.step, 10);
  assert.deepEqual(m!.loader, { pos: 10 });
  assert.deepEqual(m!.rng, [1, 2, 3, 10]);
  assert.deepEqual(t.weights, b.weights);
  assert.deepEqual(t.optimState.m, b.optimState.m);
  assert.deepEqual(t.optimState.v, b.optimState.v);
  // a second save replaces the first folder
  saveCheckpoint(dir, MODEL, buffers(2), state(20));
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('ckpt-')), ['ckpt-000020']);
  assert.equal(restore(dir).m!.step, 20);
  fs.rmSync(dir, { recursive: true });
});

test('schedule-free: model file holds the eval weights, training weights come back on resume', () => {
  const dir = tmpRun();
  const b = { ...buffers(1), trainWeights: Float32Array.from({ length: 8 }, (_, i) => -i) };
  saveCheckpoint(dir, MODEL, b, state(5));
  const evalOnly = { tensors: TENSORS, weights: new Float32Array(8) };
  loadCheckpoint(dir, MODEL, evalOnly);
  assert.deepEqual(evalOnly.weights, b.weights);
  const { t } = restore(dir);
  assert.deepEqual(t.weights, b.trainWeights);
  fs.rmSync(dir, { recursive: true });
});

test('a crash at any point of a checkpoint write leaves the previous checkpoint loadable', () => {
  const good = buffers(1);
  // Simulate a process dying during the k-th file write: the atomic writer had written part of
  // its temp file when the process died, so the temp file stays and the target is untouched.
  for (let k = 0; k < 3; k++) {
    const dir = tmpRun();
    saveCheckpoint(dir, MODEL, good, state(10));
    let calls = 0;
    const crashing: WriteFile = (target, bytes) => {
      if (calls++ === k) {
        const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
        fs.writeFileSync(tempPathFor(target), b.subarray(0, b.length >> 1));
        throw new Error('simulated crash');
      }
      writeFileAtomicSync(target, bytes);
    };
    assert.throws(() => saveCheckpoint(dir, MODEL, buffers(7), state(20), crashing), /simulated crash/);
    const { m, t } = restore(dir);
    assert.equal(m!.step, 10, `crash at write ${k}`);
    assert.deepEqual(t.weights, good.weights);
    assert.deepEqual(t.optimState.m, good.optimState.m);
    // and the next save succeeds and cleans up the half-written folder
    saveCheckpoint(dir, MODEL, buffers(3), state(30));
    assert.equal(restore(dir).m!.step, 30);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('ckpt-')), ['ckpt-000030']);
    fs.rmSync(dir, { recursive: true });
  }
});

test('the best checkpoint: weights only in best/, beside the run\'s own; a crash mid-write keeps the previous best', () => {
  const dir = tmpRun();
  saveCheckpoint(dir, MODEL, buffers(1), state(10));
  const first = buffers(2);
  saveBestCheckpoint(dir, MODEL, first, { ...state(8), val_loss: 2.5, val_bpb: 1.2 });
  const m = readBestManifest(dir)!;
  assert.equal(m.step, 8);
  assert.equal(m.val_loss, 2.5);
  assert.equal(m.val_bpb, 1.2);
  assert.deepEqual(Object.keys(m.files), ['model.safetensors']);
  assert.deepEqual(fs.readdirSync(bestCheckpointDir(dir)).sort(), ['checkpoint.json', 'ckpt-000008']);
  // the run's own checkpoint is untouched
  assert.equal(restore(dir).m!.step, 10);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('ckpt-')), ['ckpt-000010']);
  // it loads as weights; resuming from it is refused in one line
  const w = { tensors: TENSORS, weights: new Float32Array(8) };
  loadCheckpoint(bestCheckpointDir(dir), MODEL, w);
  assert.deepEqual(w.weights, first.weights);
  refused(() => restore(bestCheckpointDir(dir)), /holds weights only \(no optimizer state\)/);
  // a crash at either write (weights, manifest) leaves the previous best in place and loadable
  for (let k = 0; k < 2; k++) {
    let calls = 0;
    const crashing: WriteFile = (target, bytes) => {
      if (calls++ === k) {
        const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
        fs.writeFileSync(tempPathFor(target), b.subarray(0, b.length >> 1));
        throw new Error('simulated crash');
      }
      writeFileAtomicSync(target, bytes);
    };
    assert.throws(() => saveBestCheckpoint(dir, MODEL, buffers(9), { ...state(20), val_loss: 2.0, val_bpb: 1.0 }, crashing), /simulated crash/);
    assert.equal(readBestManifest(dir)!.step, 8, `crash at write ${k}`);
    const again = { tensors: TENSORS, weights: new Float32Array(8) };
    loadCheckpoint(bestCheckpointDir(dir), MODEL, again);
    assert.deepEqual(again.weights, first.weights);
  }
  // the next best replaces it and cleans up the half-written folder
  saveBestCheckpoint(dir, MODEL, buffers(3), { ...state(30), val_loss: 1.9, val_bpb: 0.9 });
  assert.equal(readBestManifest(dir)!.step, 30);
  assert.deepEqual(fs.readdirSync(bestCheckpointDir(dir)).filter((n) => n.startsWith('ckpt-')), ['ckpt-000030']);
  fs.rmSync(dir, { recursive: true });
});

test('NaN or Inf in any buffer: nothing is written, the good checkpoint stays', () => {
  const dir = tmpRun();
  saveCheckpoint(dir, MODEL, buffers(1), state(10));
  const bad = buffers(5);
  bad.weights[3] = NaN;
  assert.throws(() => saveCheckpoint(dir, MODEL, bad, state(20)), /NaN or Inf/);
  const bad2 = buffers(5);
  bad2.optimState.v[0] = Infinity;
  assert.throws(() => saveCheckpoint(dir, MODEL, bad2, state(20)), /NaN or Inf/);
  assert.equal(restore(dir).m!.step, 10);
  assert.ok(!fs.existsSync(path.join(dir, 'ckpt-000020')));
  fs.rmSync(dir, { recursive: true });
});

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
}

test('corrupt or mismatched checkpoints are refused with one line', () => {
  const dir = tmpRun();
  saveCheckpoint(dir, MODEL, buffers(1), state(10));
  const file = path.join(dir, 'ckpt-000010', 'model.safetensors');
  const orig = fs.readFileSync(file);
  // different model config
  refused(() => restore(dir, { ...MODEL, d_model: 8 }), /model\.d_model is 4 in the checkpoint but 8 in the config/);
  // different optimizer
  refused(() => loadCheckpoint(dir, MODEL, { tensors: TENSORS, weights: new Float32Array(8), optimState: {}, optimizer: 'lion' }), /optimizer "adamw".*"lion"/);
  // different tensor layout with the same config fields
  refused(() => loadCheckpoint(dir, MODEL, { tensors: [{ name: 'wte', offset: 0, size: 8, shape: [4, 2] }], weights: new Float32Array(8) }), /holds tensor "blocks.0.attn_norm"/);
  refused(() => loadCheckpoint(dir, MODEL, { tensors: [{ ...TENSORS[0]!, shape: [2, 3] }, TENSORS[1]!], weights: new Float32Array(8) }), /shape \[3, 2\], the model expects \[2, 3\]/);
  // truncated
  fs.writeFileSync(file, orig.subarray(0, orig.length - 3));
  refused(() => restore(dir), /truncated or replaced/);
  // same size, flipped bit
  const flipped = Buffer.from(orig);
  flipped[flipped.length - 1]! ^= 1;
  fs.writeFileSync(file, flipped);
  refused(() => restore(dir), /sha256/);
  // missing
  fs.rmSync(file);
  refused(() => restore(dir), /is missing/);
  // bad manifest
  fs.writeFileSync(path.join(dir, 'checkpoint.json'), '{"format": "pocketlm-checkpoint", "vers');
  refused(() => readManifest(dir), /corrupt/);
  fs.writeFileSync(path.join(dir, 'checkpoint.json'), '{"format": "something-else"}');
  refused(() => readManifest(dir), /not a pocketlm checkpoint/);
  fs.rmSync(dir, { recursive: true });
});

test('a run without a checkpoint loads as null', () => {
  const dir = tmpRun();
  assert.equal(restore(dir).m, null);
  fs.rmSync(dir, { recursive: true });
});
