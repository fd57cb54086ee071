import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from './rng.js';

/** sfc32 written out from its published definition, on plain numbers: the class must match it. */
function referenceSfc32(state: number[], n: number): number[] {
  let [a, b, c, d] = state as [number, number, number, number];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    out.push(t >>> 0);
  }
  return out;
}

test('rng: is sfc32 (matches the reference definition from any state)', () => {
  for (const state of [[1, 2, 3, 4], [0xffffffff, 0x80000000, 0x12345678, 0xdeadbeef], new Rng(99).state()]) {
    const r = Rng.from(state);
    assert.deepEqual(Array.from({ length: 100 }, () => r.uint32()), referenceSfc32(state, 100));
  }
});

test('rng: a seed gives a fixed sequence (journals written today resume the same way tomorrow)', () => {
  const r = new Rng(42);
  assert.deepEqual(r.state(), [625371368, 407390141, 915358909, 13]);
  assert.deepEqual([r.uint32(), r.uint32(), r.uint32()], [1032761523, 55430738, 1784579475]);
  assert.notDeepEqual(new Rng(43).state(), new Rng(42).state());
});

test('rng: state round trip: restoring a saved state continues the same sequence', () => {
  const r = new Rng(7);
  for (let i = 0; i < 37; i++) r.next();
  const saved = r.state();
  const json = JSON.parse(JSON.stringify(saved)) as number[];
  const a = Array.from({ length: 50 }, () => [r.next(), r.int(-3, 9), r.pick(['x', 'y', 'z']), r.normal()]);
  const s = Rng.from(json);
  const b = Array.from({ length: 50 }, () => [s.next(), s.int(-3, 9), s.pick(['x', 'y', 'z']), s.normal()]);
  assert.deepEqual(b, a);
  assert.throws(() => Rng.from([1, 2, 3]), /four 32-bit/);
  assert.throws(() => Rng.from([1, 2, 3, -1]), /four 32-bit/);
});

test('rng: next in [0,1), int covers lo..hi inclusive, pick and weighted are proportional', () => {
  const r = new Rng(1);
  const counts = new Map<number, number>();
  for (let i = 0; i < 20000; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    const k = r.int(2, 5);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), [2, 3, 4, 5]);
  for (const c of counts.values()) assert.ok(Math.abs(c - 5000) < 300, `int counts ${[...counts.values()]}`);
  const w = [0.3, 0, 0.1, 0.6];
  const hits = [0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) hits[r.weighted(w)]!++;
  assert.equal(hits[1], 0);
  for (const i of [0, 2, 3]) assert.ok(Math.abs(hits[i]! / 20000 - w[i]!) < 0.015, `weighted ${hits}`);
  let s = 0, s2 = 0;
  for (let i = 0; i < 20000; i++) { const z = r.normal(); s += z; s2 += z * z; }
  assert.ok(Math.abs(s / 20000) < 0.03 && Math.abs(s2 / 20000 - 1) < 0.05, 'normal: mean 0, variance 1');
  assert.throws(() => r.pick([]), /empty/);
  assert.throws(() => r.int(3, 2), /bad range/);
});
